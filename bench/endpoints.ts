// W8: several receivers. Fan-out: three endpoints each receiving every event, deliveries per second
// in all (against W2 in the same run). Isolation: one endpoint answering 503, or hanging, while
// another is healthy: the healthy one's paced latency against a run where both are healthy.
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import type { ReceiverProcess, ServiceProcess } from './processes.ts';
import type { Arrival } from './receiver.ts';
import type { Latency } from './stats.ts';

interface Commit {
  sent: number;
  ack: number;
}

interface Delivery {
  expected: number;
  delivered: number;
  lost: number;
  duplicates: number;
  perSecond: number;
  latency: Latency;
  firstArrival: number;
  lastArrival: number;
}

export interface EndpointsContext {
  db: pg.Client;
  /** The bench's config (webHook to the main receiver). */
  configPath: string;
  receiver: ReceiverProcess;
  log: (message: string) => void;
  startReceiver: () => Promise<ReceiverProcess>;
  startService: (configPath: string) => Promise<ServiceProcess>;
  commitChanges: (ids: number[], state: string, connections: number, perSecond?: number) => Promise<Map<number, Commit>>;
  awaitArrivals: (receiver: ReceiverProcess, expected: number) => Promise<void>;
  analyse: (expected: Map<string, Commit>, arrivals: Arrival[], badSignatures: number) => Delivery;
  keyed: (commits: Map<number, Commit>, eventType: string) => Map<string, Commit>;
}

export interface EndpointsResult {
  fanout: {
    endpoints: number;
    changes: number;
    deliveries: number;
    /** Deliveries per second, all endpoints together, from the first commit to the last arrival. */
    perSecond: number;
    perEndpoint: Delivery[];
    peakRssMb: number;
  };
  isolation: {
    perSecond: number;
    changes: number;
    /** The healthy endpoint's paced delivery when the other is healthy too, answers 503, or hangs. */
    runs: { other: 'healthy' | '503' | 'hanging'; healthy: Delivery; otherAnswered: number }[];
  };
}

const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);

/** A receiver that accepts connections and requests and never answers (until closed). */
async function hangingServer(): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server: Server = createServer(() => {
    requests++;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hang`,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function runEndpoints(ctx: EndpointsContext): Promise<EndpointsResult> {
  const base = JSON.parse(readFileSync(ctx.configPath, 'utf8'));
  const write = (name: string, webHooks: object[]) => {
    const path = ctx.configPath.replace(/\.json$/, `-w8-${name}.json`);
    writeFileSync(path, JSON.stringify({ ...base, webHooks }, null, 2));
    return path;
  };
  const second = await ctx.startReceiver();
  const third = await ctx.startReceiver();
  const hanging = await hangingServer();
  const hook = (name: string, endpoint: string) => ({
    name,
    endpoint,
    secret: base.webHook.secret,
    concurrency: base.webHook.concurrency,
  });
  try {
    // Fan-out: every change to three endpoints.
    let service = await ctx.startService(write('fanout', [hook('second', second.url), hook('third', third.url)]));
    const changes = 10_000;
    for (const r of [ctx.receiver, second, third]) await r.phase();
    ctx.log(`W8 fan-out: ${changes.toLocaleString('en-US')} changes from 8 connections, to 3 endpoints`);
    const commits = await ctx.commitChanges(range(80_001, changes), 'signed', 8);
    for (const r of [ctx.receiver, second, third]) await ctx.awaitArrivals(r, changes);
    const perEndpoint: Delivery[] = [];
    for (const r of [ctx.receiver, second, third]) {
      const got = await r.collect();
      perEndpoint.push(ctx.analyse(ctx.keyed(commits, 'OrderSigned'), got.arrivals, got.badSignatures));
    }
    const firstSent = Math.min(...[...commits.values()].map((c) => c.sent));
    const lastArrival = Math.max(...perEndpoint.map((d) => d.lastArrival));
    const deliveries = perEndpoint.reduce((n, d) => n + d.delivered, 0);
    const fanout = {
      endpoints: 3,
      changes,
      deliveries,
      perSecond: deliveries / ((lastArrival - firstSent) / 1000),
      perEndpoint,
      peakRssMb: service.peakRssMb(),
    };
    ctx.log(
      `W8 fan-out: ${fanout.perSecond.toFixed(0)} deliveries/s in all; lost ${perEndpoint.map((d) => d.lost).join('/')}, dup ${perEndpoint.map((d) => d.duplicates).join('/')}; peak RSS ${fanout.peakRssMb.toFixed(0)} MB`,
    );
    await service.stop();

    // Isolation: default is the healthy endpoint; "other" is healthy, answers 503, or hangs.
    const paced = 400;
    const isolationChanges = 4000;
    const runs: EndpointsResult['isolation']['runs'] = [];
    const plan: { other: 'healthy' | '503' | 'hanging'; ids: number[]; state: string; type: string }[] = [
      { other: 'healthy', ids: range(90_001, isolationChanges), state: 'accepted', type: 'OrderAccepted' },
      { other: '503', ids: range(94_001, isolationChanges), state: 'accepted', type: 'OrderAccepted' },
      { other: 'hanging', ids: range(80_001, isolationChanges), state: 'rejected', type: 'OrderRejected' },
    ];
    for (const run of plan) {
      const url = run.other === 'hanging' ? hanging.url : second.url;
      service = await ctx.startService(write(`isolation-${run.other}`, [hook('other', url)]));
      await ctx.receiver.phase();
      await second.phase(0, run.other === '503' ? 503 : 200);
      ctx.log(`W8 isolation, other endpoint ${run.other}: ${paced} commits/s for ${isolationChanges / paced} s`);
      const paced_ = await ctx.commitChanges(run.ids, run.state, 8, paced);
      await ctx.awaitArrivals(ctx.receiver, run.ids.length);
      const got = await ctx.receiver.collect();
      const healthy = ctx.analyse(ctx.keyed(paced_, run.type), got.arrivals, got.badSignatures);
      const answered = await second.counts();
      const otherCount = run.other === 'hanging' ? hanging.requests() : answered.accepted + answered.rejected;
      runs.push({ other: run.other, healthy, otherAnswered: otherCount });
      ctx.log(
        `W8 isolation, other ${run.other}: healthy endpoint p50 ${healthy.latency.p50.toFixed(1)} ms, p99 ${healthy.latency.p99.toFixed(1)} ms, lost ${healthy.lost}; other endpoint got ${otherCount} requests`,
      );
      await service.stop();
      // The troubled endpoint's events would wait for their retries: not the next run's business.
      await ctx.db.query("DELETE FROM order_webhooks.outbox WHERE endpoint = 'other'");
    }
    return { fanout, isolation: { perSecond: paced, changes: isolationChanges, runs } };
  } finally {
    second.close();
    third.close();
    await hanging.close();
  }
}
