// `order-webhooks check`: is the set-up right? One line per item, ok or failed with the reason:
// config, database, every set-up check `start` makes (pooler, privileges, migrations, schema, orders
// table, trigger: the health model's, so check fails exactly where start would), how the trigger
// fires, the wake-up, TLS files, and the endpoint through the service's own TLS set-up. `--send`
// also posts one signed test request, and a test alert when alerts are configured.
import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import pino from 'pino';
import { AlertSender } from '../alerts/alerter.ts';
import { type Config, endpointsOf, type WebHookConfig } from '../config/config.ts';
import { endpointUrl, redactUrl } from '../delivery/endpoint.ts';
import { Sender } from '../delivery/sender.ts';
import { loadTls } from '../delivery/tls.ts';
import { assess, inScope, type ProblemCode } from '../health/model.ts';
import { type Observed, observeInstall } from '../health/observe.ts';
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
  /** A failed database item: the health model's problem code. */
  code?: ProblemCode;
}

export function checkCommand(program: Command): void {
  withConfigOption(program.command('check'))
    .description(
      'check config, database, what start checks (pooler, privileges, schema, trigger) and the endpoint (TLS included); one line per item',
    )
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
    const endpoints = endpointsOf(config);
    if (endpoints.length === 0) items.push({ item: 'endpoint', ok: !config.webHook.enabled, detail: 'none configured (webHook.endpoint)' });
    // Every endpoint, one after the other: its TLS files, a HEAD, and with --send a test request.
    for (const e of endpoints) await checkEndpoint(e.name, e.hook, items, Boolean(options.send));
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

/**
 * The set-up items in the order `start` checks them, then how capture runs: each names the health
 * model's problem codes it shows, and what it says when it has none.
 */
const DATABASE_ITEMS: { item: string; codes: readonly ProblemCode[]; ok(observed: Observed, config: Config): string }[] = [
  { item: 'pooler', codes: ['pooler_unsupported'], ok: () => 'each connection is a session of its own' },
  {
    item: 'privileges',
    codes: ['privileges_missing'],
    ok: (o) => `the role ${o.facts.privileges?.role} has what \`start\` needs on schema ${o.facts.privileges?.schema}`,
  },
  {
    item: 'migrations',
    codes: ['schema_not_installed', 'schema_outdated', 'schema_newer'],
    ok: (o, c) => (o.schema ? `schema ${c.database.schema} at version ${o.schema.version}` : 'not readable by this role'),
  },
  { item: 'schema', codes: ['schema_damaged'], ok: () => 'intact' },
  { item: 'orders table', codes: ['orders_table_invalid', 'orders_table_missing'], ok: (o) => `${o.trigger.table} can be captured` },
  {
    item: 'trigger',
    codes: ['capture_not_installed', 'capture_other_config', 'trigger_missing', 'trigger_disabled'],
    ok: (o) => `installed and enabled on ${o.trigger.table}`,
  },
  {
    item: 'trigger mode',
    codes: ['trigger_replica_only', 'trigger_not_always', 'trigger_always'],
    ok: (o) => `${o.trigger.mode} (orders.replicaSessions wants ${o.trigger.expectedMode})`,
  },
  { item: 'wake-up', codes: ['wake_up_unsafe'], ok: (o) => o.wakeUp.summary },
];

async function checkDatabase(config: Config, items: Item[]): Promise<void> {
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
    // The facts and the rule `start` refuses by (src/health/): check fails exactly where start would.
    const target = { schema: config.database.schema, orders: config.orders, wakeUp: config.database.wakeUp };
    const observed = await observeInstall(db, { target, url: config.database.url, idlePollMs: config.database.idlePollInterval });
    const problems = inScope('check', assess(observed.facts));
    for (const { item, codes, ok } of DATABASE_ITEMS) {
      const mine = problems.filter((p) => codes.includes(p.code));
      if (mine.length === 0) items.push({ item, ok: true, detail: ok(observed, config) });
      for (const p of mine) items.push({ item, ok: false, detail: p.line, code: p.code });
    }
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

/** One endpoint's lines; `default`'s are named plainly (tls, endpoint, send), another's with its name. */
async function checkEndpoint(name: string, hook: WebHookConfig, items: Item[], send: boolean): Promise<void> {
  const named = (item: string) => (name === 'default' ? item : `${item} ${name}`);
  if (!hook.endpoint) return;
  const where = redactUrl(endpointUrl(hook.endpoint, hook.key));
  let tls: ReturnType<typeof loadTls>;
  try {
    tls = loadTls(hook);
    const warnings = tls.warnings.length ? `; warning: ${tls.warnings.join('; ')}` : '';
    items.push({
      item: named('tls'),
      ok: true,
      detail: `${hook.endpoint.startsWith('https:') ? 'files loaded' : 'not used (http)'}${warnings}`,
    });
  } catch (error) {
    items.push({ item: named('tls'), ok: false, detail: (error as Error).message });
    return;
  }
  const sender = new Sender(hook, tls.options);
  try {
    const probe = await sender.probe();
    items.push({
      item: named('endpoint'),
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
        item: named('send'),
        ok: outcome.ok,
        detail: outcome.ok
          ? `test request answered ${outcome.httpStatus} in ${outcome.durationMs} ms${hook.secret ? ' (signed)' : ` (unsigned: no ${name === 'default' ? 'webHook' : name}.secret)`}`
          : `test request ${outcome.httpStatus ? `answered ${outcome.httpStatus}` : 'failed'}: ${outcome.error}`,
      });
    }
  } finally {
    sender.close();
  }
}
