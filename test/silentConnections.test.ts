import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { serverUrl } from './helpers/db.ts';
import { checkDeliveries, ORDER_LIFE, playOrders } from './helpers/orders.ts';
import { waitFor } from './helpers/poll.ts';
import { stacksClosedAfter } from './helpers/stack.ts';
import { startTcpProxy, type TcpProxy } from './helpers/tcpProxy.ts';

/** docs/operations.md, "Connections and timeouts": the worst case with the default timeouts. */
const DETECTED_WITHIN_MS = 30_000;

describe('connections that stop answering', () => {
  const stack = stacksClosedAfter();
  const proxies: TcpProxy[] = [];
  after(async () => {
    for (const proxy of proxies) await proxy.close();
  });

  it('silently dead connections are detected, logged and replaced; orders committed meanwhile are delivered', async () => {
    const { hostname, port } = new URL(serverUrl());
    const proxy = await startTcpProxy({ host: hostname, port: Number(port) });
    proxies.push(proxy);
    // The service reaches the database only through the proxy; the test plays the order app directly.
    const s = await stack('silent', { serviceUrl: (url) => proxy.via(url) });
    const first = await playOrders(s.db, 1);
    await s.receiver.waitForCount(ORDER_LIFE.length);
    // The pool, the wake-lock and the listen connection at least.
    assert.ok(proxy.live >= 3, `${proxy.live} service connections through the proxy`);

    proxy.freeze();
    const frozenAt = Date.now();
    const ids = await playOrders(s.db, 3);
    const events = (first.length + ids.length) * ORDER_LIFE.length;
    await s.receiver.waitForCount(events, DETECTED_WITHIN_MS).catch((error: Error) => {
      throw new Error(`${error.message}\nservice output (tail):\n${s.service!.output().slice(-4000)}`);
    });
    const tookMs = Date.now() - frozenAt;
    assert.ok(tookMs < DETECTED_WITHIN_MS, `delivered ${tookMs} ms after the freeze`);

    const output = s.service!.output();
    assert.match(output, /connection gave no answer in time; it is closed/);
    assert.match(output, /listen connection lost; reconnecting/);
    await waitFor(() => /listen connection \(re\)established/.test(s.service!.output()), { what: 'the listener back' });
    assert.ok(proxy.live >= 2, 'new connections opened through the proxy');
    // No query was sent behind one that hung (pg's warning says so when it happens).
    assert.doesNotMatch(s.service!.output(), /already executing a query/);

    // And the replaced connections work: what comes now is delivered promptly.
    const later = await playOrders(s.db, 1);
    await s.receiver.waitForCount(events + ORDER_LIFE.length, 10_000);
    // Results recorded on a connection that died are recorded again on a new one.
    await waitFor(
      async () => {
        const [row] = await s.db.query<{ pending: number }>(
          `SELECT (SELECT count(*) FROM order_webhooks.outbox WHERE status <> 'delivered')::int
                  + (SELECT count(*) FROM order_webhooks.change)::int AS pending`,
        );
        return row!.pending === 0;
      },
      { what: 'every attempt recorded' },
    );
    const check = await checkDeliveries(s.db, s.receiver.requests, [...first, ...ids, ...later]);
    assert.equal(check.events, events + ORDER_LIFE.length);
    assert.equal(check.duplicates, 0);
  });
});
