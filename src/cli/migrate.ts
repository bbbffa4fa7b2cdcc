// `order-webhooks migrate`: installs or updates our schema and the capture trigger.
import type { Command } from 'commander';
import { serviceGrantScript } from '../schema/inspect.ts';
import { migrate, NOTHING_INSTALLED, planFor, planMigration, planScript } from '../schema/migrate.ts';
import { ident } from '../db.ts';
import { DatabaseUnreachableError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { EXIT_USAGE, fail, reporting } from './exit.ts';
import { type ConfigOption, readConfig, withConfigOption } from './options.ts';

export function migrateCommand(program: Command): void {
  withConfigOption(program.command('migrate'))
    .description('install or update our schema and the capture trigger in the orders database')
    .option('--dry-run', 'print the SQL that migrate would run on this database now, instead of running it (for a DBA to review)')
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
        // stdout is the SQL alone, to save or to pipe into psql; what is said about it goes to stderr.
        const log = createLogger(config.logLevel, process.stderr);
        const plan = await reporting('migrate', async () => {
          try {
            return await planFor(config.database.url, target, log);
          } catch (error) {
            if (!(error instanceof DatabaseUnreachableError)) throw error;
            process.stderr.write(
              `order-webhooks: migrate: ${error.message}; printing what migrate runs on a database without schema ${ident(target.schema)}\n`,
            );
            return planMigration(target, NOTHING_INSTALLED);
          }
        });
        process.stdout.write(planScript(plan.statements));
        if (plan.statements.length === 0) process.stderr.write('migrate: nothing to run: schema up to date; capture trigger up to date\n');
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
