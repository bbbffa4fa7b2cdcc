// `order-webhooks status`: is everything in place and flowing? Works as a monitoring check: exit 1
// when the health model (src/health/model.ts) finds any problem (what `start` would refuse, capture
// not as configured, failed events, lag over --max-lag), 2 when the config is bad.
import type { Config } from '../config/config.ts';
import type { Command } from 'commander';
import { anyEndpointEnabled, endpointsOf } from '../config/config.ts';
import { parseDuration } from '../config/duration.ts';
import { endpointUrl, redactUrl } from '../delivery/endpoint.ts';
import { readEndpointStates } from '../outbox/endpointState.ts';
import { assess, inScope } from '../health/model.ts';
import { observeInstall } from '../health/observe.ts';
import { configuredEndpoints, endpointCounts, endpointStates, outboxStatus } from '../outbox/status.ts';
import { EXIT_FAILURE, EXIT_USAGE, fail, reporting } from './exit.ts';
import { type ConfigOption, type EndpointOption, endpointOption, operatorCommand, withConfig } from './options.ts';
import { connect, formatAge, formatTime, type JsonOption, paint, printJson, printPairs } from './output.ts';

interface StatusOptions extends ConfigOption, JsonOption, EndpointOption {
  maxLag?: string;
}

export function statusCommand(program: Command): void {
  operatorCommand(program, 'status', { endpoint: 'only this endpoint: its line, counts, lag and failures', json: true })
    .description('show whether webhooks flow: trigger, schema, backlog, lag, failures, instances (exit 1 when something needs attention)')
    .option('--max-lag <duration>', 'ISO-8601 duration: exit 1 when the oldest pending event is older (e.g. PT5M)')
    .action(withConfig(status));
}

