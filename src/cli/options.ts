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

export interface EndpointOption {
  endpoint?: string;
}

/** `--endpoint NAME`: one endpoint's events (`default` is webHook's). */
export function withEndpointOption(
  command: Command,
  what = 'only the events of this endpoint (default: webHook; else a webHooks name)',
): Command {
  return command.option('--endpoint <name>', what);
}

/** The --endpoint value, checked for the form of an endpoint name. */
export function endpointOption(options: EndpointOption): string | undefined {
  if (options.endpoint !== undefined && !/^[a-z0-9-]{1,40}$/.test(options.endpoint)) {
    fail('--endpoint: expected an endpoint name (1 to 40 characters of a-z, 0-9 and -)', EXIT_USAGE);
  }
  return options.endpoint;
}
