// What every command shares: the --config option and reading the config it names.
import type { Command } from 'commander';
import { type Config, configPathFrom, loadConfig } from '../config/config.ts';
import { ConfigError } from '../errors.ts';
import { EXIT_USAGE, fail } from './exit.ts';

export interface ConfigOption {
  config?: string;
}

export function withConfigOption(command: Command): Command {
  return command.option('-c, --config <file>', 'config file (default: $ORDER_WEBHOOKS_CONFIG)');
}

export function readConfig(path: string | undefined): Config {
  try {
    return loadConfig(configPathFrom(path));
  } catch (error) {
    if (error instanceof ConfigError) fail(`config error: ${error.message}`, EXIT_USAGE);
    throw error;
  }
}
