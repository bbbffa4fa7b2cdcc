// Connecting to the database: every connection is bounded (a host that never answers fails within
// the connect timeout, in one line), and `start` waits for a database that is not up yet, for up to
// database.startTimeout, while a refused login fails at once.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { CONNECT_TIMEOUT_MS } from '../src/db.ts';
import { run, startService, writeConfig } from './helpers/cli.ts';
import { serverUrl } from './helpers/db.ts';
import { checkDeliveries, ORDER_LIFE, playOrders } from './helpers/orders.ts';
import { waitFor } from './helpers/poll.ts';
import { stacksClosedAfter } from './helpers/stack.ts';
import { startTcpProxy, type TcpProxy } from './helpers/tcpProxy.ts';

/** Ignored by the test server (trust auth), so it only shows whether a password leaks into output. */
const PASSWORD = 'DbPassw0rd-connect-9q';
/** Starting node and loading the CLI on a busy 2-core machine, on top of what is measured. */
const PROCESS_SLACK_MS = 8000;

/** A TCP server that accepts connections and never says a word, as a black-holed host does after the handshake. */
async function blackHole(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port on which nothing listens (now). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function withPort(url: string, port: number, password = PASSWORD): string {
  const moved = new URL(url);
  moved.hostname = '127.0.0.1';
  moved.port = String(port);
  moved.password = password;
  return moved.toString();
}

describe('connecting to the database', () => {
  const stack = stacksClosedAfter();
  const closers: (() => Promise<void>)[] = [];
  after(async () => {
    for (const close of closers.reverse()) await close();
  });

  it('status against a host that accepts and never answers fails within the connect timeout: one line, exit 1', async () => {
    const hole = await blackHole();
    closers.push(() => hole.close());
    const config = writeConfig({ database: { url: withPort(serverUrl('nowhere'), hole.port) } });
    const started = Date.now();
    const result = await run(['status', '--config', config], {}, CONNECT_TIMEOUT_MS + 30_000);
    const tookMs = Date.now() - started;
    assert.equal(result.code, 1, result.stderr);
    assert.equal(
      result.stderr,
      `order-webhooks: status: cannot connect to the database: no connection within ${CONNECT_TIMEOUT_MS / 1000} s (the host does not answer)\n`,
    );
    assert.equal(result.stdout, '');
    assert.ok(tookMs >= CONNECT_TIMEOUT_MS - 500, `gave up after ${tookMs} ms, before the connect timeout`);
    assert.ok(tookMs < CONNECT_TIMEOUT_MS + PROCESS_SLACK_MS, `took ${tookMs} ms`);
  });

  it('start waits for a database that is not up yet, saying so at warn, then starts and delivers once it is', async () => {
    const port = await freePort();
    const s = await stack('connect_wait', {
      startNow: false,
      database: { startTimeout: 'PT1M' },
      serviceUrl: (url) => withPort(url, port),
    });
    const service = await startService(s.configPath, {}, false);
    s.service = service;
    // Polled, not slept: the service has tried and failed at least twice before the database appears.
    await service.waitForLog(/"attempt":2,[^\n]*"msg":"database not reachable yet; trying again"/, 30_000);
    const { hostname, port: realPort } = new URL(serverUrl());
    const proxy: TcpProxy = await startTcpProxy({ host: hostname, port: Number(realPort) }, port);
    closers.push(() => proxy.close());
    await service.waitForLog('"msg":"started"', 60_000);

    const lines = service
      .output()
      .split('\n')
      .filter((line) => line.includes('database not reachable yet'));
    assert.ok(lines.length >= 2, service.output());
    for (const line of lines) {
      const entry = JSON.parse(line);
      assert.equal(entry.level, 40, 'logged at warn');
      assert.match(entry.reason, /^cannot connect to the database: .*ECONNREFUSED/);
    }
    assert.match(service.output(), /"msg":"database reachable"/);
    assert.ok(!service.output().includes(PASSWORD), 'the password is never logged');

    const ids = await playOrders(s.db, 2);
    await s.receiver.waitForCount(ids.length * ORDER_LIFE.length, 30_000);
    // Results are written back in batches: the outbox says delivered a moment after the receiver got them.
    await waitFor(
      async () =>
        (await s.db.query("SELECT 1 FROM order_webhooks.outbox WHERE status = 'delivered'")).length === ids.length * ORDER_LIFE.length,
      { what: 'every event recorded delivered', timeoutMs: 30_000 },
    );
    const check = await checkDeliveries(s.db, s.receiver.requests, ids);
    assert.equal(check.events, ids.length * ORDER_LIFE.length);
    assert.equal((await service.stop()).code, 0);
  });

  it('start gives up after database.startTimeout with one line and exit 1', async () => {
    const port = await freePort();
    const config = writeConfig({
      webHook: { enabled: true, endpoint: 'http://127.0.0.1:1/hook' },
      database: { url: withPort(serverUrl('nowhere'), port), startTimeout: 'PT2S' },
    });
    const started = Date.now();
    const result = await run(['start', '--config', config]);
    const tookMs = Date.now() - started;
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      /^order-webhooks: start: the database took no connection within database\.startTimeout \(2 s, \d+ tries\); the last: cannot connect to the database: connect ECONNREFUSED 127\.0\.0\.1:\d+\n$/,
    );
    assert.match(result.stdout, /database not reachable yet; trying again/);
    assert.ok(tookMs < 2000 + PROCESS_SLACK_MS, `took ${tookMs} ms`);
    for (const output of [result.stdout, result.stderr]) assert.ok(!output.includes(PASSWORD));
  });

  it('start does not wait on what waiting cannot mend: a missing database fails at once, exit 2', async () => {
    const { port } = new URL(serverUrl());
    const config = writeConfig({
      webHook: { enabled: true, endpoint: 'http://127.0.0.1:1/hook' },
      database: { url: withPort(serverUrl('ow_test_no_such_database'), Number(port)), startTimeout: 'PT1M' },
    });
    const started = Date.now();
    const result = await run(['start', '--config', config]);
    assert.equal(result.code, 2, result.stderr);
    assert.equal(
      result.stderr,
      'order-webhooks: start: the database refused the connection: database "ow_test_no_such_database" does not exist (3D000); check database.url\n',
    );
    assert.doesNotMatch(result.stdout, /not reachable yet/);
    assert.ok(Date.now() - started < PROCESS_SLACK_MS, 'without waiting for the start timeout');
    assert.ok(!result.stdout.includes(PASSWORD) && !result.stderr.includes(PASSWORD));
  });
});
