// W1b (issue 24): the capture trigger's cost in one bulk statement. One UPDATE of 100,000 orders
// (each changes state) and one INSERT … SELECT of 100,000 orders, each in its own transaction and
// rolled back, on the captured table and on the same table without trigger, alternating; beside
// them the journal rows alone (the same number of narrow rows inserted into order_webhooks.change
// by one statement), the floor of any capture that writes one journal row per change. Wall time
// and the backend's own CPU time (/proc/self/schedstat, read by the backend itself; superusers only),
// which another helper's load disturbs far less. Then one such UPDATE is committed and the service
// delivers its 100,000 events: events/s and peak RSS against W3's.
import type pg from 'pg';
import { now } from './clock.ts';
import type { ReceiverProcess, ServiceProcess } from './processes.ts';
import type { Arrival } from './receiver.ts';

export interface BulkContext {
  db: pg.Client;
  configPath: string;
  receiver: ReceiverProcess;
  log(message: string): void;
  load(): string;
  startService(configPath: string): Promise<ServiceProcess>;
  awaitArrivals(receiver: ReceiverProcess, expected: number): Promise<void>;
  analyse(
    expected: Map<string, { sent: number; ack: number }>,
    arrivals: Arrival[],
    badSignatures: number,
    from?: number,
  ): { delivered: number; lost: number; duplicates: number; perSecond: number };
  bodyOf(id: number, eventType: string): string;
}

type Statement = 'update' | 'insert' | 'journal';

interface Timing {
  statement: Statement;
  table: string;
  round: number;
  ms: number;
  /** The backend's CPU time; null where it cannot be read (not a superuser). */
  cpuMs: number | null;
  load: string;
}

export interface BulkResult {
  rows: number;
  rounds: number;
  timings: Timing[];
  /** Medians, ms: wall and backend CPU. */
  median: Record<string, { ms: number; cpuMs: number | null }>;
  updateRatio: number;
  insertRatio: number;
  updateCpuRatio: number | null;
  insertCpuRatio: number | null;
  /** The journal rows alone against the bare UPDATE: what one row per change costs at least. */
  journalToUpdate: number;
  journalToUpdateCpu: number | null;
  delivery: { expected: number; delivered: number; lost: number; duplicates: number; perSecond: number; peakRssMb: number };
}

const ROWS = 100_000;
const ROUNDS = Number(process.env.BENCH_W1B_ROUNDS ?? 3);
/** Every order changes state: each bulk UPDATE is ROWS changes whatever state the orders are in. */
const FLIP = `state = CASE WHEN state = 'rejected' THEN 'expired' ELSE 'rejected' END`;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function backendCpuMs(db: pg.Client): Promise<number | null> {
  try {
    const { rows } = await db.query<{ ns: string }>("SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1) AS ns");
    return Number(rows[0]!.ns) / 1e6;
  } catch {
    return null;
  }
}

function sql(statement: Statement, table: string): string {
  if (statement === 'update') return `UPDATE ${table} SET ${FLIP} WHERE id <= ${ROWS}`;
  if (statement === 'insert') {
    return `INSERT INTO ${table} (id, state, due_date, note)
              SELECT i, 'created', date '2027-01-01' + (i % 365), 'bench' FROM generate_series(1000001, ${1_000_000 + ROWS}) i`;
  }
  return `INSERT INTO order_webhooks.change (order_id, op, old_state, new_state, old_due_date, new_due_date)
            SELECT i::text, 'UPDATE', 'created', 'rejected', '2027-01-01', '2027-01-01' FROM generate_series(1, ${ROWS}) i`;
}

/** One statement in a transaction that is rolled back, so that every round starts from the same tables. */
async function timeOnce(ctx: BulkContext, statement: Statement, table: string, round: number): Promise<Timing> {
  const { db } = ctx;
  await db.query(`VACUUM ${statement === 'journal' ? 'order_webhooks.change' : `${table}, order_webhooks.change`}`);
  const load = ctx.load();
  await db.query('BEGIN');
  try {
    const cpuBefore = await backendCpuMs(db);
    const started = now();
    await db.query(sql(statement, table));
    const ms = now() - started;
    const cpuAfter = await backendCpuMs(db);
    return { statement, table, round, ms, cpuMs: cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore, load };
  } finally {
    await db.query('ROLLBACK');
  }
}

