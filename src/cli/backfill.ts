// `order-webhooks backfill`: an endpoint added later gets the events of changes recorded since a time
// (from the outbox's history), in their original order. It says how many first and asks; `--yes`
// answers for scripts.
import type { Command } from 'commander';
import { endpointsOf } from '../config/config.ts';
import { backfill, countBackfill } from '../outbox/backfill.ts';
import { REPLAY_BATCH } from '../outbox/replay.ts';
import { EXIT_FAILURE, EXIT_USAGE, fail } from './exit.ts';
import { type ConfigOption, type EndpointOption, endpointOption, readConfig, withConfigOption } from './options.ts';
import { confirm, type JsonOption, parseTime, printJson, progressBar, withCurrentSchema } from './output.ts';

interface BackfillOptions extends ConfigOption, JsonOption, EndpointOption {
  since: string;
  yes?: boolean;
}

export function backfillCommand(program: Command): void {
  withConfigOption(program.command('backfill'))
    .description("create an endpoint's events for the changes recorded since a time (from the outbox's history), in their original order")
    .requiredOption('--endpoint <name>', 'the endpoint (a webHooks name, or default)')
    .requiredOption('--since <time>', 'changes recorded at or after: ISO-8601 time or a duration ago (P7D)')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--json', 'print JSON')
    .action(run);
}

async function run(options: BackfillOptions): Promise<void> {
  const config = readConfig(options.config);
  const name = endpointOption(options)!;
  const endpoint = endpointsOf(config).find((e) => e.name === name);
  if (!endpoint) fail(`backfill: no endpoint ${name} in the config: add it to webHooks first`, EXIT_USAGE);
  const since = parseTime('--since', options.since);
  const scope = { endpoint: name, since, events: endpoint.hook.events };
  const schema = config.database.schema;
  const created = await withCurrentSchema('backfill', config, async (db) => {
    const count = await countBackfill(db, schema, scope);
    process.stderr.write(
      `backfill: ${count} event(s) for endpoint ${name}, of the changes recorded since ${since.toISOString()} that it has no event for\n`,
    );
    if (count === 0) return 0;
    if (!(await confirm(`Create these ${count} event(s)? Endpoint ${name} will be sent each of them.`, options.yes))) {
      fail('backfill: not confirmed; nothing created', EXIT_FAILURE);
    }
    const bar = progressBar('backfill [{bar}] {percentage}% | {value}/{total} created', REPLAY_BATCH);
    bar.start(count);
    try {
      return await backfill(db, schema, scope, (n) => bar.step(n, n));
    } finally {
      bar.stop();
    }
  });
  if (options.json) return printJson({ created, endpoint: name, since });
  process.stdout.write(`backfill: created ${created} event(s) for endpoint ${name}\n`);
}
