// `order-webhooks status`: is everything in place and flowing? Works as a monitoring check: exit 1
// when something needs attention (trigger missing or disabled, schema not current, failed events,
// lag over --max-lag), 2 when the config is bad.
import type { Command } from 'commander';
import { reportWakeUp } from '../capture/wakeUp.ts';
import { parseDuration } from '../config/duration.ts';
import { endpointUrl, redactUrl } from '../delivery/endpoint.ts';
import { readEndpointStates } from '../outbox/endpointState.ts';
import { outboxStatus } from '../outbox/status.ts';
import { schemaState, triggerState } from '../outbox/installState.ts';
import { EXIT_FAILURE, EXIT_USAGE, fail, reporting } from './exit.ts';
import { type ConfigOption, readConfig, withConfigOption } from './options.ts';
import { connect, formatAge, formatTime, type JsonOption, paint, printJson, printPairs } from './output.ts';

interface StatusOptions extends ConfigOption, JsonOption {
  maxLag?: string;
}

export function statusCommand(program: Command): void {
  withConfigOption(program.command('status'))
    .description('show whether webhooks flow: trigger, schema, backlog, lag, failures, instances (exit 1 when something needs attention)')
    .option('--max-lag <duration>', 'ISO-8601 duration: exit 1 when the oldest pending event is older (e.g. PT5M)')
    .option('--json', 'print JSON')
    .action(status);
}

async function status(options: StatusOptions): Promise<void> {
  const config = readConfig(options.config);
  let maxLagMs: number | undefined;
  if (options.maxLag !== undefined) {
    try {
      maxLagMs = parseDuration(options.maxLag);
    } catch (error) {
      fail(`--max-lag: ${(error as Error).message}`, EXIT_USAGE);
    }
  }
  const schema = config.database.schema;
  const target = { schema, orders: config.orders };
  const report = await reporting('status', async () => {
    const db = await connect(config.database);
    try {
      const schemaInfo = await schemaState(db, schema);
      const trigger = await triggerState(db, target);
      const wakeUp = await reportWakeUp(db, config.database.wakeUp, config.database.idlePollInterval);
      const outbox = schemaInfo.current ? await outboxStatus(db, schema) : null;
      const endpoints = schemaInfo.current ? await readEndpointStates(db, schema, ['default']) : [];
      return { schemaInfo, trigger, outbox, wakeUp, endpoints };
    } finally {
      await db.end().catch(() => undefined);
    }
  });
  const { schemaInfo, trigger, outbox, wakeUp, endpoints } = report;

  const attention: string[] = [];
  if (wakeUp.warning) attention.push(wakeUp.warning);
  if (!trigger.installed) attention.push(`capture trigger ${trigger.condition} on ${trigger.table}: run \`order-webhooks migrate\``);
  else if (!trigger.enabled) attention.push(`capture trigger disabled on ${trigger.table}: order changes are not captured`);
  else if (!trigger.matchesConfig) attention.push('capture trigger installed for another config: run `order-webhooks migrate`');
  if (trigger.installed) attention.push(...trigger.problems);
  attention.push(...trigger.damage.map((d) => `schema damaged: ${d}`));
  if (!schemaInfo.current) {
    attention.push(
      schemaInfo.version === null
        ? `schema ${schema} not installed: run \`order-webhooks migrate\``
        : `schema ${schema} at version ${schemaInfo.version}, this release needs ${schemaInfo.latest}`,
    );
  }
  if (outbox && outbox.counts.failed > 0)
    attention.push(`${outbox.counts.failed} failed event(s): see \`order-webhooks outbox list --status failed\``);
  for (const e of endpoints) {
    if (e.status === 'paused')
      attention.push(`endpoint ${e.endpoint} is paused: nothing is sent to it (order-webhooks resume --endpoint ${e.endpoint})`);
    if (e.status === 'down') {
      attention.push(
        `endpoint ${e.endpoint} is down since ${formatTime(e.openedAt)} (circuit breaker open after ${e.failures} failures): one probe per interval, next at ${formatTime(e.nextProbeAt)}`,
      );
    }
  }
  if (outbox && maxLagMs !== undefined && outbox.lagSeconds * 1000 > maxLagMs) {
    attention.push(`lag ${formatAge(outbox.lagSeconds)} is over --max-lag ${options.maxLag}`);
  }

  const endpoint = config.webHook.endpoint ? redactUrl(endpointUrl(config.webHook.endpoint, config.webHook.key)) : null;
  if (options.json) {
    printJson({
      ok: attention.length === 0,
      attention,
      webhooks: { enabled: config.webHook.enabled, endpoint },
      endpoints,
      schema: schemaInfo,
      trigger,
      wakeUp,
      journalBacklog: outbox?.journalBacklog ?? null,
      outbox: outbox?.counts ?? null,
      oldestPendingAt: outbox?.oldestPendingAt ?? null,
      lagSeconds: outbox?.lagSeconds ?? null,
      deliveredLast5Minutes: outbox?.deliveredRecently ?? null,
      lastFailure: outbox?.lastFailure ?? null,
      instances: outbox?.instances ?? null,
      connections: outbox?.connections ?? null,
    });
  } else {
    const pairs: [string, string | number][] = [
      ['webhooks', config.webHook.enabled ? 'enabled' : 'disabled (webHook.enabled is false)'],
      ['endpoint', endpoint ?? '(none)'],
      ...endpoints.map((e): [string, string] => [
        `endpoint ${e.endpoint}`,
        e.status === 'down' ? `down since ${formatTime(e.openedAt)}, next probe ${formatTime(e.nextProbeAt)}` : e.status,
      ]),
      ['schema', `${schema} version ${schemaInfo.version ?? 'none'} (this release: ${schemaInfo.latest})`],
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
        ['outbox', `${outbox.counts.pending} pending, ${outbox.counts.delivered} delivered, ${outbox.counts.failed} failed`],
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
    printPairs(pairs);
    if (attention.length === 0) process.stdout.write(`${paint('green', 'ok')}\n`);
    for (const line of attention) process.stdout.write(`${paint('red', 'needs attention:')} ${line}\n`);
  }
  if (attention.length > 0) process.exitCode = EXIT_FAILURE;
}
