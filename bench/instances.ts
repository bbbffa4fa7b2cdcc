// W9 instances: 1, 2 and 4 service processes on one database against a receiver that answers after
// 50 ms (W4's, which runs one). Each instance sends up to webHook.concurrency requests at a time,
// so the ceiling is instances × concurrency / 50 ms; deliveries per second should follow it until
// PostgreSQL, the receiver or the machine's cores are the limit. Where the CPU went says which.
import type pg from 'pg';
import { now } from './clock.ts';
import { cpuSecondsOf, machineCpuSeconds, type ReceiverProcess, type ServiceProcess, startService } from './processes.ts';
import type { Arrival } from './receiver.ts';

const INSTANCES = (process.env.BENCH_W9_INSTANCES ?? '1,2,4').split(',').map(Number);
/** Changes per run, per instance: each run lasts a few seconds at its ceiling. */
const CHANGES_PER_INSTANCE = Number(process.env.BENCH_W9_CHANGES ?? 4000);
const RECEIVER_DELAY_MS = 50;
/** The ids W9 moves: those of W2 and W3, which no later workload needs in a given state. */
const FIRST_ID = 1;

interface Commit {
  sent: number;
  ack: number;
}

export interface InstancesContext {
  db: pg.Client;
  configPath: string;
  receiver: ReceiverProcess;
  concurrency: number;
  serviceNodeArgs: string[];
  log: (message: string) => void;
  load: () => string;
  awaitArrivals: (receiver: ReceiverProcess, expected: number) => Promise<void>;
  analyse: (
    expected: Map<string, Commit>,
    arrivals: Arrival[],
    badSignatures: number,
    from?: number,
  ) => { delivered: number; lost: number; duplicates: number; perSecond: number };
}

export interface InstancesRun {
  instances: number;
  changes: number;
  perSecond: number;
  ceiling: number;
  ratio: number;
  lost: number;
  duplicates: number;
  /**
   * CPU % of one core over the run: the machine (of 200 on two cores), this database's PostgreSQL
   * backends, the services together, the receiver, and the rest (other processes on the machine).
   */
  cpu: { machine: number; postgres: number; services: number; receiver: number; other: number };
  load: string;
}

/** CPU seconds so far of each backend of this database (the services', the bench's). */
async function backendsCpu(db: pg.Client): Promise<Map<number, number>> {
  const { rows } = await db.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database()');
  const out = new Map<number, number>();
  for (const { pid } of rows) {
    try {
      out.set(pid, cpuSecondsOf(pid));
    } catch {
      // exited since pg_stat_activity listed it
    }
  }
  return out;
}

const EVENT_OF: Record<string, string> = { accepted: 'OrderAccepted', signed: 'OrderSigned' };

export async function runInstances(ctx: InstancesContext): Promise<InstancesRun[]> {
  const runs: InstancesRun[] = [];
  for (const n of INSTANCES) {
    const changes = CHANGES_PER_INSTANCE * n;
    const services: ServiceProcess[] = [];
    try {
      for (let i = 0; i < n; i++) services.push(await startService(ctx.configPath, ctx.serviceNodeArgs));
      await ctx.receiver.phase(RECEIVER_DELAY_MS);
      const load = ctx.load();
      ctx.log(`W9 ${n} instance(s): ${changes.toLocaleString('en-US')} changes, receiver answering after ${RECEIVER_DELAY_MS} ms`);
      const cpuOf = () => ({
        machine: machineCpuSeconds(),
        services: services.reduce((sum, s) => sum + s.cpuSeconds(), 0),
        receiver: ctx.receiver.cpuSeconds(),
        bench: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
      });
      const before = cpuOf();
      const backendsBefore = await backendsCpu(ctx.db);
      const startedAt = performance.now();
      // One statement, as W4: each order flips between two states, so that every row is an event.
      const sent = now();
      const { rows } = await ctx.db.query<{ id: string; state: string }>(
        `UPDATE orders SET state = CASE state WHEN 'accepted' THEN 'signed' ELSE 'accepted' END
          WHERE id BETWEEN $1 AND $2 RETURNING id, state`,
        [FIRST_ID, FIRST_ID + changes - 1],
      );
      const ack = now();
      await ctx.awaitArrivals(ctx.receiver, changes);
      const seconds = (performance.now() - startedAt) / 1000;
      const after = cpuOf();
      const backendsAfter = await backendsCpu(ctx.db);
      const postgres = [...backendsAfter].reduce((sum, [pid, cpu]) => sum + cpu - (backendsBefore.get(pid) ?? 0), 0);
      const got = await ctx.receiver.collect();
      const expected = new Map(
        rows.map((r) => [JSON.stringify({ orderId: String(r.id), eventType: EVENT_OF[r.state]! }), { sent, ack }] as const),
      );
      // From the commit: the UPDATE's own time (the capture trigger's, W1b's subject) is left out.
      const delivery = ctx.analyse(expected, got.arrivals, got.badSignatures, ack);
      const ceiling = (n * ctx.concurrency * 1000) / RECEIVER_DELAY_MS;
      const pct = (s: number) => (s / seconds) * 100;
      const machine = after.machine - before.machine;
      const services_ = after.services - before.services;
      const receiver = after.receiver - before.receiver;
      const run: InstancesRun = {
        instances: n,
        changes,
        perSecond: delivery.perSecond,
        ceiling,
        ratio: delivery.perSecond / ceiling,
        lost: delivery.lost,
        duplicates: delivery.duplicates,
        cpu: {
          machine: pct(machine),
          services: pct(services_),
          receiver: pct(receiver),
          postgres: pct(postgres),
          other: pct(Math.max(0, machine - postgres - services_ - receiver - (after.bench - before.bench))),
        },
        load,
      };
      runs.push(run);
      ctx.log(
        `W9 ${n} instance(s): ${run.perSecond.toFixed(0)} events/s of ${ceiling} (${run.ratio.toFixed(2)}), lost ${run.lost}, dup ${run.duplicates}; CPU % of a core: machine ${run.cpu.machine.toFixed(0)} (of 200), postgres ${run.cpu.postgres.toFixed(0)}, services ${run.cpu.services.toFixed(0)}, receiver ${run.cpu.receiver.toFixed(0)}, other processes ${run.cpu.other.toFixed(0)}`,
      );
    } finally {
      for (const s of services) await s.stop();
    }
  }
  return runs;
}

type Row = [string, string, string, boolean | undefined];

/** W9's lines of the bench's table. */
export function instancesRows(runs: InstancesRun[] | undefined, f: (n: number, digits?: number) => string): Row[] {
  if (!runs) return [];
  return runs.flatMap((r): Row[] => [
    [
      `W9 ${r.instances} instance(s), 50 ms receiver: events/s of instances × concurrency / 50 ms`,
      `${f(r.perSecond)} of ${f(r.ceiling)} (${f(r.ratio, 2)})`,
      '',
      undefined,
    ],
    [
      `W9 ${r.instances} instance(s): CPU % of a core, machine (of 200) / postgres / services / receiver / other processes; lost / dup`,
      `${f(r.cpu.machine)} / ${f(r.cpu.postgres)} / ${f(r.cpu.services)} / ${f(r.cpu.receiver)} / ${f(r.cpu.other)}; ${r.lost} / ${r.duplicates}`,
      '',
      undefined,
    ],
  ]);
}
