import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { run, type ServiceProcess, startService, writeConfig } from './helpers/cli.ts';
import { createTestDatabase, serverUrl, type TestDatabase } from './helpers/db.ts';
import { checkDeliveries, ORDER_LIFE, playOrders } from './helpers/orders.ts';
import { waitFor } from './helpers/poll.ts';
import { type Receiver, startReceiver } from './helpers/receiver.ts';

interface Role {
  name: string;
  password: string;
  url: string;
}

// Three roles as docs/security.md sets them up: the owner of our schema runs migrate, the service
// role runs start, and the order app's role owns its own schema and has nothing on ours.
describe('least privilege', () => {
  let db: TestDatabase;
  let receiver: Receiver;
  let service: ServiceProcess | undefined;
  const tag = randomBytes(4).toString('hex');
  // Roles are cluster-wide: unique names, dropped after the database that holds their objects.
  const role = (kind: string): Role => {
    const name = `ow_test_${tag}_${kind}`;
    const password = randomBytes(12).toString('hex');
    const url = new URL(db.url);
    url.username = name;
    url.password = password;
    return { name, password, url: url.toString() };
  };
  let owner: Role;
  let serviceRole: Role;
  let app: Role;
  let appPool: pg.Pool;
  const config = (who: Role, orders: object = { schema: 'shop', dueDateColumn: 'due_date' }) =>
    writeConfig({
      webHook: { enabled: true, endpoint: receiver.url, retry: { delays: ['PT0.5S'] } },
      database: { url: who.url, pollInterval: 'PT0.5S' },
      orders,
      logLevel: 'info',
    });
  const as = async (who: Role, sql: string) => {
    const client = new pg.Client({ connectionString: who.url });
    await client.connect();
    try {
      return (await client.query(sql)).rows;
    } finally {
      await client.end();
    }
  };

  before(async () => {
    db = await createTestDatabase('privileges');
    receiver = await startReceiver();
    owner = role('owner');
    serviceRole = role('service');
    app = role('app');
    for (const r of [owner, serviceRole, app]) {
      await db.query(`CREATE ROLE ${pg.escapeIdentifier(r.name)} LOGIN PASSWORD ${pg.escapeLiteral(r.password)}`);
    }
    // The order app's own schema and table, as it has them.
    await db.query(`CREATE SCHEMA shop AUTHORIZATION ${pg.escapeIdentifier(app.name)}`);
    await as(
      app,
      "CREATE TABLE shop.orders (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), state text NOT NULL DEFAULT 'created', due_date date)",
    );
    // The DBA's part of the script in docs/security.md.
    await db.query(`CREATE SCHEMA order_webhooks AUTHORIZATION ${pg.escapeIdentifier(owner.name)}`);
    await as(app, `GRANT USAGE ON SCHEMA shop TO ${pg.escapeIdentifier(owner.name)}`);
    await as(app, `GRANT TRIGGER ON shop.orders TO ${pg.escapeIdentifier(owner.name)}`);
    appPool = new pg.Pool({ connectionString: app.url, options: '-c search_path=shop', max: 4 });
    appPool.on('error', () => undefined);
  });
  after(async () => {
    await service?.kill();
    await appPool?.end();
    await receiver?.close();
    await db?.drop();
    const admin = new pg.Client({ connectionString: serverUrl() });
    await admin.connect();
    try {
      for (const r of [owner, serviceRole, app]) if (r) await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(r.name)}`);
    } finally {
      await admin.end();
    }
  });

  it('migrate as the owner, start as the service role, order app writes as a role with nothing on our schema: all delivered', async () => {
    const migrated = await run(['migrate', '--config', config(owner)]);
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, /capture trigger installed/);

    // The service role's grants are exactly what --print-grants prints, run by the owner.
    const grants = await run(['migrate', '--print-grants', serviceRole.name, '--config', config(owner)]);
    assert.equal(grants.code, 0, grants.stderr);
    assert.match(grants.stdout, new RegExp(`^GRANT USAGE ON SCHEMA "order_webhooks" TO "${serviceRole.name}";$`, 'm'));
    await as(owner, grants.stdout);

    const [privileges] = await db.query<Record<string, boolean>>(
      `SELECT has_schema_privilege($1, 'order_webhooks', 'USAGE') AS app_on_ours,
              has_table_privilege($1, 'order_webhooks.change', 'INSERT') AS app_on_journal,
              has_schema_privilege($2, 'shop', 'USAGE') AS service_on_shop,
              has_table_privilege($2, 'shop.orders', 'SELECT') AS service_on_orders,
              (SELECT rolsuper OR rolcreatedb OR rolcreaterole FROM pg_roles WHERE rolname = $2) AS service_special`,
      [app.name, serviceRole.name],
    );
    assert.deepEqual(privileges, {
      app_on_ours: false,
      app_on_journal: false,
      service_on_shop: false,
      service_on_orders: false,
      service_special: false,
    });

    // Granted what start needs: check passes where start is about to.
    const checked = await run(['check', '--config', config(serviceRole)]);
    assert.equal(checked.code, 0, checked.stdout);
    assert.match(checked.stdout, new RegExp(`^ok\\s+privileges\\s+the role ${serviceRole.name} has what`, 'm'));

    service = await startService(config(serviceRole), {}, true);
    const viaApp: TestDatabase = { ...db, query: async (sql, params) => (await appPool.query(sql, params)).rows };
    const ids = await playOrders(viaApp, 6, 3);
    const events = ids.length * ORDER_LIFE.length;
    await receiver.waitForCount(events, 60_000);
    await waitFor(async () => (await db.query("SELECT 1 FROM order_webhooks.outbox WHERE status = 'delivered'")).length === events, {
      what: `${events} events delivered`,
      timeoutMs: 30_000,
    });
    const check = await checkDeliveries(db, receiver.requests, ids);
    assert.equal(check.events, events);
    // An operator's reads with the service's URL: status and outbox list read the views.
    const status = await run(['status', '--config', config(serviceRole)]);
    assert.equal(status.code, 0, status.stderr + status.stdout);
    const list = await run(['outbox', 'list', '--config', config(serviceRole)]);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stdout.trim().split('\n').length > 1, true, list.stdout);
    assert.doesNotMatch(service.output(), /permission denied|"level":50/);
    assert.equal((await service.stop()).code, 0);
    service = undefined;
  });

  it('migrate as the owner re-installs the trigger for a changed config with only the TRIGGER privilege', async () => {
    const again = await run(['migrate', '--config', config(owner, { schema: 'shop' })]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /schema up to date; capture trigger installed/);
  });

  it('start as a role that lacks a grant: one line naming it, exit 2; check fails with the same line', async () => {
    await as(owner, `REVOKE DELETE ON order_webhooks.change FROM ${pg.escapeIdentifier(serviceRole.name)}`);
    const configPath = config(serviceRole, { schema: 'shop' });
    const result = await run(['start', '--config', configPath]);
    assert.equal(result.code, 2, result.stderr);
    const line = `the role "${serviceRole.name}" lacks DELETE on order_webhooks.change: have the owner of schema "order_webhooks" run what \`order-webhooks migrate --print-grants ${serviceRole.name}\` prints`;
    assert.equal(result.stderr, `order-webhooks: start: ${line}\n`);
    const checked = await run(['check', '--config', configPath]);
    assert.equal(checked.code, 1, checked.stdout);
    // One failed item, and its line is start's.
    const failed = checked.stdout.split('\n').filter((l) => l.startsWith('failed'));
    assert.deepEqual(
      failed.map((l) => l.split(/\s{2,}/)),
      [['failed', 'privileges', line]],
    );
    const json = JSON.parse((await run(['check', '--json', '--config', configPath])).stdout);
    assert.deepEqual(
      json.items.filter((i: { ok: boolean }) => !i.ok),
      [{ item: 'privileges', ok: false, detail: line, code: 'privileges_missing' }],
    );
  });
});
