// PostgreSQL connections, names and lock keys.
import { createHash } from 'node:crypto';
import pg from 'pg';
import { AppError, DatabaseError, DatabaseRefusedError, DatabaseUnreachableError } from './errors.ts';
import type { Logger } from './log.ts';

export const { escapeIdentifier: ident, escapeLiteral: literal } = pg;

/** Anything that runs a query: a pool, a pooled or a single client. */
export type Db = pg.ClientBase | pg.Pool;

/** Settings every connection of the service's pool sets in its startup packet (see createPool). */
export const SESSION_OPTIONS = '-c enable_seqscan=off -c jit=off';

/** How long opening a connection may take (TCP, TLS and start-up) before it counts as failed. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** TCP keepalive: probes start after this long without traffic, on our side and the server's. */
export const KEEPALIVE_IDLE_MS = 10_000;
/** The server's keepalive probes: every 5 s, 3 unanswered ones end the session (and its locks). */
const SERVER_KEEPALIVES = '-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3';
/**
 * A statement the server has not answered this long after its statement_timeout would have
 * cancelled it: the connection is deemed dead (a firewall, a NAT or a failover dropped it without
 * a FIN or RST), dropped and replaced. Only pg's client-side query_timeout notices a silent socket.
 */
export const ANSWER_GRACE_MS = 2000;

/** The client-side timeout that declares a connection dead, for a given `database.statementTimeout`. */
export const answerTimeoutMs = (statementTimeoutMs: number): number => statementTimeoutMs + ANSWER_GRACE_MS;

/** How one connection of ours is set up: every pg client and pool is built from one (connectionConfig). */
export interface ConnectionSettings {
  /** application_name: `status` tells the service's connections from the commands' by it. */
  name: string;
  /**
   * The server cancels a statement of ours that runs longer. null sets none: migrate's DDL may wait
   * behind the order app's transactions, which its lock_timeout bounds instead.
   */
  statementTimeoutMs: number | null;
  /** Client side: a statement unanswered this long means a dead connection; default statementTimeoutMs + ANSWER_GRACE_MS. */
  answerTimeoutMs?: number;
  /** More settings for the startup packet. */
  options?: string;
  /**
   * false: nothing in the startup packet, and the statement timeout is kept on our side only. For
   * connections that must get through a pooler before the probe has judged it: PgBouncer refuses
   * the parameter `options` unless told to ignore it, and the probe says that in a line of its own.
   */
  startupOptions?: boolean;
  /** How long opening may take; CONNECT_TIMEOUT_MS unless less time is left (start's wait). */
  connectTimeoutMs?: number;
}

/** Settings for one connection: bounded connect, keepalive on both sides, statement and answer timeouts. */
export function connectionConfig(url: string, settings: ConnectionSettings): pg.ClientConfig {
  const { statementTimeoutMs, startupOptions = true } = settings;
  const answerMs = settings.answerTimeoutMs ?? (statementTimeoutMs === null ? undefined : answerTimeoutMs(statementTimeoutMs));
  const options = [
    statementTimeoutMs === null ? '' : `-c statement_timeout=${statementTimeoutMs}`,
    SERVER_KEEPALIVES,
    settings.options ?? '',
  ]
    .filter(Boolean)
    .join(' ');
  return {
    connectionString: url,
    application_name: settings.name,
    connectionTimeoutMillis: settings.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_IDLE_MS,
    ...(answerMs === undefined ? {} : { query_timeout: answerMs }),
    ...(startupOptions ? { options } : {}),
  };
}

/**
 * A client built from `settings`, not yet connected. `onError` hears a connection that fails while
 * no query of its own is running: without a listener that 'error' event would end the process.
 */
export function createClient(url: string, settings: ConnectionSettings, onError: (error: Error) => void): pg.Client {
  const client = new pg.Client(connectionConfig(url, settings));
  client.on('error', onError);
  return client;
}

