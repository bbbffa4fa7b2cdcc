// The Prometheus metrics of /metrics. Counters are fed by the parts that count (the dispatcher's
// stats and its result callback, the listener, retention), which know nothing of prom-client; the
// gauges that read the database are computed when scraped, with one cached query.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { describeDbError } from '../db.ts';
import type { AttemptRecord } from '../delivery/eventStore.ts';
import { FAILURE_KINDS } from '../delivery/failure.ts';
import { ENDPOINT_STATUSES } from '../delivery/gate.ts';
import { EVENT_TYPES } from '../events.ts';
import type { Logger } from '../log.ts';
import { eventTimeMs } from '../mapping/eventId.ts';
import type { EndpointReport } from '../outbox/endpointState.ts';
import type { Counts } from '../outbox/status.ts';

/** What the database gauges show: the backlog, and each endpoint's status. */
export type MetricsReading = Counts & { endpointStatus?: Pick<EndpointReport, 'endpoint' | 'status'>[] };

/** How long one reading of the database gauges serves scrapes. */
export const BACKLOG_CACHE_MS = 5000;

/** The running parts whose numbers /metrics shows (each absent while webhooks are disabled). */
export interface MetricSources {
  dispatcher?: {
    readonly stats: { changes: number; events: number; eventsOf: Record<string, number> };
    /** Requests under way now, by endpoint. */
    readonly inFlight: Record<string, number>;
  };
  listener?: { readonly connected: boolean; readonly reconnects: number };
  retention?: { readonly deleted: { delivered: number; failed: number } };
}

const PREFIX = 'order_webhooks_';

export class Metrics {
  readonly registry = new Registry();
  private sources: MetricSources = {};
  private readonly attempts: Counter<'endpoint' | 'outcome'>;
  private readonly events: Counter<'endpoint' | 'event_type' | 'outcome'>;
  private readonly duration: Histogram<'endpoint'>;
  private readonly lag: Histogram<'endpoint'>;
  private backlog: { at: number; reading: Promise<MetricsReading | undefined> } | undefined;

