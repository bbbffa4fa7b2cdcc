// Alerts to a person: every `checkInterval` each instance reads the conditions (conditions.ts); an
// alert that starts, is due to repeat, or ends is sent by the one instance whose conditional UPDATE
// of its `alert` row takes effect. Its own loop, its own HTTP client: an alert endpoint that is slow
// or dead delays no webhook. A message that cannot be sent is retried a few times, then logged at error.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { CaptureTarget } from '../capture/render.ts';
import type { AlertsConfig } from '../config/config.ts';
import { describeDbError, ident } from '../db.ts';
import { Sender, type TlsAgentOptions } from '../delivery/sender.ts';
import type { Logger } from '../log.ts';
import { type AlertKind, type Condition, readConditions } from './conditions.ts';

export interface AlertMessage {
  alert: AlertKind | 'test';
  state: 'firing' | 'resolved';
  /** The endpoint it is about, or null. */
  endpoint: string | null;
  text: string;
  at: string;
}

export interface AlertRow {
  kind: string;
  endpoint: string;
  firing: boolean;
  sent_at: Date | null;
}

export type Step = 'start' | 'repeat' | 'end' | null;

/** What to send for a condition given its row: its start, a repeat, its end, or nothing. Pure. */
export function stepOf(condition: Pick<Condition, 'firing'>, row: AlertRow | undefined, now: number, repeatEveryMs: number): Step {
  const firing = row?.firing ?? false;
  if (condition.firing && !firing) return 'start';
  if (!condition.firing && firing) return 'end';
  if (condition.firing && row?.sent_at && row.sent_at.getTime() + repeatEveryMs <= now) return 'repeat';
  return null;
}

/** Delays between the tries of one message. */
const RETRY_DELAYS_MS = [1000, 3000];

/** Posts alert messages: the webhook Sender (its got set-up, X-Signature) on a client of its own. */
export class AlertSender {
  private readonly sender: Sender;
  private closed = false;

  constructor(
    config: AlertsConfig,
    tls: TlsAgentOptions,
    private readonly log: Logger,
    private readonly retryDelaysMs: readonly number[] = RETRY_DELAYS_MS,
  ) {
    this.sender = new Sender(
      {
        endpoint: config.endpoint,
        key: undefined,
        concurrency: 2,
        useSslTrustAll: config.useSslTrustAll,
        secret: config.secret,
        sslKeyPassword: config.sslKeyPassword,
        standardWebhooks: undefined,
        connectionTimeout: config.connectionTimeout,
        requestTimeout: config.requestTimeout,
        signatureEncoding: 'hex',
      },
      tls,
    );
  }

  /** Sends one message, trying again a few times; when every try failed, the last reason (and an error logged). */
  async send(message: AlertMessage): Promise<{ ok: boolean; reason: string | null }> {
    const body = JSON.stringify(message);
    const eventId = randomUUID();
    let reason = '';
    for (let attempt = 1; attempt <= this.retryDelaysMs.length + 1 && !this.closed; attempt++) {
      const outcome = await this.sender.send({ eventId, attempt, body });
      if (outcome.ok) return { ok: true, reason: null };
      reason = outcome.error ?? 'failed';
      const delay = this.retryDelaysMs[attempt - 1];
      if (delay !== undefined && !this.closed) await new Promise((resolve) => setTimeout(resolve, delay));
    }
    this.log.error(
      { alert: message.alert, state: message.state, endpoint: message.endpoint, tries: this.retryDelaysMs.length + 1, reason },
      `alert could not be sent to alerts.endpoint: ${message.text}`,
    );
    return { ok: false, reason };
  }

  /** Ends a request under way (its sockets are destroyed) and any tries left: a shutdown does not wait for them. */
  close(): void {
    this.closed = true;
    this.sender.close();
  }
}

export interface AlerterOptions {
  db: pg.Pool;
  schema: string;
  target: CaptureTarget;
  /** The configured endpoints' names. */
  endpoints: readonly string[];
  /** Events given up within this long make `events_failed` fire (a minute; tests use less). */
  failedWindowMs?: number;
}

export class Alerter {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Checks completed (for tests that wait for a few to pass). */
  checks = 0;

  constructor(
    private readonly config: AlertsConfig,
    private readonly sender: AlertSender,
    private readonly options: AlerterOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    const tick = () => {
      this.timer = setTimeout(() => {
        this.running = this.check()
          .catch((error) => this.log.warn({ error: describeDbError(error) }, 'alerts: checking the conditions failed; will retry'))
          .finally(() => {
            this.running = undefined;
            if (!this.stopped) tick();
          });
      }, this.config.checkInterval);
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.sender.close();
    await this.running;
  }

  /** One look: each condition's step, taken (and sent) by whichever instance updates its row. */
  async check(): Promise<void> {
    const { db, schema } = this.options;
    const { target, endpoints, failedWindowMs } = this.options;
    const conditions = await readConditions(db, schema, target, endpoints, this.config.lagOver, failedWindowMs);
    const { rows } = await db.query<AlertRow>(`SELECT kind, endpoint, firing, sent_at FROM ${ident(schema)}.alert`);
    const now = Date.now();
    for (const condition of conditions) {
      const row = rows.find((r) => r.kind === condition.kind && r.endpoint === condition.endpoint);
      const step = stepOf(condition, row, now, this.config.repeatEvery);
      // Stopping: a step taken now could not be sent; another instance (or the next start) takes it.
      if (step === null || this.stopped || !(await this.take(condition, step))) continue;
      await this.sender.send({
        alert: condition.kind,
        state: step === 'end' ? 'resolved' : 'firing',
        endpoint: condition.endpoint === '' ? null : condition.endpoint,
        text: condition.text,
        at: new Date().toISOString(),
      });
    }
    this.checks++;
  }

  /** The conditional write that makes this instance the one to send the step. */
  private async take(condition: Condition, step: Exclude<Step, null>): Promise<boolean> {
    const alert = `${ident(this.options.schema)}.alert`;
    const values = [condition.kind, condition.endpoint, condition.text];
    const sql =
      step === 'start'
        ? `INSERT INTO ${alert} AS a (kind, endpoint, firing, since, text, sent_at) VALUES ($1, $2, true, now(), $3, now())
           ON CONFLICT (kind, endpoint) DO UPDATE SET firing = true, since = now(), text = $3, sent_at = now() WHERE NOT a.firing`
        : step === 'end'
          ? `UPDATE ${alert} SET firing = false, text = $3, sent_at = now() WHERE kind = $1 AND endpoint = $2 AND firing`
          : `UPDATE ${alert} SET text = $3, sent_at = now()
              WHERE kind = $1 AND endpoint = $2 AND firing AND sent_at <= now() - $4 * interval '1 ms'`;
    const { rowCount } = await this.options.db.query(sql, step === 'repeat' ? [...values, this.config.repeatEvery] : values);
    return (rowCount ?? 0) > 0;
  }
}
