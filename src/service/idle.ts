// `start` with no endpoint enabled: the service runs idle (nothing claimed or sent) until stopped,
// with the HTTP port when configured; and the database gauges /metrics reads in either mode.

import { type Config, endpointsOf } from '../config/config.ts';
import { createPool, type Db, describeDbError } from '../db.ts';
import { NO_CLAIM_FAILURES } from '../delivery/claimFailures.ts';
import type { Logger } from '../log.ts';
import { readiness } from '../http/health.ts';
import { Metrics, type MetricsReading } from '../http/metrics.ts';
import { startHttpServer } from '../http/server.ts';
import { createUi } from '../http/ui.ts';
import { configuredEndpoints, readCounts } from '../outbox/status.ts';
import { readEndpointStates } from '../outbox/endpointState.ts';
import type { Service } from './start.ts';

/**
 * `start` with webHook.enabled false: runs idle until stopped, so that a supervisor does not restart
 * it in a loop. Nothing is claimed or sent; the journal keeps every change. With `http` configured,
 * /healthz and /readyz answer (ready, saying webhooks are disabled) and /metrics shows the backlog.
 */
export async function startIdleService(config: Config, log: Logger): Promise<Service> {
  let resolveStopped!: (code: number) => void;
  const stopped = new Promise<number>((resolve) => {
    resolveStopped = resolve;
  });
  // Nothing else may hold the event loop open while idle.
  const keepAlive = setInterval(() => undefined, 2 ** 30);
  const release: (() => Promise<void> | void)[] = [() => clearInterval(keepAlive)];
  let stopping: Promise<number> | undefined;
  if (config.http) {
    const pool = createPool(config.database.url, log, 2, config.database.statementTimeout);
    release.push(() => pool.end());
    const metrics = new Metrics(
      () =>
        readMetrics(
          pool,
          config.database.schema,
          endpointsOf(config).map((e) => e.name),
        ),
      log,
      false,
      endpointsOf(config).map((e) => e.name),
    );
    try {
      const http = await startHttpServer(
        config.http,
        {
          ready: readiness({
            enabled: false,
            stopping: () => stopping !== undefined,
            ping: () => pool.query('SELECT 1'),
            listening: () => false,
            claims: () => NO_CLAIM_FAILURES,
          }),
          metrics: () => metrics.render(),
        },
        log,
        config.http.ui
          ? createUi({
              db: pool,
              schema: config.database.schema,
              target: { schema: config.database.schema, orders: config.orders, wakeUp: config.database.wakeUp },
              enabled: false,
              endpoints: configuredEndpoints(config),
              token: config.http.token,
              idlePollMs: config.database.idlePollInterval,
              // Idle: nothing listens or claims, by choice; the page says webhooks are disabled.
              runtime: () => ({ enabled: false }),
              log,
            })
          : undefined,
      );
      release.push(() => http.close());
    } catch (error) {
      for (const step of release.reverse()) await step();
      throw error;
    }
  }
  log.info({ webhooks: 'disabled' }, 'started');
  const stop = (): Promise<number> => {
    stopping ??= (async () => {
      for (const step of release.reverse().splice(0)) {
        await Promise.resolve()
          .then(step)
          .catch((error) => log.warn({ error: describeDbError(error) }, 'error while shutting down'));
      }
      log.info('stopped');
      resolveStopped(0);
      return 0;
    })();
    return stopping;
  };
  return { stopped, stop };
}

/** The database gauges of /metrics: the backlog and each endpoint's status, one reading per scrape. */
export async function readMetrics(pool: Db, schema: string, endpoints: string[]): Promise<MetricsReading> {
  return { ...(await readCounts(pool, schema)), endpointStatus: await readEndpointStates(pool, schema, endpoints) };
}