async function status(config: Config, options: StatusOptions): Promise<void> {
  const only = endpointOption(options);
  let maxLagMs: number | undefined;
  if (options.maxLag !== undefined) {
    try {
      maxLagMs = parseDuration(options.maxLag);
    } catch (error) {
      fail(`--max-lag: ${(error as Error).message}`, EXIT_USAGE);
    }
  }
  const schema = config.database.schema;
  const target = { schema, orders: config.orders, wakeUp: config.database.wakeUp };
  const report = await reporting('status', async () => {
    const db = await connect(config.database);
    try {
      const observed = await observeInstall(db, { target, url: config.database.url, idlePollMs: config.database.idlePollInterval });
      const outbox = observed.schema?.current ? await outboxStatus(db, schema, only) : null;
      const counts = observed.schema?.current
        ? await endpointCounts(
            db,
            schema,
            endpointsOf(config).map((e) => e.name),
          )
        : [];
      const breakers = observed.schema?.current
        ? await readEndpointStates(
            db,
            schema,
            endpointsOf(config).map((e) => e.name),
          )
        : [];
      return { observed, outbox, counts, breakers };
    } finally {
      await db.end().catch(() => undefined);
    }
  });
  const { observed, outbox } = report;
  const { schema: schemaInfo, trigger, wakeUp } = observed;
  // Each endpoint's line (enabled, counts) with its status (up, down: circuit breaker open, paused).
  const statusOf = new Map(report.breakers.map((b) => [b.endpoint, b]));
  const endpoints = endpointStates(configuredEndpoints(config), report.counts)
    .filter((e) => only === undefined || e.endpoint === only)
    .map((e) => {
      const b = statusOf.get(e.endpoint);
      return { ...e, status: b?.status ?? 'up', openedAt: b?.openedAt ?? null, nextProbeAt: b?.nextProbeAt ?? null };
    });
  // The health model decides; status shows every problem it can see.
  const problems = inScope(
    'status',
    assess({
      ...observed.facts,
      failed: outbox?.counts.failed,
      removedEndpoints: endpoints.filter((e) => e.state === 'removed').map((e) => ({ name: e.endpoint, pending: e.pending })),
      endpoints: report.breakers.filter((e) => only === undefined || e.endpoint === only),
      lag:
        outbox && maxLagMs !== undefined
          ? { seconds: outbox.lagSeconds, maxSeconds: maxLagMs / 1000, limit: `--max-lag ${options.maxLag}` }
          : undefined,
    }),
  );
  const attention = problems.map((p) => p.line);

  const endpoint = config.webHook.endpoint ? redactUrl(endpointUrl(config.webHook.endpoint, config.webHook.key)) : null;
  if (options.json) {
    printJson({
      ok: problems.length === 0,
      attention,
      problems,
      webhooks: { enabled: anyEndpointEnabled(config), endpoint },
      endpoints,
      schema: schemaInfo ?? null,
      trigger,
      wakeUp,
      journalBacklog: outbox?.journalBacklog ?? null,
      outbox: outbox?.counts ?? null,
      deliveredEstimated: outbox?.deliveredEstimated ?? null,
      oldestPendingAt: outbox?.oldestPendingAt ?? null,
      lagSeconds: outbox?.lagSeconds ?? null,
      deliveredLast5Minutes: outbox?.deliveredRecently ?? null,
      lastFailure: outbox?.lastFailure ?? null,
      instances: outbox?.instances ?? null,
      connections: outbox?.connections ?? null,
    });
  } else {
    const pairs: [string, string | number][] = [
      ['webhooks', anyEndpointEnabled(config) ? 'enabled' : 'disabled (webHook.enabled is false)'],
      ['endpoint', endpoint ?? '(none)'],
      [
        'schema',
        schemaInfo ? `${schema} version ${schemaInfo.version ?? 'none'} (this release: ${schemaInfo.latest})` : `${schema} (not readable)`,
      ],
      [
        'trigger',
        `${trigger.condition} on ${trigger.table}${trigger.installed && !trigger.matchesConfig ? ', installed for another config' : ''}`,
      ],
      ['trigger mode', `${trigger.mode} (orders.replicaSessions wants ${trigger.expectedMode})`],
      ['wake-up', wakeUp.summary],
    ];
    if (outbox) {
      const failure = outbox.lastFailure;
      pairs.push(
        ['journal backlog', `${outbox.journalBacklog} change(s)`],
        [
          'outbox',
          `${outbox.counts.pending} pending, ${outbox.deliveredEstimated ? `about ${outbox.counts.delivered} (estimated)` : outbox.counts.delivered} delivered, ${outbox.counts.failed} failed`,
        ],
        [
          'lag',
          outbox.oldestPendingAt
            ? `${formatAge(outbox.lagSeconds)} (oldest pending since ${formatTime(outbox.oldestPendingAt)})`
            : 'none pending',
        ],
        ['delivered, last 5 min', outbox.deliveredRecently],
        ['last failure', failure ? `${failure.kind ?? 'failed'}: ${failure.reason ?? ''}` : 'none'],
      );
      if (failure) {
        pairs.push(
          ['  at', `${formatTime(failure.at)}, attempt ${failure.attempt}`],
          ['  event', `${failure.eventId} (order ${failure.orderId})`],
        );
      }
      pairs.push([
        'instances',
        `${outbox.instances} running${outbox.connections.length ? ` (${outbox.connections.map((c) => `${c.application} x${c.connections}`).join(', ')})` : ''}`,
      ]);
    }
    for (const e of endpoints) {
      const lag = e.pending > 0 ? `lag ${formatAge(e.lagSeconds)}` : 'none pending';
      const success = e.lastSuccessAt ? `last success ${formatTime(e.lastSuccessAt)}` : 'no success yet';
      const state = e.state === 'removed' ? 'removed from the config' : e.state;
      const breaker = e.status === 'down' ? `down since ${formatTime(e.openedAt)}, next probe ${formatTime(e.nextProbeAt)}` : e.status;
      pairs.push([
        `endpoint ${e.endpoint}`,
        `${state}${e.status === 'up' ? '' : `, ${breaker}`}, ${e.pending} pending, ${e.failed} failed, ${lag}, ${success}${e.url ? ` (${e.url})` : ''}`,
      ]);
    }
    printPairs(pairs);
    if (attention.length === 0) process.stdout.write(`${paint('green', 'ok')}\n`);
    for (const line of attention) process.stdout.write(`${paint('red', 'needs attention:')} ${line}\n`);
  }
  if (attention.length > 0) process.exitCode = EXIT_FAILURE;
}
