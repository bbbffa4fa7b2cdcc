// What the commands share, declared once: --config and reading the config it names, --json,
// --yes and --endpoint.
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

/** A subcommand with --config and, as asked, --endpoint (true, or its own help text), --yes and --json. */
export function operatorCommand(
  parent: Command,
  name: string,
  shared: { endpoint?: string | true; yes?: boolean; json?: boolean } = {},
): Command {
  let command = withConfigOption(parent.command(name));
  if (shared.endpoint) command = withEndpointOption(command, shared.endpoint === true ? undefined : shared.endpoint);
  if (shared.yes) command = command.option('-y, --yes', 'do not ask for confirmation');
  if (shared.json) command = command.option('--json', 'print JSON');
  return command;
}

/** An action that is handed the config --config names (a bad one is one line and exit 2). */
export function withConfig<T extends ConfigOption>(action: (config: Config, options: T) => Promise<void>): (options: T) => Promise<void> {
  return (options) => action(readConfig(options.config), options);
}
