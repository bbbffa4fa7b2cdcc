// `order-webhooks purge`: deletes old delivered or failed events and their attempts, explicitly.
// It says how many first and asks; `--yes` answers for scripts.
import type { Config } from '../config/config.ts';
import type { Command } from 'commander';
import { endpointsOf } from '../config/config.ts';
import { countPurgeable, type PurgeScope, purge } from '../outbox/purge.ts';
import { REPLAY_BATCH } from '../outbox/replay.ts';
import { EXIT_USAGE, fail } from './exit.ts';
import { type ConfigOption, type EndpointOption, endpointOption, operatorCommand, withConfig } from './options.ts';
import { countAskRun, type JsonOption, parseTime, printJson, withCurrentSchema } from './output.ts';

interface PurgeOptions extends ConfigOption, JsonOption, EndpointOption {
  status?: string;
  before?: string;
  yes?: boolean;
}

export function purgeCommand(program: Command): void {
  operatorCommand(program, 'purge', {
    endpoint: 'only this endpoint; alone, for an endpoint removed from the config: every event of it, pending ones too',
    yes: true,
    json: true,
  })
    .description('delete delivered or failed events (and their attempts) created before a time, or the events of a removed endpoint')
    .option('--status <status>', 'failed or delivered (pending events are never purged, but those of a removed endpoint)')
    .option('--before <time>', 'created before: ISO-8601 time (2026-11-01) or a duration ago (P30D)')
    .action(withConfig(purgeEvents));
}

async function purgeEvents(config: Config, options: PurgeOptions): Promise<void> {
  const endpoint = endpointOption(options);
  let scope: PurgeScope;
  let what: string;
  if (endpoint !== undefined && options.status === undefined && options.before === undefined) {
    // Every event of an endpoint that is gone from the config: nothing will send its pending ones.
    if (endpointsOf(config).some((e) => e.name === endpoint)) {
      fail(
        `purge: endpoint ${endpoint} is in the config, so its pending events will be sent: give --status and --before to purge its old events`,
        EXIT_USAGE,
      );
    }
    scope = { removedEndpoint: endpoint };
    what = `event(s) of endpoint ${endpoint} (not in the config), pending ones included`;
  } else {
    if (options.status !== 'failed' && options.status !== 'delivered') fail('--status: expected failed or delivered', EXIT_USAGE);
    if (options.before === undefined) fail('purge: --before <time> is required with --status', EXIT_USAGE);
    const before = parseTime('--before', options.before);
    scope = { status: options.status, before, ...(endpoint ? { endpoint } : {}) };
    what = `${options.status} event(s) created before ${before.toISOString()}${endpoint ? ` of endpoint ${endpoint}` : ''}`;
  }
  const schema = config.database.schema;
  const deleted = await withCurrentSchema('purge', config, async (db) => {
    const count = await countPurgeable(db, schema, scope);
    const words = {
      summary: `${what}, with their attempts`,
      question: 'Delete these {count} event(s)? This cannot be undone.',
      done: 'deleted',
      yes: options.yes,
    };
    return countAskRun('purge', count, words, (step) => purge(db, schema, scope, step), REPLAY_BATCH);
  });
  if (options.json) {
    return printJson(
      'removedEndpoint' in scope
        ? { deleted, endpoint: scope.removedEndpoint }
        : { deleted, status: scope.status, before: scope.before, endpoint },
    );
  }
  process.stdout.write(`purge: deleted ${deleted} ${what}\n`);
}
