// `order-webhooks uninstall`: takes the capture trigger off the orders table (which is then exactly
// as it was before `migrate`); with --drop-schema also drops our schema and everything in it.
import type { Command } from 'commander';
import type pg from 'pg';
import { ALL_TRIGGERS, qualifiedOrdersTable, triggerName } from '../capture/render.ts';
import { describeDbError, ident } from '../db.ts';
import { outboxStatus } from '../outbox/status.ts';
import { schemaState } from '../outbox/installState.ts';
import { EXIT_FAILURE, fail, reporting } from './exit.ts';
import { type ConfigOption, readConfig, withConfigOption } from './options.ts';
import { confirm, connect, type JsonOption, printJson } from './output.ts';

interface UninstallOptions extends ConfigOption, JsonOption {
  dropSchema?: boolean;
  yes?: boolean;
}

const LOCK_TIMEOUT = '2s';
const LOCK_TRIES = 5;

export function uninstallCommand(program: Command): void {
  withConfigOption(program.command('uninstall'))
    .description('drop the capture trigger from the orders table; with --drop-schema also our schema and all its data')
    .option('--drop-schema', 'also drop our schema: the journal, every event and attempt')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--json', 'print JSON')
    .action(uninstall);
}

async function uninstall(options: UninstallOptions): Promise<void> {
  const config = readConfig(options.config);
  const schema = config.database.schema;
  const result = await reporting('uninstall', async () => {
    const db = await connect(config.database.url);
    try {
      // The table the trigger was installed on, which may differ from the config's if it changed since.
      const state = await schemaState(db, schema);
      let table = qualifiedOrdersTable({ schema, orders: config.orders });
      const capture = await db.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [`${ident(schema)}.capture`]);
      if (capture.rows[0]?.present) {
        const installed = await db.query<{ orders_table: string }>(`SELECT orders_table FROM ${ident(schema)}.capture`);
        table = installed.rows[0]?.orders_table ?? table;
      }
      const schemaExists = (await db.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount === 1;
      const goes = [`the capture triggers on ${table}: order changes made after this are not captured`];
      if (options.dropSchema && schemaExists) {
        const counts = state.current ? await outboxStatus(db, schema) : null;
        goes.push(
          counts
            ? `schema ${ident(schema)} and all its data: ${counts.journalBacklog} change(s) not yet mapped, ${counts.counts.pending} pending, ${counts.counts.delivered} delivered and ${counts.counts.failed} failed event(s) with their attempts`
            : `schema ${ident(schema)} and all its data`,
        );
      } else if (schemaExists) {
        goes.push(`(schema ${ident(schema)} stays, with its journal and outbox; --drop-schema removes it too)`);
      }
      process.stderr.write(`uninstall: this drops\n${goes.map((line) => `  - ${line}\n`).join('')}`);
      if (!(await confirm('Go ahead?', options.yes))) fail('uninstall: not confirmed; nothing changed', EXIT_FAILURE);
      await dropWithRetries(db, async () => {
        for (const kind of ALL_TRIGGERS) {
          // Only when the table is still there: a table dropped since took its triggers with it.
          await db.query(
            `DO $$ BEGIN
               IF to_regclass(${db.escapeLiteral(table)}) IS NOT NULL THEN
                 EXECUTE ${db.escapeLiteral(`DROP TRIGGER IF EXISTS ${ident(triggerName(schema, kind))} ON ${table}`)};
               END IF;
             END $$`,
          );
        }
        if (options.dropSchema) await db.query(`DROP SCHEMA IF EXISTS ${ident(schema)} CASCADE`);
        else if (capture.rows[0]?.present) {
          await db.query(`DELETE FROM ${ident(schema)}.capture`);
          await db.query(`DROP FUNCTION IF EXISTS ${ident(schema)}.capture_change(), ${ident(schema)}.capture_forget_move()`);
        }
      });
      return { table, droppedTrigger: true, droppedSchema: Boolean(options.dropSchema && schemaExists) };
    } finally {
      await db.end().catch(() => undefined);
    }
  });
  if (options.json) return printJson(result);
  process.stdout.write(
    `uninstall: capture trigger dropped from ${result.table}${result.droppedSchema ? `; schema ${ident(schema)} dropped` : ''}\n`,
  );
}

// DROP TRIGGER waits for the order app's transactions on the table: wait a little, give up, try again,
// rather than queue every order statement behind our lock request (as `migrate` does).
async function dropWithRetries(db: pg.Client, work: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await db.query(`BEGIN; SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
    try {
      await work();
      await db.query('COMMIT');
      return;
    } catch (error) {
      await db.query('ROLLBACK').catch(() => undefined);
      if ((error as pg.DatabaseError).code !== '55P03' || attempt >= LOCK_TRIES) {
        throw new Error(describeDbError(error));
      }
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
  }
}
