// `migrate --dry-run` prints what `migrate` runs: the same statements, and applied by psql they
// make the same schema, trigger and rows as `migrate` does.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe } from 'node:test';
import { run, writeConfig } from './helpers/cli.ts';
import { createOrdersTable, createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { itNeeding, toolPath } from './helpers/tools.ts';
import { listMigrations, migrate, planScript } from '../src/schema/migrate.ts';
import { parseConfig } from '../src/config/config.ts';
import { createLogger } from '../src/log.ts';

const SCHEMA = 'order_webhooks';
const it = itNeeding('psql');

/** Applies a script as a DBA would: psql, stopping at the first error. */
function psql(url: string, script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      toolPath('psql') ?? 'psql',
      ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-f', '-'],
      (error, _stdout, stderr) => (error ? reject(new Error(`psql failed: ${error.message}\n${stderr}`)) : resolve()),
    );
    child.stdin!.end(script);
  });
}

/** Everything of ours in a database, as the catalogs show it, with the rows that say what is installed. */
async function installed(db: TestDatabase): Promise<unknown> {
  const [catalog] = await db.query<{ catalog: unknown }>(
    `WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = $1)
     SELECT json_build_object(
       'relations', (SELECT json_agg(json_build_object(
           'name', c.relname, 'kind', c.relkind, 'options', c.reloptions, 'acl', c.relacl,
           'comment', obj_description(c.oid, 'pg_class'),
           'definition', CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) WHEN c.relkind = 'i' THEN pg_get_indexdef(c.oid) END,
           'columns', (SELECT json_agg(json_build_object(
               'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'notnull', a.attnotnull,
               'identity', a.attidentity, 'default', pg_get_expr(d.adbin, d.adrelid)) ORDER BY a.attnum)
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)) ORDER BY c.relname)
         FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns)),
       'constraints', (SELECT json_agg(conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) ORDER BY 1)
         FROM pg_constraint WHERE connamespace = (SELECT oid FROM ns)),
       'functions', (SELECT json_agg(pg_get_functiondef(p.oid) ORDER BY p.proname, pg_get_function_identity_arguments(p.oid))
         FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM ns) AND p.prokind IN ('f', 'p')),
       'triggers', (SELECT json_agg(pg_get_triggerdef(t.oid) || ' enabled ' || t.tgenabled::text ORDER BY 1)
         FROM pg_trigger t WHERE NOT t.tgisinternal)) AS catalog`,
    [SCHEMA],
  );
  const tables = await db.query<{ name: string }>(
    "SELECT relname AS name FROM pg_class WHERE relnamespace = $1::regnamespace AND relkind IN ('r', 'p') ORDER BY 1",
    [SCHEMA],
  );
  const rows: Record<string, number> = {};
  for (const { name } of tables) {
    rows[name] = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${SCHEMA}.${name}`))[0]!.n;
  }
  return {
    catalog: catalog!.catalog,
    rows,
    migrations: await db.query(`SELECT version, name FROM ${SCHEMA}.migration ORDER BY version`),
    capture: await db.query(`SELECT orders_table, definition FROM ${SCHEMA}.capture`),
  };
}

describe('migrate --dry-run', () => {
  let migrated: TestDatabase;
  let fromScript: TestDatabase;
  const log = createLogger('silent');
  const configFor = (db: TestDatabase, orders: object) => ({ database: { url: db.url }, orders: { dueDateColumn: 'due_date', ...orders } });
  /** `migrate --dry-run` on `migrated`, then `migrate` itself there: what each says it runs. */
  const dryRunThenMigrate = async (orders: object) => {
    const dry = await run(['migrate', '--dry-run', '--config', writeConfig(configFor(migrated, orders))]);
    assert.equal(dry.code, 0, dry.stderr);
    const config = parseConfig(configFor(migrated, orders), {});
    const target = { schema: config.database.schema, orders: config.orders, wakeUp: config.database.wakeUp };
    const result = await migrate(migrated.url, target, log, config.database.idlePollInterval);
    return { printed: dry.stdout, ran: result.statements, stderr: dry.stderr };
  };

  before(async () => {
    [migrated, fromScript] = await Promise.all([createTestDatabase('dry_run_migrated'), createTestDatabase('dry_run_script')]);
    await Promise.all([createOrdersTable(migrated), createOrdersTable(fromScript)]);
  });
  after(async () => {
    await Promise.all([migrated?.drop(), fromScript?.drop()]);
  });

  it('on a fresh database prints what migrate then runs, which psql applies to the same result', async () => {
    const { printed, ran } = await dryRunThenMigrate({});
    assert.equal(printed, planScript(ran));
    // All of it, the bookkeeping included, in one transaction.
    assert.match(printed, /^BEGIN;\n/);
    assert.match(printed, /\nCOMMIT;\n$/);
    assert.match(printed, new RegExp(`\\nCREATE SCHEMA "${SCHEMA}";\\n`));
    assert.match(printed, new RegExp(`\\nCREATE TABLE "${SCHEMA}"\\.migration \\(`));
    for (const m of listMigrations(SCHEMA)) {
      assert.ok(printed.includes(`INSERT INTO "${SCHEMA}".migration (version, name) VALUES (${m.version}, '${m.name}');`), m.name);
    }
    assert.match(
      printed,
      new RegExp(`\\nINSERT INTO "${SCHEMA}"\\.capture \\(orders_table, definition\\) VALUES \\('"public"\\."orders"'`),
    );

    await psql(fromScript.url, printed);
    assert.deepEqual(await installed(fromScript), await installed(migrated));
  });

  it('once migrated, prints nothing; after a change of config, only the trigger, as migrate runs it', async () => {
    const upToDate = await dryRunThenMigrate({});
    assert.deepEqual([upToDate.printed, upToDate.ran], ['', []]);
    assert.match(upToDate.stderr, /nothing to run/);

    const changed = await dryRunThenMigrate({ replicaSessions: 'capture' });
    assert.equal(changed.printed, planScript(changed.ran));
    assert.match(changed.printed, /ENABLE ALWAYS TRIGGER/);
    assert.doesNotMatch(changed.printed, /INSERT INTO "order_webhooks"\.migration/);
    await psql(fromScript.url, changed.printed);
    const both = await Promise.all([installed(fromScript), installed(migrated)]);
    assert.deepEqual(both[0], both[1]);
  });
});
