// The command line: the only place that reads argv, prints for humans and sets exit codes. Each
// command lives in a file of its own; this one registers them and turns failures into exit codes.
import { Command, CommanderError } from 'commander';
import { isServiceConfigured } from '../config/config.ts';
import { demo, demoCommand } from './demo.ts';
import { CommandFailure, EXIT_FAILURE, EXIT_USAGE } from './exit.ts';
import { backfillCommand } from './backfill.ts';
import { checkCommand } from './check.ts';
import { migrateCommand } from './migrate.ts';
import { outboxCommand } from './outbox.ts';
import { pauseCommands } from './pause.ts';
import { purgeCommand } from './purge.ts';
import { replayCommand } from './replay.ts';
import { statusCommand } from './status.ts';
import { uninstallCommand } from './uninstall.ts';
import { type ConfigOption, withConfigOption } from './options.ts';
import { start, startCommand } from './start.ts';

const program = new Command('order-webhooks')
  .description('Turns order changes in a PostgreSQL orders database into signed webhooks.')
  .exitOverride()
  .showHelpAfterError();

migrateCommand(program);
startCommand(program);
statusCommand(program);
outboxCommand(program);
replayCommand(program);
purgeCommand(program);
pauseCommands(program);
backfillCommand(program);
checkCommand(program);
uninstallCommand(program);
demoCommand(program);

// `npm start`: the real service when there is a config (--config, ORDER_WEBHOOKS_CONFIG or
// DATABASE_URL), else the demo, so that a fresh clone shows what it does.
withConfigOption(program.command('run', { isDefault: true, hidden: true })).action((options: ConfigOption) =>
  isServiceConfigured(options.config) ? start(options) : demo(),
);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? 0 : EXIT_USAGE;
  } else if (error instanceof CommandFailure) {
    process.stderr.write(`order-webhooks: ${error.message}\n`);
    process.exitCode = error.exitCode;
  } else {
    process.stderr.write(`order-webhooks: unexpected error: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = EXIT_FAILURE;
  }
}