/**
 * A connected client, or the reason it could not be had as a coded error: DatabaseRefusedError when
 * the server turned this login away (fixed in database.url), DatabaseUnreachableError otherwise.
 * By default a failure while connected is left to the query it breaks, which reports it.
 */
export async function openClient(
  url: string,
  settings: ConnectionSettings,
  onError: (error: Error) => void = () => undefined,
): Promise<pg.Client> {
  const client = createClient(url, settings, onError);
  try {
    await client.connect();
  } catch (error) {
    throw connectFailure(error, settings.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
  }
  return client;
}

/** Server codes that refuse this login for good: bad password or role, no pg_hba.conf entry, no such database, no CONNECT. */
const REFUSED = new Set(['28P01', '28000', '3D000', '42501']);
/** Socket errors of a server that is not there (yet): not listening, unreachable, its name not (yet) resolving. */
const NOT_THERE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND']);
/** The server is starting up, shutting down, restarting or in recovery (57P03), or ended our session doing so (57P01, 57P02). */
const GOING_OR_COMING = new Set(['57P01', '57P02', '57P03']);

/**
 * Whether a failed connect may succeed if tried again soon: nothing accepts connections at the
 * address yet, or the server is starting or stopping. A refused login, a missing database, a TLS
 * set-up the server does not share and anything else come out the same however long one waits.
 */
export function mayConnectLater(error: unknown): boolean {
  const e = (error instanceof AppError && error.cause ? error.cause : error) as { code?: string; message?: string } | undefined;
  if (!e || typeof e !== 'object') return false;
  if (e.code && (NOT_THERE.has(e.code) || GOING_OR_COMING.has(e.code))) return true;
  // pg's words for a connection closed before it was ready, and for its connect timeout.
  return /^Connection terminated|^timeout expired$/.test(e.message ?? '');
}

/** A failed connect as one coded line (the cause kept for mayConnectLater); never the URL or its password. */
export function connectFailure(error: unknown, connectTimeoutMs = CONNECT_TIMEOUT_MS): AppError {
  if (error instanceof AppError) return error;
  const code = (error as { code?: string }).code;
  if (code && REFUSED.has(code)) {
    return new DatabaseRefusedError(`the database refused the connection: ${describeDbError(error)}; check database.url`, { cause: error });
  }
  const reason =
    (error as Error | undefined)?.message === 'timeout expired'
      ? `no connection within ${connectTimeoutMs / 1000} s (the host does not answer)`
      : describeDbError(error);
  return new DatabaseUnreachableError(`cannot connect to the database: ${reason}`, { cause: error });
}

/**
 * What a failed database call means, as a coded error: a connection lost on the way is
 * DatabaseUnreachableError, a statement the database refused or cancelled DatabaseError. Ours pass
 * as they are; anything else (a fault of ours) is left to be reported as it is.
 */
export function databaseFailure(error: unknown): unknown {
  if (error instanceof AppError) return error;
  if (mayConnectLater(error))
    return new DatabaseUnreachableError(`lost the database connection: ${describeDbError(error)}`, { cause: error });
  if (error instanceof pg.DatabaseError || isAnswerTimeout(error)) return new DatabaseError(describeDbError(error), { cause: error });
  return error;
}

/**
 * Waits until the database takes a connection, for `start`: while it cannot connect yet (nothing
 * listens, the server is starting, restarting or shutting down) it tries again, logging each try,
 * for up to `timeoutMs`, then fails with one line. Any other failure is thrown at once: a refused
 * login, a missing database or a TLS mismatch stays the same however long one waits, and should
 * reach a person now rather than after the timeout.
 */
export async function waitForDatabase(url: string, log: Logger, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      // Nothing in the startup packet: a pooler that refuses it is the pooler probe's to report.
      const client = await openClient(url, {
        name: 'order-webhooks check',
        statementTimeoutMs: null,
        startupOptions: false,
        connectTimeoutMs: Math.max(100, Math.min(CONNECT_TIMEOUT_MS, deadline - Date.now())),
      });
      await client.end().catch(() => undefined);
      if (attempt > 1) log.info({ attempt }, 'database reachable');
      return;
    } catch (error) {
      if (!mayConnectLater(error)) throw error;
      const left = deadline - Date.now();
      const reason = (error as Error).message;
      if (left <= 0) {
        throw new DatabaseUnreachableError(
          `the database took no connection within database.startTimeout (${timeoutMs / 1000} s, ${attempt} tries); the last: ${reason}`,
          { cause: (error as Error).cause },
        );
      }
      const pauseMs = Math.min(250 * 2 ** (attempt - 1), 5000, left);
      log.warn({ attempt, reason, retryInMs: pauseMs }, 'database not reachable yet; trying again');
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }
}

