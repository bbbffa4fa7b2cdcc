// Soak: `npm run soak -- [minutes] [changes per second]` (default 10 minutes, 100/s). Not part of `npm test`.
// Two service instances deliver a steady stream of order changes while a chaos loop kills them
// (kill -9), kills their database connections (pg_terminate_backend) and takes the receiver down,
// and the receiver itself fails now and then (500s, hangs). Then everything is healed, drained and
// checked: every committed change delivered, in order per order; the counts are printed.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { run, type ServiceProcess, startService, writeConfig } from './helpers/cli.ts';
import { createOrdersTable, createTestDatabase } from './helpers/db.ts';
import { ORDER_LIFE, playOrder } from './helpers/orders.ts';
import { waitFor } from './helpers/poll.ts';
import { type Receiver, startReceiver } from './helpers/receiver.ts';

const minutes = Number(process.argv[2] ?? 10);
const changesPerSecond = Number(process.argv[3] ?? 100);
const deadline = Date.now() + minutes * 60_000;
const log = (message: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${message}\n`);

const db = await createTestDatabase('soak');
await createOrdersTable(db);
let receiver: Receiver = await startReceiver();
const port = receiver.port;
let healthy = false;
// The requests answered 2xx: an event in here twice is a duplicate the receiver sees.
const accepted = new Set<object>();
const faulty = (r: Receiver) => {
  r.respond = (req, res) => {
    const dice = healthy ? 100 : randomInt(100);
    if (dice < 5) {
      res.statusCode = 500;
      res.end('random failure');
    } else if (dice < 6) {
      // hang: the service's requestTimeout ends it
    } else {
      accepted.add(req);
      res.end('ok');
    }
  };
};

faulty(receiver);
const requests = [...receiver.requests];
const config = writeConfig({
  webHook: {
    enabled: true,
    endpoint: receiver.url,
    secret: 'soak',
    requestTimeout: 'PT2S',
    leaseTimeout: 'PT5S',
    concurrency: 16,
    retry: { delays: ['PT0.5S', 'PT1S', 'PT2S', 'PT3S', 'PT5S', 'PT5S', 'PT5S', 'PT5S', 'PT5S', 'PT5S', 'PT5S', 'PT5S'] },
  },
  database: { url: db.url, pollInterval: 'PT1S' },
  orders: { dueDateColumn: 'due_date' },
  logLevel: 'info',
});
assert.equal((await run(['migrate', '--config', config])).code, 0);
const services: ServiceProcess[] = [await startService(config), await startService(config)];
const counts = { orders: 0, changes: 0, kills: 0, connectionKills: 0, receiverOutages: 0 };

// The order app: eight workers playing order lives, each change its own transaction, paced to a
// steady rate the receiver's failures still let the service keep up with.
let loadRunning = true;
const committed: string[] = [];
const loadStarted = Date.now();
const load = Promise.all(
  Array.from({ length: 8 }, async () => {
    while (loadRunning) {
      const due = loadStarted + (counts.changes / changesPerSecond) * 1000;
      if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
      counts.changes += ORDER_LIFE.length;
      committed.push(await playOrder(db));
      counts.orders++;
    }
  }),
);

// Chaos, every 3 to 10 seconds.
while (Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 3000 + randomInt(7000)));
  const action = randomInt(3);
  if (action === 0) {
    const i = randomInt(services.length);
    await services[i]!.kill();
    counts.kills++;
    services[i] = await startService(config);
    log(`kill -9 of instance ${i}, restarted`);
  } else if (action === 1) {
    const { length } = await db.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'order-webhooks%' AND datname = current_database()",
    );
    counts.connectionKills += length;
    log(`terminated ${length} service connections`);
  } else {
    requests.push(...receiver.requests);
    await receiver.close();
    counts.receiverOutages++;
    await new Promise((resolve) => setTimeout(resolve, 1000 + randomInt(4000)));
    receiver = await startReceiver('/automation', port);
    faulty(receiver);
    log('receiver was down for a moment');
  }
  log(`orders ${counts.orders}, received ${requests.length + receiver.requests.length}`);
}

// Heal and drain.
loadRunning = false;
await load;
healthy = true;
log(`load stopped at ${counts.orders} orders; draining`);
const expected = committed.length * ORDER_LIFE.length;
let lastReport = 0;
await waitFor(
  async () => {
    if (Date.now() - lastReport > 10_000) {
      lastReport = Date.now();
      const status = await db.query(
        `SELECT status, count(*)::int AS n, min(next_attempt_at) AS next FROM order_webhooks.outbox GROUP BY status
         UNION ALL SELECT 'unprocessed changes', count(*)::int, null FROM order_webhooks.change`,
      );
      const alive = services.map((s) => (s.child.exitCode === null && s.child.signalCode === null ? 'up' : `exited ${s.child.exitCode}`));
      log(`draining: ${status.map((r) => `${r.status} ${r.n}`).join(', ')}; instances ${alive.join(', ')}`);
    }
    const [row] = await db.query<{ delivered: number; pending: number }>(
      `SELECT count(*) FILTER (WHERE status = 'delivered')::int AS delivered,
              count(*) FILTER (WHERE status <> 'delivered')::int AS pending FROM order_webhooks.outbox`,
    );
    const unprocessed = await db.query('SELECT 1 FROM order_webhooks.change LIMIT 1');
    return row!.delivered >= expected && row!.pending === 0 && unprocessed.length === 0;
  },
  { what: 'the backlog to drain', timeoutMs: 5 * 60_000, intervalMs: 500 },
).catch((error) => {
  for (const [i, service] of services.entries()) {
    console.error(`--- instance ${i}, last lines:\n${service.output().split('\n').slice(-30).join('\n')}`);
  }
  throw error;
});
requests.push(...receiver.requests);

// Check against what the order app committed, not against our own tables.
const firstArrival = new Map<string, number>();
const byEvent = new Map<string, number>();
requests.forEach((request, index) => {
  const { orderId, eventType } = JSON.parse(request.body) as { orderId: string; eventType: string };
  const key = `${orderId} ${eventType}`;
  if (!firstArrival.has(key)) firstArrival.set(key, index);
  const id = request.headers['x-event-id'] as string;
  byEvent.set(id, (byEvent.get(id) ?? 0) + 1);
});
let lost = 0;
let outOfOrder = 0;
for (const orderId of committed) {
  const arrivals = ORDER_LIFE.map((type) => firstArrival.get(`${orderId} ${type}`));
  lost += arrivals.filter((a) => a === undefined).length;
  const seen = arrivals.filter((a): a is number => a !== undefined);
  if (seen.some((a, i) => i > 0 && a < seen[i - 1]!)) outOfOrder++;
}
// Repeats of an event after a 500, a hang or an outage are retries, not duplicates: a duplicate is
// an event the receiver accepted (2xx) more than once.
const acceptedEvents = new Set<string>();
let duplicates = 0;
for (const request of requests) {
  if (!accepted.has(request)) continue;
  const id = request.headers['x-event-id'] as string;
  if (acceptedEvents.has(id)) duplicates++;
  acceptedEvents.add(id);
}
for (const service of services) await service.stop();
await receiver.close();
await db.drop();

const summary = {
  minutes,
  changes: committed.length * ORDER_LIFE.length,
  events: expected,
  delivered: firstArrival.size,
  requests: requests.length,
  duplicates,
  lost,
  outOfOrder,
  kills: counts.kills,
  connectionKills: counts.connectionKills,
  receiverOutages: counts.receiverOutages,
};
console.table(summary);
if (lost > 0 || outOfOrder > 0) {
  console.error('soak FAILED: changes lost or delivered out of order');
  process.exit(1);
}
console.log('soak passed: every committed change delivered, in order per order');
