// Composes the parts into the running service and its one shutdown path (the idle start: idle.ts).
import { type Config, endpointsOf } from '../config/config.ts';
import { createPool, databaseFailure, describeDbError, waitForDatabase, wakeChannel } from '../db.ts';
import { Sender, type TlsAgentOptions } from '../delivery/sender.ts';
import type { ClaimFailures } from '../delivery/claimFailures.ts';
import { Dispatcher } from '../delivery/dispatcher.ts';
import { Fanout } from '../delivery/fanout.ts';
import { startTracing, type Tracing } from '../delivery/tracing.ts';
import { Drainer } from '../wake/drainer.ts';
import { watchCaptureTriggers } from '../capture/triggerWatch.ts';
import { redactUrl, endpointUrl } from '../delivery/endpoint.ts';
import { Journal } from '../outbox/journal.ts';
import { PostgresEventStore } from '../outbox/store.ts';
import { WakeListener } from '../wake/listen.ts';
import { WakeLock } from '../wake/wakeLock.ts';
import type { Logger } from '../log.ts';
import { loadTls } from '../delivery/tls.ts';
import { assess, startRefusal } from '../health/model.ts';
import { observeInstall, observePooler } from '../health/observe.ts';
import { readiness } from '../http/health.ts';
import { Metrics } from '../http/metrics.ts';
import { readMetrics } from './idle.ts';
import { type HttpServer, startHttpServer } from '../http/server.ts';
import { createUi } from '../http/ui.ts';
import { configuredEndpoints } from '../outbox/status.ts';
import { breakerSettings } from '../delivery/breaker.ts';
import { EndpointStates } from '../outbox/endpointState.ts';
import { Alerter, AlertSender } from '../alerts/alerter.ts';
import { Retention } from '../outbox/retention.ts';

/** How long a stop waits for requests in flight before handing them back. */
export const SHUTDOWN_GRACE_MS = 10_000;
const STATS_INTERVAL_MS = 60_000;
/** A probe's claim outlasts its request by this much: the claim and the outcome's write are round trips too. */
const PROBE_GRACE_MS = 5000;

export interface Service {
  /** Resolves with the exit code once the service has stopped, by `stop()` or a fatal error. */
  readonly stopped: Promise<number>;
  stop(): Promise<number>;
}

