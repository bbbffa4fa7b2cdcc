// Hostile or broken receivers: each is a failed attempt with a clear reason, and the service stays
// up, bounded in memory and time. (500, redirect, a server that never answers over HTTP, refused:
// delivery.test.ts; a hanging receiver beside others: retries.test.ts.)
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { waitFor } from './helpers/poll.ts';
import { outbox, stacksClosedAfter } from './helpers/stack.ts';

type Behaviour = 'garbage' | 'trickle' | 'reset' | 'silent' | 'huge' | 'ok';

interface RawReceiver {
  url: string;
  /** What each order's requests get; an order not listed gets `ok`. */
  behaviours: Map<string, Behaviour>;
  /** Bytes written per `huge` response, once its connection closed. */
  hugeSent: number[];
  requests: number;
  close(): Promise<void>;
}

// Stops a `huge` response that nobody stops: far more than the service may ever read.
const HUGE_LIMIT = 4 * 1024 ** 3;

/** A receiver on a raw TCP socket, so that it can answer what no HTTP server library would. */
async function startRawReceiver(): Promise<RawReceiver> {
  const sockets = new Set<Socket>();
  const raw: RawReceiver = { url: '', behaviours: new Map(), hugeSent: [], requests: 0, close: async () => undefined };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined); // resets and broken pipes are what these tests cause
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buffered.subarray(0, end).toString('latin1');
      const length = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? 0);
      if (buffered.length < end + 4 + length) return;
      socket.off('data', onData);
      raw.requests++;
      const { orderId } = JSON.parse(buffered.subarray(end + 4, end + 4 + length).toString('utf8'));
      answer(socket, raw.behaviours.get(orderId) ?? 'ok');
    };
    socket.on('data', onData);
  });
  const answer = (socket: Socket, behaviour: Behaviour) => {
    switch (behaviour) {
      case 'ok':
        return void socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
      case 'garbage':
        return void socket.end('220 mail.example.org ESMTP ready\r\n\r\n');
      case 'reset':
        return void socket.resetAndDestroy();
      case 'silent':
        return;
      case 'trickle': {
        const text = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok';
        let sent = 0;
        const timer = setInterval(() => {
          if (socket.destroyed || sent >= text.length) return void clearInterval(timer);
          socket.write(text[sent++]!);
        }, 1000);
        socket.on('close', () => clearInterval(timer));
        return;
      }
      case 'huge': {
        // An error status with a body that never ends: written as fast as the service reads it.
        socket.write('HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n');
        const chunk = Buffer.alloc(1024 * 1024, 'x');
        let sent = 0;
        const pump = () => {
          while (!socket.destroyed && sent < HUGE_LIMIT) {
            sent += chunk.length;
            if (!socket.write(chunk)) return void socket.once('drain', pump);
          }
          if (!socket.destroyed) socket.end();
        };
        socket.on('close', () => raw.hugeSent.push(sent));
        pump();
        return;
      }
    }
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  raw.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/automation`;
  raw.close = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return raw;
}

/** The peak resident set size of a process, from /proc (VmHWM), in MiB. */
function peakRssMiB(pid: number): number {
  const kib = Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  assert.ok(kib > 0, 'VmHWM read');
  return kib / 1024;
}

interface AttemptRow {
  order_id: string;
  attempt: number;
  http_status: number | null;
  error: string | null;
  error_kind: string | null;
  duration_ms: number;
}

describe('hostile or broken receivers', () => {
  const stack = stacksClosedAfter();

  it('invalid HTTP, a byte a second, a reset, silence and an endless error body: each a failed attempt with its reason', async (t) => {
    const raw = await startRawReceiver();
    const s = await stack('hostile', {
      webHook: { endpoint: raw.url, requestTimeout: 'PT2S', connectionTimeout: 'PT2S', retry: { delays: ['PT0.2S'] } },
    });
    try {
      const pid = s.service!.child.pid!;
      const before = peakRssMiB(pid);
      const orders = new Map<Behaviour, string>();
      for (const behaviour of ['garbage', 'trickle', 'reset', 'silent', 'huge'] as const) {
        const id = randomUUID();
        orders.set(behaviour, id);
        raw.behaviours.set(id, behaviour);
        await s.db.query("INSERT INTO orders (id, state) VALUES ($1, 'created')", [id]);
      }
      const rows = await waitFor(
        async () => {
          const r = await outbox(s.db);
          return r.length === 5 && r.every((row) => row.status === 'failed') && r;
        },
        { what: 'five events failed after their two attempts', timeoutMs: 30_000 },
      );
      const attempts = await s.db.query<AttemptRow>(
        `SELECT o.order_id::text, a.attempt, a.http_status, a.error, a.error_kind, a.duration_ms
           FROM order_webhooks.outbox_attempt a JOIN order_webhooks.outbox o ON o.id = a.outbox_id ORDER BY a.id`,
      );
      const of = (behaviour: Behaviour) => attempts.filter((a) => a.order_id === orders.get(behaviour));
      const expected: [Behaviour, RegExp, string][] = [
        ['garbage', /^response: the receiver's answer is not valid HTTP \(Parse Error: Expected HTTP\/.*; HPE_INVALID_CONSTANT\)$/, 'body'],
        ['trickle', /^timeout: no complete response within webHook\.requestTimeout \(2000 ms\)$/, 'timeout'],
        ['reset', /^connection closed by the receiver before it answered \(ECONNRESET\)$/, 'reset'],
        ['silent', /^timeout: no complete response within webHook\.requestTimeout \(2000 ms\)$/, 'timeout'],
        ['huge', /^http: 500 Internal Server Error \(body not read past 64 KiB\)$/, 'http_status'],
      ];
      for (const [behaviour, reason, kind] of expected) {
        const tries = of(behaviour);
        assert.equal(tries.length, 2, `${behaviour}: two attempts`);
        for (const attempt of tries) {
          assert.match(attempt.error ?? '', reason, behaviour);
          assert.equal(attempt.error_kind, kind, behaviour);
        }
        const row = rows.find((r) => r.order_id === orders.get(behaviour))!;
        assert.match(row.last_error ?? '', reason, `${behaviour}: outbox last_error`);
      }
      // Bounded by requestTimeout, not by the receiver.
      for (const attempt of [...of('trickle'), ...of('silent')]) {
        assert.ok(attempt.duration_ms >= 1900 && attempt.duration_ms < 4000, `timed out at ${attempt.duration_ms} ms`);
      }
      assert.deepEqual(
        of('huge').map((a) => a.http_status),
        [500, 500],
      );
      // The endless body: cut at once, not read until the timeout.
      for (const attempt of of('huge')) assert.ok(attempt.duration_ms < 2000, `cut after ${attempt.duration_ms} ms`);
      await waitFor(() => raw.hugeSent.length === 2, { what: 'both endless bodies stopped by the service' });
      for (const sent of raw.hugeSent) assert.ok(sent < 64 * 1024 ** 2, `the receiver got to write only ${sent} bytes`);
      const after = peakRssMiB(pid);
      t.diagnostic(
        `service peak RSS ${before.toFixed(0)} -> ${after.toFixed(0)} MiB; endless bodies cut after ${raw.hugeSent.join(', ')} bytes written`,
      );
      assert.ok(after - before < 64, `peak RSS ${before.toFixed(0)} -> ${after.toFixed(0)} MiB`);
      assert.ok(after < 300, `peak RSS ${after.toFixed(0)} MiB`);

      // Still up, and still delivering.
      assert.equal(s.service!.child.exitCode, null, 'the service is running');
      const fine = randomUUID();
      await s.db.query("INSERT INTO orders (id, state) VALUES ($1, 'created')", [fine]);
      await waitFor(async () => (await outbox(s.db)).find((r) => r.order_id === fine && r.status === 'delivered'), {
        what: 'a later order delivered',
      });
    } finally {
      await raw.close();
    }
  });

  it('a host that does not resolve (.invalid) is a failed attempt in the dns phase', async () => {
    const s = await stack('dns', {
      webHook: { endpoint: 'http://order-webhooks-receiver.invalid/automation', connectionTimeout: 'PT3S', retry: { delays: ['PT0.2S'] } },
    });
    await s.db.query("INSERT INTO orders (state) VALUES ('created')");
    const row = await waitFor(async () => (await outbox(s.db)).find((r) => r.status === 'failed'), { what: 'failed' });
    assert.equal(row.attempts, 2);
    assert.equal(row.last_status, null);
    // ENOTFOUND where a DNS server answers; EAI_AGAIN or the lookup timeout where none does.
    assert.match(
      row.last_error ?? '',
      /^(dns: host not found \((ENOTFOUND|EAI_AGAIN)\)|timeout: no lookup within webHook\.connectionTimeout)/,
    );
    assert.equal(s.service!.child.exitCode, null);
  });
});
