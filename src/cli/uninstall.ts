// `order-webhooks uninstall`: takes the capture trigger off the orders table (which is then exactly
// as it was before `migrate`); with --drop-schema also drops our schema and everything in it.
import type { Command } from 'commander';
import { dropCaptureTriggers, readInstalledCapture, withOrdersTableLock } from '../capture/install.ts';
import { qualifiedOrdersTable } from '../capture/render.ts';
import { databaseFailure, describeDbError, ident } from '../db.ts';
import { AppError, UninstallError } from '../errors.ts';
import { outboxStatus } from '../outbox/status.ts';
import { schemaState } from '../outbox/installState.ts';
import { EXIT_FAILURE, fail, reporting } from './exit.ts';
import { type ConfigOption, readConfig, withConfigOption } from './options.ts';
import { confirm, connect, type JsonOption, printJson } from './output.ts';

interface UninstallOptions extends ConfigOption, JsonOption {
  dropSchema?: boolean;
  yes?: boolean;
}

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
    const db = await connect(config.database);
    try {
      // The table the trigger was installed on, which may differ from the config's if it changed since.
      const state = await schemaState(db, schema);
      const installed = await readInstalledCapture(db, schema);
      const table = installed?.ordersTable ?? qualifiedOrdersTable({ schema, orders: config.orders });
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
      await withOrdersTableLock(db, table, 'dropping the capture trigger', async () => {
        for (const statement of dropCaptureTriggers(schema, table)) await db.query(statement);
        if (options.dropSchema) await db.query(`DROP SCHEMA IF EXISTS ${ident(schema)} CASCADE`);
        else if (schemaExists) {
          if (installed) await db.query(`DELETE FROM ${ident(schema)}.capture`);
          await db.query(`DROP FUNCTION IF EXISTS ${ident(schema)}.capture_change(), ${ident(schema)}.capture_forget_move()`);
        }
      }).catch((error) => {
        throw error instanceof AppError ? error : new UninstallError(describeDbError(error));
      });
      return { table, droppedTrigger: true, droppedSchema: Boolean(options.dropSchema && schemaExists) };
    } catch (error) {
      throw databaseFailure(error);
    } finally {
      await db.end().catch(() => undefined);
    }
  });
  if (options.json) return printJson(result);
  process.stdout.write(
    `uninstall: capture trigger dropped from ${result.table}${result.droppedSchema ? `; schema ${ident(schema)} dropped` : ''}\n`,
  );
}
