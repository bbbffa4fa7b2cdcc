// The command line: the only place that reads argv, prints for humans and sets exit codes.
import { Command, CommanderError } from 'commander';
import { ConfigError, configPathFrom, isServiceConfigured, loadConfig, type Config } from '../config/config.ts';
import { DemoInterrupted, runDemo } from '../demo/demo.ts';
import { createLogger } from '../log.ts';
import { migrate, migrationScript } from '../capture/migrate.ts';
import { type Service, startService } from '../service.ts';

/** Exit codes: 0 done, 1 failed while running, 2 bad config or setup (fix it and run again). */
const EXIT_FAILURE = 1;
const EXIT_CONFIG = 2;
/** The demo was interrupted (Ctrl-C): 128 + SIGINT, as shells report it. */
const EXIT_INTERRUPTED = 130;

class UsageFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

function fail(message: string, exitCode: number): never {
  throw new UsageFailure(message, exitCode);
}

function readConfig(path: string | undefined): Config {
  try {
    return loadConfig(configPathFrom(path));
  } catch (error) {
    if (error instanceof ConfigError) fail(`config error: ${error.message}`, EXIT_CONFIG);
    throw error;
  }
}

function exitCodeFor(error: Error): number {
  return ['ConfigError', 'CaptureError', 'TlsConfigError'].includes(error.name) ? EXIT_CONFIG : EXIT_FAILURE;
}

const program = new Command('order-webhooks')
  .description('Turns order changes in a PostgreSQL orders database into signed webhooks.')
  .exitOverride()
  .showHelpAfterError();

program
  .command('migrate')
  .description('install or update our schema and the capture trigger in the orders database')
  .option('-c, --config <file>', 'config file (default: $ORDER_WEBHOOKS_CONFIG)')
  .option('--dry-run', 'print the SQL instead of running it (for a DBA to review)')
  .action(async (options: { config?: string; dryRun?: boolean }) => {
    const config = readConfig(options.config);
    const target = { schema: config.database.schema, orders: config.orders, wakeUp: config.database.wakeUp };
    if (options.dryRun) {
      process.stdout.write(`${migrationScript(target)}\n`);
      return;
    }
    const log = createLogger(config.logLevel);
    try {
      const result = await migrate(config.database.url, target, log, config.database.idlePollInterval);
      const applied = result.applied.length ? `applied ${result.applied.join(', ')}` : 'schema up to date';
      const capture = result.captureInstalled ? 'capture trigger installed' : 'capture trigger up to date';
      process.stdout.write(`migrate: ${applied}; ${capture}\nmigrate: wake-up ${result.wakeUp.summary}\n`);
      if (result.wakeUp.warning) process.stderr.write(`order-webhooks: migrate: warning: ${result.wakeUp.warning}\n`);
    } catch (error) {
      fail(`migrate: ${(error as Error).message}`, exitCodeFor(error as Error));
    } finally {
      log.flush();
    }
  });

async function start(options: { config?: string }): Promise<void> {
  const config = readConfig(options.config);
  const log = createLogger(config.logLevel);
  if (!config.webHook.enabled) {
    log.warn(
      'webhooks are disabled (webHook.enabled is false): nothing is sent; order changes stay in the journal and are delivered once enabled',
    );
    log.flush();
    return;
  }
  let service: Service;
  try {
    service = await startService(config, log);
  } catch (error) {
    log.flush();
    fail(`start: ${(error as Error).message}`, exitCodeFor(error as Error));
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      process.stderr.write(`order-webhooks: second ${signal}: exiting at once; events in flight are retried when their lease ends\n`);
      process.exit(EXIT_FAILURE);
    }
    log.info({ signal }, 'signal received');
    void service.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const code = await service.stopped;
  // Everything is released; exit now rather than wait for stray sockets of requests we gave up on.
  await new Promise<void>((resolve) => log.flush(() => resolve()));
  process.exit(code);
}

async function demo(): Promise<void> {
  const controller = new AbortController();
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  // Every signal only aborts: the demo then stops and removes whatever it had started.
  const onSignal = () => controller.abort();
  for (const signal of signals) process.on(signal, onSignal);
  try {
    const result = await runDemo({ print: (line) => process.stdout.write(`${line}\n`), signal: controller.signal });
    if (result.delivered !== result.expected || result.events !== result.expected || result.badSignatures > 0) {
      fail(
        `demo: ${result.delivered} of ${result.expected} events delivered (${result.events} in the outbox, ${result.badSignatures} bad signatures)`,
        EXIT_FAILURE,
      );
    }
  } catch (error) {
    if (error instanceof UsageFailure) throw error;
    if (error instanceof DemoInterrupted) fail('demo: interrupted; everything it started is stopped and removed', EXIT_INTERRUPTED);
    fail(`demo: ${(error as Error).message}`, EXIT_FAILURE);
  } finally {
    for (const signal of signals) process.removeListener(signal, onSignal);
    // Everything the demo started is stopped by now. When PostgreSQL went first (Ctrl-C in a
    // terminal reaches it too), pg-listen keeps retrying its connection after close(): do not let
    // that retry loop hold the process for minutes.
    setTimeout(() => process.exit(), 2000).unref();
  }
}

program
  .command('start')
  .description('deliver webhooks until stopped with SIGTERM or SIGINT')
  .option('-c, --config <file>', 'config file (default: $ORDER_WEBHOOKS_CONFIG)')
  .action(start);

program
  .command('demo')
  .description('show the whole pipeline on this machine: embedded PostgreSQL, sample orders, a receiver; removes it all at the end')
  .action(demo);

// `npm start`: the real service when there is a config (--config, ORDER_WEBHOOKS_CONFIG or
// DATABASE_URL), else the demo, so that a fresh clone shows what it does.
program
  .command('run', { isDefault: true, hidden: true })
  .option('-c, --config <file>', 'config file (default: $ORDER_WEBHOOKS_CONFIG)')
  .action((options: { config?: string }) => (isServiceConfigured(options.config) ? start(options) : demo()));

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? 0 : EXIT_CONFIG;
  } else if (error instanceof UsageFailure) {
    process.stderr.write(`order-webhooks: ${error.message}\n`);
    process.exitCode = error.exitCode;
  } else {
    process.stderr.write(`order-webhooks: unexpected error: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = EXIT_FAILURE;
  }
}
