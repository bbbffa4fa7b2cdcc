// Each test file gets its own database on the server the run uses, and drops it at the end.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The server tests use: TEST_DATABASE_URL, else the local one on 127.0.0.1:5432 (or `base`, another server). */
export function serverUrl(
  database = 'postgres',
  base = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
): string {
  const url = new URL(base);
  url.pathname = `/${database}`;
  return url.toString();
}

export interface TestDatabase {
  name: string;
  url: string;
  /** A pool for the test's own queries, playing the order app. */
  pool: pg.Pool;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]>;
  drop(): Promise<void>;
}

/** `server`: the URL of another server than the run's (one started with other settings). */
export async function createTestDatabase(label: string, server?: string): Promise<TestDatabase> {
  const name = `ow_test_${label.replace(/\W/g, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const serverUrl = (database?: string) => serverUrlOf(database, server);
  const admin = new pg.Client({ connectionString: serverUrl() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  const url = serverUrl(name);
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  pool.on('error', () => undefined); // tests kill connections on purpose
  return {
    name,
    url,
    pool,
    async query(sql, params) {
      return (await pool.query(sql, params)).rows;
    },
    async drop() {
      await pool.end();
      const client = new pg.Client({ connectionString: serverUrl() });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** The order app's usual table: uuid ids, a text state, a date due date. */
function serverUrlOf(database: string | undefined, server: string | undefined): string {
  return server === undefined ? serverUrl(database) : serverUrl(database, server);
}

export async function createOrdersTable(db: TestDatabase, table = 'orders'): Promise<void> {
  await db.query(`CREATE TABLE ${pg.escapeIdentifier(table)} (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    state text NOT NULL DEFAULT 'created',
    due_date date,
    note text)`);
}

/** Inserts one order as the order app would, returning its id. */
export async function insertOrder(db: TestDatabase, state = 'created'): Promise<string> {
  const rows = await db.query<{ id: string }>('INSERT INTO orders (state) VALUES ($1) RETURNING id', [state]);
  return rows[0]!.id;
}

/** The application names of the service's open connections to this database. */
export async function serviceConnections(db: TestDatabase): Promise<string[]> {
  const rows = await db.query<{ name: string }>(
    "SELECT application_name AS name FROM pg_stat_activity WHERE application_name LIKE 'order-webhooks%' AND datname = current_database() ORDER BY 1",
  );
  return rows.map((r) => r.name);
}