export async function startService(config: Config, log: Logger, tls?: TlsAgentOptions): Promise<Service> {
  const { database } = config;
  const endpoints = endpointsOf(config);
  const enabled = endpoints.filter((e) => e.hook.enabled);
  // TLS files are checked first: a wrong file or password stops the start before any connection.
  const loaded = new Map(
    enabled.map((e) => {
      const files = tls ? { options: tls, warnings: [] } : loadTls(e.hook);
      for (const warning of files.warnings) log.warn({ endpoint: e.name }, warning);
      return [e.name, files.options] as const;
    }),
  );
  const alertsTls = config.alerts ? loadTls(config.alerts, new Date(), 'alerts') : undefined;
  for (const warning of alertsTls?.warnings ?? []) log.warn(warning);
  const target = { schema: database.schema, orders: config.orders, wakeUp: database.wakeUp };
  // Each endpoint's dispatcher claims and records on its own (one of each at a time): two connections
  // per endpoint beside the journal's claims, so that one endpoint's busy statements never queue another's.
  const pool = createPool(
    database.url,
    log,
    4 + 2 * Math.max(1, endpointsOf(config).filter((e) => e.hook.enabled).length),
    database.statementTimeout,
  );
  const release: (() => Promise<void> | void)[] = [() => pool.end()];
  // Each step is bounded: a step that hangs (pg-listen retrying a lost connection after close,
  // say) must not keep the process from exiting.
  const releaseAll = async () => {
    for (const step of release.reverse().splice(0)) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          log.warn('a shutdown step did not finish in time; going on');
          resolve();
        }, SHUTDOWN_GRACE_MS + 5000);
      });
      await Promise.race([
        Promise.resolve()
          .then(step)
          .catch((error) => log.warn({ error: describeDbError(error) }, 'error while shutting down')),
        timeout,
      ]);
      clearTimeout(timer);
    }
  };
  let installation: string;
  let tracing: Tracing | undefined;
  try {
    await waitForDatabase(database.url, log, database.startTimeout);
    // The set-up checks: the same facts and rule as `check` (src/health/), so both fail alike. The
    // pooler first: through one that refuses the pool's start-up options, nothing else can be read.
    const pooler = await observePooler(database.url);
    const observed = pooler === null ? await observeInstall(pool, { target, idlePollMs: database.idlePollInterval }) : undefined;
    const refusal = startRefusal(assess({ ...observed?.facts, pooler }));
    if (refusal) throw refusal;
    const { wakeUp } = observed!;
    installation = await Journal.installationId(pool, database.schema);
    log.info({ wakeUp: wakeUp.effective }, `wake-up ${wakeUp.summary}`);
    if (wakeUp.warning) log.warn(wakeUp.warning);
    if (config.tracing) {
      // Released after the dispatcher stops (the list runs in reverse), so the last attempts' spans go out too.
      tracing = await startTracing(
        config.tracing,
        enabled.map((e) => ({ name: e.name, endpoint: e.hook.endpoint, key: e.hook.key })),
        log,
      );
      release.push(() => tracing!.shutdown());
    }
  } catch (error) {
    await releaseAll();
    throw databaseFailure(error);
  }

  const metrics = config.http
    ? new Metrics(
        () =>
          readMetrics(
            pool,
            database.schema,
            endpoints.map((e) => e.name),
          ),
        log,
        true,
        endpoints.map((e) => e.name),
      )
    : undefined;
  const store = new PostgresEventStore(
    pool,
    database.schema,
    installation,
    config.orders.transitions,
    endpoints.map((e) => ({ name: e.name, events: e.hook.events })),
  );
  // One sender and one dispatcher per enabled endpoint: its own sockets, slots, claims and retries,
  // so that one receiver's trouble never takes another's. A disabled endpoint's events wait, pending.
  // Each endpoint's state (up, down, paused), shared by every instance through the database.
  const states = new EndpointStates(
    pool,
    database.schema,
    log,
    new Map(endpoints.map((e) => [e.name, breakerSettings(e.hook.circuitBreaker)])),
  );
  try {
    await states.start();
  } catch (error) {
    await releaseAll();
    throw error;
  }
  release.push(() => states.stop());
  const dispatchers = new Map<string, Dispatcher>();
  let fanout!: Fanout;
  for (const e of enabled) {
    const sender = new Sender(e.hook, loaded.get(e.name));
    release.push(() => sender.close());
    const dispatcher = new Dispatcher(store, sender, log.child({ endpoint: e.name }), {
      endpoint: e.name,
      concurrency: e.hook.concurrency,
      leaseMs: e.hook.leaseTimeout,
      probeLeaseMs: e.hook.requestTimeout + PROBE_GRACE_MS,
      retryDelaysMs: e.hook.retry.delays,
      onResult: metrics?.onResult,
      onNewChangesFreed: () => fanout.changesFreed(),
      gate: states,
      tracer: tracing?.tracer,
      // With several endpoints a down one's events wait in the outbox already, where its probe finds them.
      ...(endpoints.length === 1 ? { moveForProbe: () => fanout.moveForProbe(e.name) } : {}),
    });
    dispatchers.set(e.name, dispatcher);
  }
  // The journal's claims are leased for the longest lease of any endpoint: its first attempts run under it.
  const leaseMs = Math.max(...enabled.map((e) => e.hook.leaseTimeout));
  fanout = new Fanout(store, dispatchers, log, { leaseMs, single: endpoints.length === 1 });
  const lookAgain = () => {
    for (const d of dispatchers.values()) d.lookAgain();
  };
  const stats = () => {
    const sum = { ...fanout.stats, delivered: 0, failedAttempts: 0, failedEvents: 0, inFlight: 0 };
    for (const d of dispatchers.values()) {
      sum.delivered += d.stats.delivered;
      sum.failedAttempts += d.stats.failedAttempts;
      sum.failedEvents += d.stats.failedEvents;
      sum.inFlight += d.inFlightCount;
    }
    return sum;
  };
  // The claims failing longest, of the journal's or any endpoint's: one fact for /readyz and the page.
  const claimFailures = (): ClaimFailures => {
    let oldest = fanout.claims.current;
    for (const d of dispatchers.values()) {
      const c = d.claims.current;
      if (c.since !== null && (oldest.since === null || c.since < oldest.since)) oldest = c;
    }
    return oldest;
  };
  let listener: WakeListener | undefined;
  const wakeLock = new WakeLock(database.url, database.schema, log, () => drainer.wake(), {
    wakeUp: database.wakeUp,
  });
  const drainer: Drainer = new Drainer(fanout, wakeLock, log, {
    pollIntervalMs: database.pollInterval,
    idlePollMs: database.idlePollInterval,
    listening: () => listener?.connected ?? false,
  });

  let resolveStopped!: (code: number) => void;
  const stopped = new Promise<number>((resolve) => {
    resolveStopped = resolve;
  });
  let stopping: Promise<number> | undefined;
  const stop = (code = 0): Promise<number> => {
    stopping ??= (async () => {
      log.info('stopping: no new claims; finishing requests in flight');
      await releaseAll();
      log.info(stats(), 'stopped');
      resolveStopped(code);
      return code;
    })();
    return stopping;
  };

  // The HTTP port opens before the listener subscribes: /healthz answers at once, /readyz says when subscribed.
  if (config.http && metrics) {
    let http: HttpServer;
    try {
      http = await startHttpServer(
        config.http,
        {
          ready: readiness({
            enabled: true,
            stopping: () => stopping !== undefined,
            ping: () => pool.query('SELECT 1'),
            listening: () => listener?.connected ?? false,
            claims: claimFailures,
          }),
          metrics: () => metrics.render(),
        },
        log,
        config.http.ui
          ? createUi({
              db: pool,
              schema: database.schema,
              target,
              enabled: true,
              endpoints: configuredEndpoints(config),
              token: config.http.token,
              idlePollMs: database.idlePollInterval,
              runtime: () => ({ enabled: true, listening: listener?.connected ?? false, claims: claimFailures() }),
              log,
            })
          : undefined,
      );
    } catch (error) {
      await releaseAll();
      throw error;
    }
    release.push(() => http.close());
  }

  listener = new WakeListener(database.url, wakeChannel(database.schema), log, {
    onWake: () => drainer.wake(),
    // The wake-lock connection likely went the same way: replace it now rather than find out by
    // waiting on it. Without the lock an idle drainer is woken, and stays awake until we listen again.
    onLost: () => {
      wakeLock.replace();
      drainer.wake();
    },
    onFatal: () => void stop(1),
  });
  try {
    await listener.start();
  } catch (error) {
    await releaseAll();
    throw databaseFailure(error);
  }
  // Stopped in reverse: the drainer, then the fan-out's claims, then every dispatcher at once.
  release.push(() => Promise.all([...dispatchers.values()].map((d) => d.stop(SHUTDOWN_GRACE_MS))).then(() => undefined));
  release.push(() => fanout.stop(SHUTDOWN_GRACE_MS));
  release.push(() => drainer.stop());
  release.push(() => listener.close());

  const retention = new Retention(pool, database.schema, log, {
    deliveredMs: config.retention.delivered,
    failedMs: config.retention.failed,
  });
  metrics?.watch({
    dispatcher: {
      get stats() {
        return fanout.stats;
      },
      get inFlight() {
        return Object.fromEntries([...dispatchers].map(([name, d]) => [name, d.inFlightCount]));
      },
    },
    listener,
    retention,
  });
  if (config.alerts && alertsTls) {
    // Its own loop and HTTP client: a dead alert endpoint delays no webhook.
    const alerter = new Alerter(
      config.alerts,
      new AlertSender(config.alerts, alertsTls.options, log),
      { db: pool, schema: database.schema, target, endpoints: endpoints.map((e) => e.name) },
      log,
    );
    alerter.start();
    release.push(() => alerter.stop());
  }
  // Up again (a probe succeeded, here or elsewhere, or resumed): its waiting orders go out now.
  states.onChange((endpoint) => {
    dispatchers.get(endpoint)?.lookAgain();
    drainer.wake();
  });
  drainer.start();
  lookAgain();
  retention.start();
  release.push(() => retention.stop());
  // The fallback poll: covers a lost NOTIFY, retries coming due, and leases of dead instances.
  const poll = setInterval(() => {
    drainer.wake();
    lookAgain();
  }, database.pollInterval);
  const statsTimer = setInterval(() => log.info(stats(), 'stats'), STATS_INTERVAL_MS);
  statsTimer.unref();
  const triggers = watchCaptureTriggers(pool, target, log, database.captureCheckInterval);
  release.push(() => {
    clearInterval(poll);
    clearInterval(statsTimer);
    triggers.stop();
  });

  log.info(
    {
      endpoints: endpoints.map((e) => ({
        name: e.name,
        enabled: e.hook.enabled,
        url: redactUrl(endpointUrl(e.hook.endpoint!, e.hook.key)),
        concurrency: e.hook.concurrency,
        signed: e.hook.secret !== undefined,
        standardWebhookSecrets: e.hook.standardWebhooks?.secrets.length ?? 0,
      })),
      orders: `${config.orders.schema}.${config.orders.table}`,
      schema: database.schema,
      tracing: config.tracing ? `${config.tracing.protocol} to ${redactUrl(config.tracing.url)}` : 'off',
    },
    'started',
  );
  return { stopped, stop: () => stop(0) };
}
