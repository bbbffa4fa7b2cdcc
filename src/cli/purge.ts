// `order-webhooks purge`: deletes old delivered or failed events and their attempts, explicitly.
// It says how many first and asks; `--yes` answers for scripts.
import type { Command } from 'commander';
import { countPurgeable, purge } from '../outbox/purge.ts';
import { REPLAY_BATCH } from '../outbox/replay.ts';
import { EXIT_FAILURE, EXIT_USAGE, fail } from './exit.ts';
import { type ConfigOption, readConfig, withConfigOption } from './options.ts';
import { confirm, type JsonOption, parseTime, printJson, progressBar, withCurrentSchema } from './output.ts';

interface PurgeOptions extends ConfigOption, JsonOption {
  status: string;
  before: string;
  yes?: boolean;
}

export function purgeCommand(program: Command): void {
  withConfigOption(program.command('purge'))
    .description('delete delivered or failed events (and their attempts) created before a time')
    .requiredOption('--status <status>', 'failed or delivered (pending events are never purged)')
    .requiredOption('--before <time>', 'created before: ISO-8601 time (2026-11-01) or a duration ago (P30D)')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--json', 'print JSON')
    .action(purgeEvents);
}

async function purgeEvents(options: PurgeOptions): Promise<void> {
  const config = readConfig(options.config);
  if (options.status !== 'failed' && options.status !== 'delivered') fail('--status: expected failed or delivered', EXIT_USAGE);
  const status = options.status;
  const before = parseTime('--before', options.before);
  const schema = config.database.schema;
  const deleted = await withCurrentSchema('purge', config, async (db) => {
    const count = await countPurgeable(db, schema, status, before);
    process.stderr.write(`purge: ${count} ${status} event(s) created before ${before.toISOString()}, with their attempts\n`);
    if (count === 0) return 0;
    if (!(await confirm(`Delete these ${count} event(s)? This cannot be undone.`, options.yes))) {
      fail('purge: not confirmed; nothing deleted', EXIT_FAILURE);
    }
    const bar = progressBar('purge [{bar}] {percentage}% | {value}/{total} deleted', REPLAY_BATCH);
    bar.start(count);
    try {
      return await purge(db, schema, status, before, (n) => bar.step(n, n));
    } finally {
      bar.stop();
    }
  });
  if (options.json) return printJson({ deleted, status, before });
  process.stdout.write(`purge: deleted ${deleted} ${status} event(s) created before ${before.toISOString()}\n`);
}
