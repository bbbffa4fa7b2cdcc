// `order-webhooks outbox list|show`: which events there are, and what happened to one of them.
import type { Command } from 'commander';
import { EVENT_TYPES } from '../events.ts';
import { EVENT_STATUSES, type EventStatus } from '../outbox/status.ts';
import { listEvents, showEvent } from '../outbox/reads.ts';
import { EXIT_FAILURE, EXIT_USAGE, fail } from './exit.ts';
import { type ConfigOption, type EndpointOption, endpointOption, readConfig, withConfigOption, withEndpointOption } from './options.ts';
import { withCurrentSchema } from './output.ts';
import { formatTime, type JsonOption, parseTime, printJson, printPairs, printTable } from './output.ts';

interface ListOptions extends ConfigOption, JsonOption, EndpointOption {
  status?: string;
  order?: string;
  eventType?: string;
  since?: string;
  until?: string;
  limit: string;
}

export function outboxCommand(program: Command): void {
  const outbox = program.command('outbox').description('list events and show one with every attempt');
  withEndpointOption(withConfigOption(outbox.command('list')))
    .description('list events, newest first (one order: in its original order)')
    .option('--status <status>', `only this status: ${EVENT_STATUSES.join(', ')}`)
    .option('--order <id>', 'only this order')
    .option('--event-type <type>', `only this event type (${EVENT_TYPES.join(', ')})`)
    .option('--since <time>', 'created at or after: ISO-8601 time, or a duration ago (PT1H)')
    .option('--until <time>', 'created before: ISO-8601 time, or a duration ago')
    .option('--limit <n>', 'at most this many', '50')
    .option('--json', 'print JSON')
    .action(list);
  withConfigOption(outbox.command('show'))
    .description('show one event: its body and every attempt (status, kind, reason, duration)')
    .argument('<event-id>', 'the event id (X-Event-Id)')
    .option('--json', 'print JSON')
    .action(show);
}

async function list(options: ListOptions): Promise<void> {
  const config = readConfig(options.config);
  if (options.status !== undefined && !(EVENT_STATUSES as readonly string[]).includes(options.status)) {
    fail(`--status: expected one of ${EVENT_STATUSES.join(', ')}`, EXIT_USAGE);
  }
  if (options.eventType !== undefined && !(EVENT_TYPES as readonly string[]).includes(options.eventType)) {
    fail(`--event-type: expected one of ${EVENT_TYPES.join(', ')}`, EXIT_USAGE);
  }
  const limit = Number(options.limit);
  if (!Number.isInteger(limit) || limit < 1) fail('--limit: expected a whole number of at least 1', EXIT_USAGE);
  const filter = {
    endpoint: endpointOption(options),
    status: options.status as EventStatus | undefined,
    orderId: options.order,
    eventType: options.eventType,
    since: options.since === undefined ? undefined : parseTime('--since', options.since),
    until: options.until === undefined ? undefined : parseTime('--until', options.until),
    limit,
  };
  const events = await withCurrentSchema('outbox list', config, (db) => listEvents(db, config.database.schema, filter));
  if (options.json) return printJson(events);
  printTable(
    ['event id', 'endpoint', 'order', 'type', 'status', 'attempts', 'created', 'last failure'],
    events.map((e) => [
      e.eventId,
      e.endpoint,
      e.orderId,
      e.eventType,
      e.inFlight ? `${e.status} (in flight)` : e.status,
      e.attempts,
      formatTime(e.createdAt),
      e.lastErrorKind ? `${e.lastErrorKind}: ${e.lastError ?? ''}` : '',
    ]),
  );
  process.stderr.write(`${events.length} event(s)${events.length === limit ? ` (--limit ${limit}; there may be more)` : ''}\n`);
}

async function show(eventId: string, options: ConfigOption & JsonOption): Promise<void> {
  const config = readConfig(options.config);
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(eventId)) {
    fail(`outbox show: "${eventId}" is not an event id (a UUID, as in X-Event-Id)`, EXIT_USAGE);
  }
  const event = await withCurrentSchema('outbox show', config, (db) => showEvent(db, config.database.schema, eventId));
  if (!event) fail(`outbox show: no event ${eventId} in the outbox`, EXIT_FAILURE);
  if (options.json) return printJson(event);
  printPairs([
    ['event id', event.eventId],
    ['endpoint', event.endpoint],
    ['order', event.orderId],
    ['type', event.eventType],
    ['status', event.inFlight ? `${event.status} (an attempt is in flight)` : event.status],
    ['attempts', event.attempts],
    ['created', formatTime(event.createdAt)],
    ...(event.status === 'pending' ? [['next attempt', formatTime(event.nextAttemptAt)] as [string, string]] : []),
    ...(event.deliveredAt ? [['delivered', formatTime(event.deliveredAt)] as [string, string]] : []),
    ...(event.replayedAt ? [['replayed', formatTime(event.replayedAt)] as [string, string]] : []),
    ['body', event.body],
  ]);
  printTable(
    ['attempt', 'outcome', 'started', 'duration', 'http', 'reason'],
    event.attemptRows.map((a) => [
      a.attempt,
      a.outcome,
      formatTime(a.startedAt),
      a.durationMs === null ? '' : `${a.durationMs} ms`,
      a.httpStatus,
      a.reason,
    ]),
  );
}
