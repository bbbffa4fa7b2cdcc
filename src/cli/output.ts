// What the operator commands share: a database connection, tables and JSON on stdout, progress
// and questions on stderr, colour only on a terminal and never with NO_COLOR, and parsing of times.
import { createInterface } from 'node:readline/promises';
import { styleText } from 'node:util';
import cliProgress from 'cli-progress';
import Table from 'cli-table3';
import { DateTime } from 'luxon';
import type pg from 'pg';
import { colorAllowed } from '../config/config.ts';
import { parseDuration } from '../config/duration.ts';
import { databaseFailure, openClient } from '../db.ts';
import { schemaState } from '../outbox/installState.ts';

/** Seconds as a short readable age: 45s, 12m 5s, 3h 2m, 2d 4h (the health model words lag with it too). */
export { formatAge } from '../health/model.ts';
import { EXIT_USAGE, fail, reporting } from './exit.ts';
import type { Config } from '../config/config.ts';

export interface JsonOption {
  json?: boolean;
}

const color = () => Boolean(process.stdout.isTTY) && colorAllowed();

type Style = 'green' | 'red' | 'yellow' | 'bold' | 'dim';
export function paint(style: Style, text: string): string {
  return color() ? styleText(style, text) : text;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printTable(head: string[], rows: (string | number | null | undefined)[][]): void {
  const table = new Table({
    head,
    style: color() ? { head: ['cyan'], border: ['grey'], compact: true } : { head: [], border: [], compact: true },
    wordWrap: true,
  });
  for (const row of rows) table.push(row.map((cell) => (cell === null || cell === undefined ? '' : String(cell))));
  process.stdout.write(`${table.toString()}\n`);
}

/** A two-column table of names and values. */
export function printPairs(pairs: [string, string | number][]): void {
  const table = new Table({
    style: color() ? { head: [], border: ['grey'], compact: true } : { head: [], border: [], compact: true },
    wordWrap: true,
  });
  for (const [name, value] of pairs) table.push({ [name]: String(value) });
  process.stdout.write(`${table.toString()}\n`);
}

/**
 * One connection for a command, named so that `status` does not count it as a service instance;
 * bounded like the service's (connect timeout, keepalive, database.statementTimeout), so that a
 * command against a host that does not answer fails in one line rather than hangs.
 */
export function connect(database: Pick<Config['database'], 'url' | 'statementTimeout'>): Promise<pg.Client> {
  return openClient(database.url, { name: 'order-webhooks cli', statementTimeoutMs: database.statementTimeout });
}

/** `--since`, `--until`, `--before`: an ISO-8601 time (`2026-12-01T10:00Z`, `2026-12-01`), or a duration ago (`PT1H`, `P7D`). */
export function parseTime(option: string, text: string, now = Date.now()): Date {
  if (/^P/i.test(text)) {
    try {
      return new Date(now - parseDuration(text.toUpperCase()));
    } catch (error) {
      fail(`${option}: ${(error as Error).message}`, EXIT_USAGE);
    }
  }
  const time = DateTime.fromISO(text);
  if (!time.isValid)
    fail(`${option}: "${text}" is not an ISO-8601 time (e.g. 2026-12-01T10:00:00Z) or duration ago (e.g. PT1H)`, EXIT_USAGE);
  return time.toJSDate();
}

export function formatTime(time: Date | null | undefined): string {
  return time ? time.toISOString().replace(/\.\d{3}Z$/, 'Z') : '';
}

/**
 * Asks before something that cannot be undone. `--yes` answers for the operator; without a terminal
 * to ask on, the command refuses (exit 2) rather than guess.
 */
export async function confirm(question: string, yes: boolean | undefined): Promise<boolean> {
  if (yes) return true;
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    fail('refusing without confirmation: no terminal to ask on; add --yes to go ahead', EXIT_USAGE);
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/**
 * A progress bar on stderr, only when stderr is a terminal and the work is larger than `threshold`;
 * otherwise it does nothing. `format` may use cli-progress's tokens and `{done}` (replayed, deleted).
 */
export function progressBar(format: string, threshold: number) {
  let bar: cliProgress.SingleBar | undefined;
  return {
    start(total: number) {
      if (!process.stderr.isTTY || total <= threshold) return;
      bar = new cliProgress.SingleBar({ stream: process.stderr, format, hideCursor: true }, cliProgress.Presets.shades_classic);
      bar.start(total, 0, { done: 0 });
    },
    step(value: number, done: number) {
      bar?.update(value, { done });
    },
    stop() {
      bar?.stop();
    },
  };
}

/** Our schema must be current for the views to be there. */
export async function withCurrentSchema<T>(what: string, config: Config, work: (db: pg.Client) => Promise<T>): Promise<T> {
  return reporting(what, async () => {
    const db = await connect(config.database);
    try {
      const state = await schemaState(db, config.database.schema);
      if (!state.current) {
        fail(
          `${what}: schema ${config.database.schema} is at version ${state.version ?? 'none'}, this release needs ${state.latest}: run \`order-webhooks migrate\``,
          EXIT_USAGE,
        );
      }
      return await work(db);
    } catch (error) {
      throw databaseFailure(error);
    } finally {
      await db.end().catch(() => undefined);
    }
  });
}
