// `order-webhooks pause` / `resume`: stops or restarts sending to one endpoint, for every instance
// at once. They call the SQL functions pause_endpoint / resume_endpoint, as the web page does and a
// DBA may from psql. A paused endpoint's events wait as pending; nothing is lost.
import type { Command } from 'commander';
import { setPaused } from '../outbox/endpointState.ts';
import { EXIT_USAGE, fail } from './exit.ts';
import { type ConfigOption, readConfig, withConfigOption } from './options.ts';
import { type JsonOption, printJson, withCurrentSchema } from './output.ts';

interface PauseOptions extends ConfigOption, JsonOption {
  endpoint: string;
}

/** An endpoint's name: `default` (webHook) or a webHooks entry's name. */
const ENDPOINT_NAME = /^[a-z0-9-]{1,40}$/;

export function pauseCommands(program: Command): void {
  for (const paused of [true, false]) {
    withConfigOption(program.command(paused ? 'pause' : 'resume'))
      .description(
        paused
          ? 'stop sending to an endpoint (every instance); its events wait as pending until `resume`'
          : 'send to a paused endpoint again: its waiting events go out at once, each order in order',
      )
      .option('--endpoint <name>', 'the endpoint: default (webHook) or a webHooks entry', 'default')
      .option('--json', 'print JSON')
      .action((options: PauseOptions) => setEndpointPaused(options, paused));
  }
}

async function setEndpointPaused(options: PauseOptions, paused: boolean): Promise<void> {
  const config = readConfig(options.config);
  const endpoint = options.endpoint;
  if (!ENDPOINT_NAME.test(endpoint)) fail('--endpoint: expected default or a webHooks name (1-40 of a-z, 0-9, -)', EXIT_USAGE);
  const what = paused ? 'pause' : 'resume';
  const status = await withCurrentSchema(what, config, (db) => setPaused(db, config.database.schema, endpoint, paused));
  if (options.json) return printJson({ endpoint, status });
  const note = paused
    ? 'nothing is sent to it; its events wait as pending until `order-webhooks resume`'
    : status === 'down'
      ? 'its circuit breaker is open: a probe goes now, and its events follow once one succeeds'
      : 'its waiting events go out now';
  process.stdout.write(`${what}: endpoint ${endpoint} is ${status}: ${note}\n`);
}
