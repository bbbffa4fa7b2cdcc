// `order-webhooks migrate`: installs or updates our schema and the capture trigger.
import type { Command } from 'commander';
import { serviceGrantScript } from '../schema/inspect.ts';
import { migrate, migrationScript } from '../schema/migrate.ts';
import { createLogger } from '../log.ts';
import { EXIT_USAGE, fail, reporting } from './exit.ts';
import { type ConfigOption, readConfig, withConfigOption } from './options.ts';

export function migrateCommand(program: Command): void {
  withConfigOption(program.command('migrate'))
    .description('install or update our schema and the capture trigger in the orders database')
    .option('--dry-run', 'print the SQL instead of running it (for a DBA to review)')
    .option('--print-grants <role>', 'print the GRANTs that the role running `start` needs, instead of migrating')
    .action(async (options: ConfigOption & { dryRun?: boolean; printGrants?: string }) => {
      const config = readConfig(options.config);
      if (options.printGrants !== undefined) {
        if (options.printGrants.trim() === '') fail('migrate: --print-grants needs the name of the role that runs `start`', EXIT_USAGE);
        process.stdout.write(`${serviceGrantScript(config.database.schema, options.printGrants)}\n`);
        return;
      }
      const target = { schema: config.database.schema, orders: config.orders, wakeUp: config.database.wakeUp };
      if (options.dryRun) {
        process.stdout.write(`${migrationScript(target)}\n`);
        return;
      }
      const log = createLogger(config.logLevel);
      try {
        const result = await reporting('migrate', () => migrate(config.database.url, target, log, config.database.idlePollInterval));
        const applied = result.applied.length ? `applied ${result.applied.join(', ')}` : 'schema up to date';
        const capture = result.captureInstalled ? 'capture trigger installed' : 'capture trigger up to date';
        process.stdout.write(`migrate: ${applied}; ${capture}\nmigrate: wake-up ${result.wakeUp.summary}\n`);
        if (result.wakeUp.warning) process.stderr.write(`order-webhooks: migrate: warning: ${result.wakeUp.warning}\n`);
      } finally {
        log.flush();
      }
    });
}
