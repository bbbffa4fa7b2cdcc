// `order-webhooks start`: runs the service until SIGTERM or SIGINT.
import type { Command } from 'commander';
import { anyEndpointEnabled } from '../config/config.ts';
import { createLogger } from '../log.ts';
import { startService } from '../service/start.ts';
import { startIdleService } from '../service/idle.ts';
import { EXIT_FAILURE, reporting } from './exit.ts';
import { type ConfigOption, readConfig, withConfigOption } from './options.ts';

export function startCommand(program: Command): void {
  withConfigOption(program.command('start')).description('deliver webhooks until stopped with SIGTERM or SIGINT').action(start);
}

export async function start(options: ConfigOption): Promise<void> {
  const config = readConfig(options.config);
  const log = createLogger(config.logLevel);
  for (const warning of config.warnings) log.warn(warning);
  const enabled = anyEndpointEnabled(config);
  if (!enabled) {
    log.warn(
      `webhooks are disabled (webHook.enabled is false)${config.webHooks.length ? ' and so is every webHooks entry' : ''}: running idle until stopped; nothing is sent; order changes stay in the journal and are delivered once enabled`,
    );
  }
  const service = await reporting('start', () => (enabled ? startService(config, log) : startIdleService(config, log))).finally(() =>
    log.flush(),
  );
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