  constructor(
    private readonly readCounts: () => Promise<MetricsReading>,
    private readonly log: Logger,
    enabled: boolean,
    /** Every configured endpoint: each series starts at 0 for each. */
    endpoints: readonly string[] = ['default'],
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const self = this;
    /** A counter whose total another part keeps: each scrape adds what it grew by. */
    const mirrored = (name: string, help: string, read: (s: MetricSources) => number | undefined) => {
      let seen = 0;
      new Counter({
        name: PREFIX + name,
        help,
        registers,
        collect() {
          const now = read(self.sources);
          if (now !== undefined && now > seen) this.inc(now - seen);
          if (now !== undefined) seen = now;
        },
      });
    };
    mirrored('changes_total', 'Order changes claimed from the journal by this instance.', (s) => s.dispatcher?.stats.changes);
    mirrored('listener_reconnects_total', 'Times the LISTEN connection was lost and reconnecting began.', (s) => s.listener?.reconnects);
    const deletedSeen = { delivered: 0, failed: 0 };
    const deleted = new Counter({
      name: `${PREFIX}retention_deleted_total`,
      help: 'Events deleted by retention (with their attempts), by status.',
      labelNames: ['status'],
      registers,
      collect() {
        for (const status of ['delivered', 'failed'] as const) {
          const now = self.sources.retention?.deleted[status];
          if (now !== undefined && now > deletedSeen[status]) this.inc({ status }, now - deletedSeen[status]);
          if (now !== undefined) deletedSeen[status] = now;
        }
      },
    });
    for (const status of ['delivered', 'failed']) deleted.inc({ status }, 0);

    this.events = new Counter({
      name: `${PREFIX}events_total`,
      help: 'Events that reached a final status: delivered, or failed (given up), by event type.',
      labelNames: ['endpoint', 'event_type', 'outcome'],
      registers,
    });
    this.attempts = new Counter({
      name: `${PREFIX}attempts_total`,
      help: 'Delivery attempts by endpoint and outcome: 2xx, or the failure kind (http_status, timeout, connect, tls, ...).',
      labelNames: ['endpoint', 'outcome'],
      registers,
    });
    this.duration = new Histogram({
      name: `${PREFIX}request_duration_seconds`,
      help: 'Duration of delivery requests, from start to the complete answer or the failure, by endpoint.',
      labelNames: ['endpoint'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.lag = new Histogram({
      name: `${PREFIX}delivery_lag_seconds`,
      help: "From the order change (its transaction's start, the event id's time) to its event's 2xx answer, by endpoint.",
      labelNames: ['endpoint'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600],
      registers,
    });
    for (const endpoint of endpoints) {
      for (const type of EVENT_TYPES)
        for (const outcome of ['delivered', 'failed']) this.events.inc({ endpoint, event_type: type, outcome }, 0);
      for (const outcome of ['2xx', ...FAILURE_KINDS]) this.attempts.inc({ endpoint, outcome }, 0);
      this.duration.zero({ endpoint });
      this.lag.zero({ endpoint });
    }
    // Events made and requests under way, by endpoint (each configured one from 0).
    const eventsSeen: Record<string, number> = {};
    new Counter({
      name: `${PREFIX}events_created_total`,
      help: 'Webhook events made from the changes claimed by this instance, by endpoint.',
      labelNames: ['endpoint'],
      registers,
      collect() {
        for (const endpoint of endpoints) this.inc({ endpoint }, 0);
        for (const [endpoint, now] of Object.entries(self.sources.dispatcher?.stats.eventsOf ?? {})) {
          if (now > (eventsSeen[endpoint] ?? 0)) this.inc({ endpoint }, now - (eventsSeen[endpoint] ?? 0));
          eventsSeen[endpoint] = now;
        }
      },
    });
    new Gauge({
      name: `${PREFIX}requests_in_flight`,
      help: 'Delivery requests under way now, by endpoint.',
      labelNames: ['endpoint'],
      registers,
      collect() {
        for (const endpoint of endpoints) this.set({ endpoint }, self.sources.dispatcher?.inFlight[endpoint] ?? 0);
      },
    });
    new Gauge({
      name: `${PREFIX}enabled`,
      help: 'Whether webhooks are enabled (webHook.enabled): 0 means the service runs idle and sends nothing.',
      registers,
    }).set(enabled ? 1 : 0);
    const sourced = (name: string, help: string, read: (s: MetricSources) => number | undefined) =>
      new Gauge({
        name: PREFIX + name,
        help,
        registers,
        collect() {
          this.set(read(self.sources) ?? 0);
        },
      });
    sourced('listener_connected', 'Whether the LISTEN connection is up (1) or not (0).', (s) =>
      s.listener ? Number(s.listener.connected) : undefined,
    );
    const fromDatabase = (name: string, help: string, read: (b: MetricsReading) => number) =>
      new Gauge({
        name: PREFIX + name,
        help: `${help} NaN when the database could not be read.`,
        registers,
        async collect() {
          const backlog = await self.cachedBacklog();
          this.set(backlog ? read(backlog) : Number.NaN);
        },
      });
    fromDatabase('journal_backlog', 'Changes in the journal not yet turned into events.', (b) => b.journal);
    // Per endpoint: every configured one (0 when it has none), and any other that still has events.
    const perEndpoint = (name: string, help: string, read: (e: Counts['endpoints'][number]) => number) =>
      new Gauge({
        name: PREFIX + name,
        help: `${help} NaN when the database could not be read.`,
        labelNames: ['endpoint'],
        registers,
        async collect() {
          const backlog = await self.cachedBacklog();
          this.reset();
          for (const endpoint of endpoints) this.set({ endpoint }, backlog ? 0 : Number.NaN);
          for (const e of backlog?.endpoints ?? []) this.set({ endpoint: e.endpoint }, read(e));
        },
      });
    perEndpoint(
      'events_pending',
      "Outbox events not yet delivered or given up (status pending): due, retrying, in flight, or waiting behind their order's head; by endpoint.",
      (e) => e.pending,
    );
    perEndpoint('events_failed', 'Outbox events given up on (status failed), until replayed or purged, by endpoint.', (e) => e.failed);
    new Gauge({
      name: `${PREFIX}endpoint_status`,
      help: 'Each endpoint: 1 for the status it is in (up; down: circuit breaker open; paused by an operator), 0 for the others.',
      labelNames: ['endpoint', 'status'],
      registers,
      async collect() {
        const backlog = await self.cachedBacklog();
        this.reset();
        for (const e of backlog?.endpointStatus ?? []) {
          for (const status of ENDPOINT_STATUSES) this.set({ endpoint: e.endpoint, status }, e.status === status ? 1 : 0);
        }
      },
    });
    fromDatabase(
      'oldest_pending_age_seconds',
      'Age of the oldest change or event not yet delivered (0 when none): the delivery lag now.',
      (b) => b.oldestPendingSeconds,
    );
  }

  /** The running parts to read (set once they exist). */
  watch(sources: MetricSources): void {
    this.sources = { ...this.sources, ...sources };
  }

  /** The dispatcher's result callback. */
  readonly onResult = (result: AttemptRecord): void => {
    const endpoint = result.event.endpoint;
    this.attempts.inc({ endpoint, outcome: result.status === 'delivered' ? '2xx' : (result.errorKind ?? 'internal') });
    this.duration.observe({ endpoint }, result.durationMs / 1000);
    if (result.status !== 'pending') this.events.inc({ endpoint, event_type: result.event.eventType, outcome: result.status });
    if (result.status === 'delivered') {
      const changedAt = eventTimeMs(result.event.eventId);
      if (Number.isFinite(changedAt)) this.lag.observe({ endpoint }, Math.max(0, Date.now() - changedAt) / 1000);
    }
  };

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private cachedBacklog(): Promise<MetricsReading | undefined> {
    if (this.backlog && Date.now() - this.backlog.at < BACKLOG_CACHE_MS) return this.backlog.reading;
    const reading = this.readCounts().catch((error: unknown) => {
      this.log.warn({ error: describeDbError(error) }, 'metrics: reading the backlog from the database failed');
      return undefined;
    });
    this.backlog = { at: Date.now(), reading };
    return reading;
  }
}
