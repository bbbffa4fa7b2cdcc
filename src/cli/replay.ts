// `order-webhooks replay`: sends events again, through the schema's replay functions (the same ones
// a DBA calls from psql). Events go back to pending under their own ids; attempt numbers go on.
import type { Command } from 'commander';
import { REPLAY_BATCH, replayEvent, replayFailed, replayOrder, replayRange } from '../outbox/replay.ts';
import { EXIT_USAGE, fail } from './exit.ts';
import { type ConfigOption, type EndpointOption, endpointOption, readConfig, withConfigOption, withEndpointOption } from './options.ts';
import { type JsonOption, parseTime, printJson, progressBar, withCurrentSchema } from './output.ts';

interface ReplayOptions extends ConfigOption, JsonOption, EndpointOption {
  event?: string;
  failed?: boolean;
  order?: string;
  since?: string;
  until?: string;
}

export function replayCommand(program: Command): void {
  withEndpointOption(withConfigOption(program.command('replay')), 'only the events of this endpoint (with --failed, --order or a range)')
    .description('send events again (back to pending, same event ids, attempt numbers continue, per-order order kept)')
    .option('--event <event-id>', 'one event')
    .option('--failed', 'every failed event (with --since: created since then)')
    .option('--order <order-id>', 'every delivered or failed event of one order')
    .option('--since <time>', 'with --failed: created since; alone with --until: the start of a range (ISO-8601 time or duration ago)')
    .option('--until <time>', 'with --since: every event created in [since, until), whatever its status')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExactly one of: --event, --failed [--since], --order, --since ... --until.\nEvents already pending are left as they are. Prints how many went back to pending.',
    )
    .action(replay);
}

async function replay(options: ReplayOptions): Promise<void> {
  const config = readConfig(options.config);
  const schema = config.database.schema;
  const endpoint = endpointOption(options);
  const to = endpoint ? ` to endpoint ${endpoint}` : '';
  const modes = [
    options.event !== undefined,
    options.failed === true,
    options.order !== undefined,
    !options.failed && options.until !== undefined,
  ];
  if (modes.filter(Boolean).length !== 1 || (!options.failed && (options.since === undefined) !== (options.until === undefined))) {
    fail('replay: give exactly one of --event <id>, --failed [--since <time>], --order <id>, --since <time> --until <time>', EXIT_USAGE);
  }
  if (options.failed && options.until !== undefined)
    fail('replay: --until goes with a range (--since and --until), not with --failed', EXIT_USAGE);
  if (options.event !== undefined && endpoint !== undefined)
    fail('replay: --endpoint goes with --failed, --order or a range; an event id names one endpoint already', EXIT_USAGE);
  if (options.event !== undefined && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(options.event)) {
    fail(`--event: "${options.event}" is not an event id (a UUID, as in X-Event-Id)`, EXIT_USAGE);
  }
  const since = options.since === undefined ? undefined : parseTime('--since', options.since);
  const until = options.until === undefined ? undefined : parseTime('--until', options.until);
  if (since && until && since >= until) fail('replay: --since must be before --until', EXIT_USAGE);

  const bar = progressBar('replay [{bar}] {percentage}% | {value}/{total} outbox ids | {done} replayed', REPLAY_BATCH);
  let what: string;
  const replayed = await withCurrentSchema('replay', config, async (db) => {
    try {
      if (options.event !== undefined) {
        what = `event ${options.event}`;
        return await replayEvent(db, schema, options.event);
      }
      if (options.order !== undefined) {
        what = `order ${options.order}${to}`;
        return await replayOrder(db, schema, options.order, endpoint);
      }
      if (options.failed) {
        what = `${since ? `failed events created since ${since.toISOString()}` : 'failed events'}${to}`;
        return await replayFailed(db, schema, since, bar, endpoint);
      }
      what = `events created from ${since!.toISOString()} to ${until!.toISOString()}${to}`;
      return await replayRange(db, schema, since!, until!, bar, endpoint);
    } finally {
      bar.stop();
    }
  });
  if (options.json) return printJson({ replayed });
  process.stdout.write(`replay: ${replayed} event(s) back to pending (${what!})\n`);
}