/** pg's error when a query got no answer within query_timeout. */
export function isAnswerTimeout(error: unknown): boolean {
  return error instanceof Error && error.message === 'Query read timeout';
}

/** How long an unused pool connection stays open (pg-pool's default, made explicit: docs/operations.md). */
export const POOL_IDLE_MS = 10_000;

export function createPool(url: string, log: Logger, max: number, statementTimeoutMs: number): pg.Pool {
  // Every statement of ours finds its rows by an index (the journal's front, outbox rows by id, an
  // order's pending event, what is due), and the statistics of a queue are nearly always stale: with
  // autovacuum late or off, ANALYZE saw an empty outbox when it holds 100,000 rows. A plan built on
  // them read the whole outbox once per claimed change (a sequential scan in a sub-select), seconds
  // per batch. So on our own connections a sequential scan is priced out wherever an index serves,
  // and there is no JIT, which an inflated cost estimate would otherwise buy (tens of ms a statement).
  const pool = new pg.Pool({
    ...connectionConfig(url, { name: 'order-webhooks', statementTimeoutMs, options: SESSION_OPTIONS }),
    max,
    idleTimeoutMillis: POOL_IDLE_MS,
  });
  // An idle client whose connection dies emits here; the pool drops it and opens a new one on demand.
  pool.on('error', (error) => log.warn({ error: error.message }, 'database connection lost; it will be reopened'));
  // A query that timed out releases its client with the error, and the pool closes that client.
  pool.on('release', (error: Error | undefined) => {
    if (isAnswerTimeout(error)) {
      log.warn(
        { answerTimeoutMs: answerTimeoutMs(statementTimeoutMs) },
        'database connection gave no answer in time; it is closed and replaced by a new one',
      );
    }
  });
  return pool;
}

/** A stable advisory-lock key (signed 64-bit, as text) for one purpose within our schema. */
export function lockKey(schema: string, purpose: 'migrate' | 'wake' | 'retention'): string {
  const digest = createHash('sha256').update(`order-webhooks:${schema}:${purpose}`).digest();
  return digest.readBigInt64BE(0).toString();
}

/** A name for a prepared statement of ours, distinct per schema (names are per connection). */
export function statementName(schema: string, purpose: string): string {
  return `ow ${purpose} ${createHash('sha256').update(schema).digest('hex').slice(0, 12)}`;
}

/** The NOTIFY channel the trigger wakes listeners on. */
export function wakeChannel(schema: string): string {
  return `${schema}_wake`.slice(0, 63);
}

/** A database error as one line: message, code and the object it names; never connection secrets. */
export function describeDbError(error: unknown): string {
  const e = error as Partial<pg.DatabaseError> & { code?: string; message?: string };
  if (!e || typeof e !== 'object') return String(error);
  if (isAnswerTimeout(error)) return 'no answer from the database in time (the connection is presumed dead and replaced)';
  const parts = [e.message ?? String(error)];
  // Node's socket errors name their code in the message already.
  if (e.code && !parts[0]!.includes(e.code)) parts.push(`(${e.code})`);
  if (e.detail) parts.push(`- ${e.detail}`);
  if (e.hint) parts.push(`hint: ${e.hint}`);
  return parts.join(' ');
}