export async function runBulk(ctx: BulkContext): Promise<BulkResult> {
  const { db, log } = ctx;
  const timings: Timing[] = [];
  log(
    `W1b: ${ROUNDS} rounds of one UPDATE and one INSERT … SELECT of ${ROWS.toLocaleString('en-US')} orders, bare and captured, alternating`,
  );
  for (let round = 1; round <= ROUNDS; round++) {
    for (const statement of ['update', 'insert'] as const) {
      for (const table of ['orders_bare', 'orders']) {
        const t = await timeOnce(ctx, statement, table, round);
        timings.push(t);
        log(`W1b ${statement} ${table}: ${t.ms.toFixed(0)} ms, backend CPU ${t.cpuMs?.toFixed(0) ?? 'n/a'} ms`);
      }
    }
    const t = await timeOnce(ctx, 'journal', 'order_webhooks.change', round);
    timings.push(t);
    log(`W1b journal rows alone: ${t.ms.toFixed(0)} ms, backend CPU ${t.cpuMs?.toFixed(0) ?? 'n/a'} ms`);
  }
  const med: BulkResult['median'] = {};
  for (const key of ['update orders_bare', 'update orders', 'insert orders_bare', 'insert orders', 'journal order_webhooks.change']) {
    const of = timings.filter((t) => `${t.statement} ${t.table}` === key);
    const cpu = of.map((t) => t.cpuMs);
    med[key] = { ms: median(of.map((t) => t.ms)), cpuMs: cpu.includes(null) ? null : median(cpu as number[]) };
  }
  const ratio = (a: string, b: string, cpu: boolean) => {
    const x = cpu ? med[a]!.cpuMs : med[a]!.ms;
    const y = cpu ? med[b]!.cpuMs : med[b]!.ms;
    return x === null || y === null ? null : x / y;
  };

  // The delivery: one bulk UPDATE committed while the service is stopped, then the service starts.
  await ctx.receiver.phase();
  const { rows: before } = await db.query<{ id: string; state: string }>(`SELECT id, state FROM orders WHERE id <= ${ROWS}`);
  const sent = now();
  await db.query(`UPDATE orders SET ${FLIP} WHERE id <= ${ROWS}`);
  const ack = now();
  const expected = new Map(
    before.map((r) => [ctx.bodyOf(Number(r.id), r.state === 'rejected' ? 'OrderExpired' : 'OrderRejected'), { sent, ack }]),
  );
  log(`W1b: ${expected.size.toLocaleString('en-US')} changes committed in one UPDATE; starting the service`);
  const service = await ctx.startService(ctx.configPath);
  try {
    await ctx.awaitArrivals(ctx.receiver, expected.size);
    const got = await ctx.receiver.collect();
    const drain = ctx.analyse(expected, got.arrivals, got.badSignatures, service.startedAt);
    const delivery = {
      expected: expected.size,
      delivered: drain.delivered,
      lost: drain.lost,
      duplicates: drain.duplicates,
      perSecond: drain.perSecond,
      peakRssMb: service.peakRssMb(),
    };
    log(
      `W1b: ${delivery.perSecond.toFixed(0)} events/s, peak RSS ${delivery.peakRssMb.toFixed(0)} MB, lost ${delivery.lost}, dup ${delivery.duplicates}`,
    );
    return {
      rows: ROWS,
      rounds: ROUNDS,
      timings,
      median: med,
      updateRatio: ratio('update orders', 'update orders_bare', false)!,
      insertRatio: ratio('insert orders', 'insert orders_bare', false)!,
      updateCpuRatio: ratio('update orders', 'update orders_bare', true),
      insertCpuRatio: ratio('insert orders', 'insert orders_bare', true),
      journalToUpdate: ratio('journal order_webhooks.change', 'update orders_bare', false)!,
      journalToUpdateCpu: ratio('journal order_webhooks.change', 'update orders_bare', true),
      delivery,
    };
  } finally {
    await service.stop();
    // The orders get their states back, uncaptured (a replica session: the trigger fires in none by
    // default), so that the workloads after this one find the states they expect.
    await db.query('BEGIN');
    await db.query('SET LOCAL session_replication_role = replica');
    await db.query(`UPDATE orders o SET state = b.state FROM unnest($1::bigint[], $2::text[]) AS b(id, state) WHERE o.id = b.id`, [
      before.map((r) => r.id),
      before.map((r) => r.state),
    ]);
    await db.query('COMMIT');
  }
}

/** The report's rows for W1b: [measure, value, target, met]. */
export function bulkRows(
  r: BulkResult,
  w3: { perSecond: number; peakRssMb: number } | undefined,
  f: (n: number, digits?: number) => string,
): [string, string, string, boolean | undefined][] {
  const m = r.median;
  const both = (ratio: number, cpu: number | null) => `${f(ratio, 2)}× wall${cpu === null ? '' : `, ${f(cpu, 2)}× backend CPU`}`;
  const ms = (key: string) => `${f(m[key]!.ms)}${m[key]!.cpuMs === null ? '' : ` (CPU ${f(m[key]!.cpuMs!)})`}`;
  const d = r.delivery;
  return [
    [`W1b UPDATE of ${f(r.rows)} orders ms, bare / captured`, `${ms('update orders_bare')} / ${ms('update orders')}`, '', undefined],
    ['W1b UPDATE captured / bare', both(r.updateRatio, r.updateCpuRatio), '≤ 2×', r.updateRatio <= 2],
    [
      `W1b INSERT … SELECT of ${f(r.rows)} orders ms, bare / captured`,
      `${ms('insert orders_bare')} / ${ms('insert orders')}`,
      '',
      undefined,
    ],
    ['W1b INSERT … SELECT captured / bare', both(r.insertRatio, r.insertCpuRatio), '≤ 2×', r.insertRatio <= 2],
    [
      `W1b journal rows alone (${f(r.rows)} in one INSERT) ms; / bare UPDATE`,
      `${ms('journal order_webhooks.change')}; ${both(r.journalToUpdate, r.journalToUpdateCpu)}`,
      '',
      undefined,
    ],
    [
      'W1b delivery of the bulk UPDATE events/s',
      f(d.perSecond),
      w3 ? `≥ ${f(w3.perSecond)} (W3 in this run)` : '≥ W3 (not run)',
      w3 ? d.perSecond >= w3.perSecond : undefined,
    ],
    ['W1b service peak RSS MB', f(d.peakRssMb), `≤ 120 (W3's bound${w3 ? `; W3 here ${f(w3.peakRssMb)}` : ''})`, d.peakRssMb <= 120],
    ['W1b lost / duplicates', `${d.lost} / ${d.duplicates}`, '0 / 0', d.lost === 0 && d.duplicates === 0],
  ];
}
