// Whether the configured orders table is one we can capture: its kind (no view, partition, foreign
// table or inheritance parent) and its columns' types. Reads the catalog only.
import type pg from 'pg';
import { ident } from '../db.ts';
import { CaptureError } from '../errors.ts';
import { type CaptureTarget, qualifiedNameSql as QUALIFIED, qualifiedOrdersTable } from './render.ts';

interface TableInfo {
  oid: number;
  kind: string;
  partition_of: string | null;
  inheritance_child: string | null;
  foreign_partition: string | null;
}

interface ColumnInfo {
  name: string;
  /** As declared (a domain's own name). */
  type: string;
  /** Whether the declared type is a domain. */
  domain: boolean;
  /** After following domains down to their base type. */
  base: string;
  base_name: string;
  base_kind: string;
  category: string;
}

const RELATION_KINDS: Record<string, string> = {
  v: 'a view',
  m: 'a materialized view',
  f: 'a foreign table',
  S: 'a sequence',
  i: 'an index',
  I: 'an index',
  c: 'a composite type',
  t: 'a TOAST table',
};
const INTEGER_TYPES = new Set(['int2', 'int4', 'int8']);
const DATE_TYPES = new Set(['date', 'timestamp', 'timestamptz']);

/**
 * Checks that the orders table is one we can capture and its columns have usable types; otherwise
 * a CaptureError naming the config key and why. Reads the catalog only.
 */
export async function checkOrdersTable(db: pg.ClientBase | pg.Pool, target: CaptureTarget): Promise<void> {
  const { orders } = target;
  const table = qualifiedOrdersTable(target);
  const found = await db.query<TableInfo>(
    `SELECT c.oid, c.relkind AS kind,
            (SELECT ${QUALIFIED('i.inhparent')} FROM pg_inherits i WHERE i.inhrelid = c.oid AND c.relispartition LIMIT 1) AS partition_of,
            (SELECT ${QUALIFIED('i.inhrelid')} FROM pg_inherits i WHERE i.inhparent = c.oid AND c.relkind = 'r' LIMIT 1) AS inheritance_child,
            (SELECT ${QUALIFIED('t.relid')} FROM pg_partition_tree(c.oid) t JOIN pg_class p ON p.oid = t.relid
              WHERE c.relkind = 'p' AND p.relkind = 'f' LIMIT 1) AS foreign_partition
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [orders.schema, orders.table],
  );
  const info = found.rows[0];
  if (!info) throw new CaptureError(`orders.table: table ${table} does not exist (check orders.schema and orders.table)`);
  if (info.kind === 'v' || info.kind === 'm') {
    throw new CaptureError(`orders.table: ${table} is ${RELATION_KINDS[info.kind]}; name the table the order app writes to`);
  }
  if (info.kind === 'f') {
    throw new CaptureError(
      `orders.table: ${table} is a foreign table; changes made on its own server never run triggers here: install order-webhooks in the database that holds the table`,
    );
  }
  if (info.kind !== 'r' && info.kind !== 'p') {
    throw new CaptureError(`orders.table: ${table} is ${RELATION_KINDS[info.kind] ?? 'not a table'}; name the orders table`);
  }
  if (info.partition_of) {
    throw new CaptureError(
      `orders.table: ${table} is a partition of ${info.partition_of}; name the partitioned table, so that orders moving between partitions are captured`,
    );
  }
  if (info.inheritance_child) {
    throw new CaptureError(
      `orders.table: ${table} has inheritance children (${info.inheritance_child}); rows written to a child never run the parent's triggers: use declarative partitioning (PARTITION BY) or a table without children`,
    );
  }
  if (info.foreign_partition) {
    throw new CaptureError(
      `orders.table: partition ${info.foreign_partition} of ${table} is a foreign table; changes made on its own server never run triggers here`,
    );
  }
  // Each column's type, domains followed down to their base type.
  const { rows } = await db.query<ColumnInfo>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            a.atttypid <> b.oid AS domain, format_type(b.oid, NULL) AS base, b.typname AS base_name,
            b.typtype AS base_kind, b.typcategory AS category
       FROM pg_attribute a
       CROSS JOIN LATERAL (
         WITH RECURSIVE chain (oid, depth) AS (
           SELECT a.atttypid, 0
           UNION ALL
           SELECT t.typbasetype, chain.depth + 1 FROM chain JOIN pg_type t ON t.oid = chain.oid WHERE t.typtype = 'd')
         SELECT oid FROM chain ORDER BY depth DESC LIMIT 1) resolved
       JOIN pg_type b ON b.oid = resolved.oid
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped`,
    [info.oid],
  );
  const column = (
    key: 'idColumn' | 'stateColumn' | 'dueDateColumn',
    name: string,
    expected: string,
    usable: (c: ColumnInfo) => boolean,
  ) => {
    const found = rows.find((row) => row.name === name);
    if (!found) throw new CaptureError(`orders.${key}: column ${ident(name)} not found in ${table}`);
    if (!usable(found)) {
      const shown = found.domain ? `${found.type} (a domain over ${found.base})` : found.type;
      throw new CaptureError(`orders.${key}: column ${ident(name)} is ${shown}; expected ${expected}`);
    }
  };
  const text = (c: ColumnInfo) => c.category === 'S';
  const integer = (c: ColumnInfo) => INTEGER_TYPES.has(c.base_name);
  column('idColumn', orders.idColumn, 'an integer, uuid or text type', (c) => text(c) || integer(c) || c.base_name === 'uuid');
  column(
    'stateColumn',
    orders.stateColumn,
    'text, varchar, an enum type or an integer code',
    (c) => text(c) || integer(c) || c.base_kind === 'e',
  );
  if (orders.dueDateColumn !== undefined) {
    column('dueDateColumn', orders.dueDateColumn, 'date or timestamp (with or without time zone)', (c) => DATE_TYPES.has(c.base_name));
  }
}
