// `order-webhooks check`: is the set-up right? One line per item, ok or failed with the reason:
// config, TLS files, database, schema, trigger, and the endpoint through the service's own TLS
// set-up. `--send` also posts one signed test request, and a test alert when alerts are configured.
import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import pino from 'pino';
import { AlertSender } from '../alerts/alerter.ts';
import type { Config } from '../config/config.ts';
import { endpointUrl, redactUrl } from '../delivery/endpoint.ts';
import { Sender } from '../delivery/sender.ts';
import { loadTls } from '../delivery/tls.ts';
import { schemaState, triggerState } from '../outbox/installState.ts';
import { reportWakeUp } from '../capture/wakeUp.ts';
import { CommandFailure, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './exit.ts';
import { type ConfigOption, readConfig, withConfigOption } from './options.ts';
import { connect, type JsonOption, paint, printJson } from './output.ts';

/** The test request of `check --send`: a receiver can tell it from real events by the order id or the header. */
export const CHECK_BODY = '{"orderId":"order-webhooks-check","eventType":"OrderCreated"}';
export const CHECK_HEADER = 'X-Order-Webhooks-Check';

interface CheckOptions extends ConfigOption, JsonOption {
  send?: boolean;
}

interface Item {
  item: string;
  ok: boolean;
  detail: string;
}

export function checkCommand(program: Command): void {
  withConfigOption(program.command('check'))
    .description('check config, database, schema, trigger and endpoint (TLS included); one line per item')
    .option('--send', `also post one signed test request (body ${CHECK_BODY}, header ${CHECK_HEADER}: 1)`)
    .option('--json', 'print JSON')
    .action(check);
}

async function check(options: CheckOptions): Promise<void> {
  const items: Item[] = [];
  let config: Config | undefined;
  try {
    config = readConfig(options.config);
    items.push({ item: 'config', ok: true, detail: 'valid' });
  } catch (error) {
    if (!(error instanceof CommandFailure)) throw error;
    items.push({ item: 'config', ok: false, detail: error.message });
  }
  if (config) {
    await checkDatabase(config, items);
    await checkEndpoint(config, items, Boolean(options.send));
    if (config.alerts && options.send) await checkAlerts(config.alerts, items);
  }
  if (options.json) printJson({ ok: items.every((i) => i.ok), items });
  else {
    const width = Math.max(...items.map((i) => i.item.length));
    for (const i of items) {
      process.stdout.write(`${i.ok ? paint('green', 'ok    ') : paint('red', 'failed')}  ${i.item.padEnd(width)}  ${i.detail}\n`);
    }
  }
  process.exitCode = !config ? EXIT_USAGE : items.every((i) => i.ok) ? EXIT_OK : EXIT_FAILURE;
}

async function checkDatabase(config: Config, items: Item[]): Promise<void> {
  const schema = config.database.schema;
  let db: Awaited<ReturnType<typeof connect>>;
  try {
    db = await connect(config.database);
  } catch (error) {
    items.push({ item: 'database', ok: false, detail: (error as Error).message });
    return;
  }
  try {
    const { rows } = await db.query<{ version: string }>("SELECT current_setting('server_version') AS version");
    items.push({ item: 'database', ok: true, detail: `reachable (PostgreSQL ${rows[0]!.version})` });
    const state = await schemaState(db, schema);
    items.push({
      item: 'migrations',
      ok: state.current,
      detail: state.current
        ? `schema ${schema} at version ${state.version}`
        : `schema ${schema} at version ${state.version ?? 'none'}, this release needs ${state.latest}: run \`order-webhooks migrate\``,
    });
    const trigger = await triggerState(db, { schema, orders: config.orders });
    const ok = trigger.enabled && trigger.matchesConfig && trigger.damage.length === 0;
    items.push({
      item: 'trigger',
      ok,
      detail: ok
        ? `installed and enabled on ${trigger.table}`
        : trigger.installed && trigger.enabled
          ? `installed on ${trigger.table} for another config: run \`order-webhooks migrate\``
          : `${trigger.condition} on ${trigger.table}${trigger.installed ? '' : ': run `order-webhooks migrate`'}`,
    });
    items.push({
      item: 'trigger mode',
      ok: trigger.mode === trigger.expectedMode,
      detail: `${trigger.mode}${trigger.mode === trigger.expectedMode ? '' : `, orders.replicaSessions wants ${trigger.expectedMode}`}${trigger.problems.length ? `: ${trigger.problems.join('; ')}` : ''}`,
    });
    if (trigger.damage.length > 0) items.push({ item: 'schema', ok: false, detail: `damaged: ${trigger.damage.join('; ')}` });
    const wakeUp = await reportWakeUp(db, config.database.wakeUp, config.database.idlePollInterval);
    items.push({ item: 'wake-up', ok: wakeUp.warning === undefined, detail: wakeUp.warning ?? wakeUp.summary });
  } catch (error) {
    items.push({ item: 'database', ok: false, detail: (error as Error).message });
  } finally {
    await db.end().catch(() => undefined);
  }
}

/** Posts a test alert (`"alert":"test"`) through the service's own alert sender, tried once. */
async function checkAlerts(alerts: NonNullable<Config['alerts']>, items: Item[]): Promise<void> {
  let tls: ReturnType<typeof loadTls>;
  try {
    tls = loadTls(alerts, new Date(), 'alerts');
  } catch (error) {
    items.push({ item: 'alert', ok: false, detail: (error as Error).message });
    return;
  }
  // Its failure is this command's line, not a log entry.
  const sender = new AlertSender(alerts, tls.options, pino({ level: 'silent' }), []);
  try {
    const { ok, reason } = await sender.send({
      alert: 'test',
      state: 'firing',
      endpoint: null,
      text: 'order-webhooks: test alert from `order-webhooks check --send`',
      at: new Date().toISOString(),
    });
    const where = redactUrl(alerts.endpoint);
    items.push({
      item: 'alert',
      ok,
      detail: ok
        ? `test alert answered by ${where}${alerts.secret ? ' (signed)' : ' (unsigned: no alerts.secret)'}`
        : `test alert to ${where} failed: ${reason}`,
    });
  } finally {
    sender.close();
  }
}

async function checkEndpoint(config: Config, items: Item[], send: boolean): Promise<void> {
  const hook = config.webHook;
  if (!hook.endpoint) {
    items.push({ item: 'endpoint', ok: !hook.enabled, detail: 'none configured (webHook.endpoint)' });
    return;
  }
  const where = redactUrl(endpointUrl(hook.endpoint, hook.key));
  let tls: ReturnType<typeof loadTls>;
  try {
    tls = loadTls(hook);
    const warnings = tls.warnings.length ? `; warning: ${tls.warnings.join('; ')}` : '';
    items.push({ item: 'tls', ok: true, detail: `${hook.endpoint.startsWith('https:') ? 'files loaded' : 'not used (http)'}${warnings}` });
  } catch (error) {
    items.push({ item: 'tls', ok: false, detail: (error as Error).message });
    return;
  }
  const sender = new Sender(hook, tls.options);
  try {
    const probe = await sender.probe();
    items.push({
      item: 'endpoint',
      ok: probe.ok,
      detail: probe.ok ? `${where} reachable (HEAD answered ${probe.httpStatus})` : `${where}: ${probe.error}`,
    });
    if (send && probe.ok) {
      const outcome = await sender.send({
        eventId: randomUUID(),
        attempt: 1,
        body: CHECK_BODY,
        extraHeaders: { [CHECK_HEADER.toLowerCase()]: '1' },
      });
      items.push({
        item: 'send',
        ok: outcome.ok,
        detail: outcome.ok
          ? `test request answered ${outcome.httpStatus} in ${outcome.durationMs} ms${hook.secret ? ' (signed)' : ' (unsigned: no webHook.secret)'}`
          : `test request ${outcome.httpStatus ? `answered ${outcome.httpStatus}` : 'failed'}: ${outcome.error}`,
      });
    }
  } finally {
    sender.close();
  }
}
