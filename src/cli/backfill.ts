// `order-webhooks backfill`: an endpoint added later gets the events of changes recorded since a time
// (from the outbox's history), in their original order. It says how many first and asks; `--yes`
// answers for scripts.
import type { Config } from '../config/config.ts';
import type { Command } from 'commander';
import { endpointsOf } from '../config/config.ts';
import { backfill, countBackfill } from '../outbox/backfill.ts';
import { REPLAY_BATCH } from '../outbox/replay.ts';
import { EXIT_USAGE, fail } from './exit.ts';
import { type ConfigOption, type EndpointOption, endpointOption, operatorCommand, withConfig } from './options.ts';
import { countAskRun, type JsonOption, parseTime, printJson, withCurrentSchema } from './output.ts';

interface BackfillOptions extends ConfigOption, JsonOption, EndpointOption {
  since: string;
  yes?: boolean;
}

export function backfillCommand(program: Command): void {
  operatorCommand(program, 'backfill', { yes: true, json: true })
    .description("create an endpoint's events for the changes recorded since a time (from the outbox's history), in their original order")
    .requiredOption('--endpoint <name>', 'the endpoint (a webHooks name, or default)')
    .requiredOption('--since <time>', 'changes recorded at or after: ISO-8601 time or a duration ago (P7D)')
    .action(withConfig(run));
}

async function run(config: Config, options: BackfillOptions): Promise<void> {
  const name = endpointOption(options)!;
  const endpoint = endpointsOf(config).find((e) => e.name === name);
  if (!endpoint) fail(`backfill: no endpoint ${name} in the config: add it to webHooks first`, EXIT_USAGE);
  const since = parseTime('--since', options.since);
  const scope = { endpoint: name, since, events: endpoint.hook.events };
  const schema = config.database.schema;
  const created = await withCurrentSchema('backfill', config, async (db) => {
    const count = await countBackfill(db, schema, scope);
    const words = {
      summary: `event(s) for endpoint ${name}, of the changes recorded since ${since.toISOString()} that it has no event for`,
      question: `Create these {count} event(s)? Endpoint ${name} will be sent each of them.`,
      done: 'created',
      yes: options.yes,
    };
    return countAskRun('backfill', count, words, (step) => backfill(db, schema, scope, step), REPLAY_BATCH);
  });
  if (options.json) return printJson({ created, endpoint: name, since });
  process.stdout.write(`backfill: created ${created} event(s) for endpoint ${name}\n`);
}
