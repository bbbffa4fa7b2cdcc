// `order-webhooks purge`: deletes old delivered or failed events and their attempts, explicitly.
// It says how many first and asks; `--yes` answers for scripts.
import type { Command } from 'commander';
import { endpointsOf } from '../config/config.ts';
import { countPurgeable, type PurgeScope, purge } from '../outbox/purge.ts';
import { REPLAY_BATCH } from '../outbox/replay.ts';
import { EXIT_FAILURE, EXIT_USAGE, fail } from './exit.ts';
import { type ConfigOption, type EndpointOption, endpointOption, readConfig, withConfigOption, withEndpointOption } from './options.ts';
import { confirm, type JsonOption, parseTime, printJson, progressBar, withCurrentSchema } from './output.ts';

interface PurgeOptions extends ConfigOption, JsonOption, EndpointOption {
  status?: string;
  before?: string;
  yes?: boolean;
}

export function purgeCommand(program: Command): void {
  withEndpointOption(
    withConfigOption(program.command('purge')),
    'only this endpoint; alone, for an endpoint removed from the config: every event of it, pending ones too',
  )
    .description('delete delivered or failed events (and their attempts) created before a time, or the events of a removed endpoint')
    .option('--status <status>', 'failed or delivered (pending events are never purged, but those of a removed endpoint)')
    .option('--before <time>', 'created before: ISO-8601 time (2026-11-01) or a duration ago (P30D)')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--json', 'print JSON')
    .action(purgeEvents);
}

async function purgeEvents(options: PurgeOptions): Promise<void> {
  const config = readConfig(options.config);
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
    process.stderr.write(`purge: ${count} ${what}, with their attempts\n`);
    if (count === 0) return 0;
    if (!(await confirm(`Delete these ${count} event(s)? This cannot be undone.`, options.yes))) {
      fail('purge: not confirmed; nothing deleted', EXIT_FAILURE);
    }
    const bar = progressBar('purge [{bar}] {percentage}% | {value}/{total} deleted', REPLAY_BATCH);
    bar.start(count);
    try {
      return await purge(db, schema, scope, (n) => bar.step(n, n));
    } finally {
      bar.stop();
    }
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
