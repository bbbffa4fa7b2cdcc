// Loads and validates the one JSON config file: its sections (the receivers in receivers.ts), the
// environment's overrides, the warnings. The config folder is the only one that reads process.env.
import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import { duration, endpoint, identifier, isoDuration } from './fields.ts';
import { DEFAULT_ENDPOINT, transition, webHook, webHooks } from './receivers.ts';
import { literalSecrets, secret, withSecretsFrom } from './secrets.ts';
import { resolveTracing, telemetrySchema, type TracingConfig } from './telemetry.ts';
import { ConfigError } from '../errors.ts';

/** The environment variables this service reads; `.env.example` lists the same. */
export const ENV = {
  configPath: 'ORDER_WEBHOOKS_CONFIG',
  databaseUrl: 'DATABASE_URL',
  logLevel: 'LOG_LEVEL',
  /** https://no-color.org: any non-empty value turns colour off in the command line's output. */
  noColor: 'NO_COLOR',
} as const;

/** Whether colour may be used on a terminal (NO_COLOR not set). */
export function colorAllowed(env: NodeJS.ProcessEnv = process.env): boolean {
  return !env[ENV.noColor];
}

export const WAKE_UP_MODES = ['auto', 'notify', 'poll'] as const;

const database = z
  .strictObject({
    url: secret().optional(),
    schema: identifier.default('order_webhooks'),
    pollInterval: duration('PT2S'),
    // How often a running service checks that the capture triggers are still enabled.
    captureCheckInterval: duration('PT1M'),
    wakeUp: z.enum(WAKE_UP_MODES).default('auto'),
    idlePollInterval: duration('PT0.05S'),
    statementTimeout: duration('PT10S'),
    // How long `start` waits for a database that is not up yet (or restarting) before it gives up.
    startTimeout: duration('PT1M'),
  })
  .superRefine((db, ctx) => {
    if (db.idlePollInterval < 1) {
      ctx.addIssue({ code: 'custom', path: ['idlePollInterval'], message: 'expected at least 1 ms (PT0.001S)' });
    }
    // Every statement of ours is short; under a second it would cut off ordinary work on a busy server.
    if (db.statementTimeout < 1000) {
      ctx.addIssue({ code: 'custom', path: ['statementTimeout'], message: 'expected at least PT1S' });
    }
  });

// A duration or null (null: keep for ever).
const keepFor = (fallback: string | null) => isoDuration.nullable().prefault(fallback);

// The optional HTTP port for health checks and metrics: off unless configured.
const LOOPBACK_HOSTS = ['127.0.0.1', '::1', 'localhost'];
const http = z
  .strictObject({
    port: z.number().int().min(0).max(65535),
    host: z.string().min(1).default('127.0.0.1'),
    /** The operator's web page at `/` (src/http/ui.ts). */
    ui: z.boolean().default(false),
    /** Required by every page request when set; required when the page listens beyond loopback. */
    token: secret().optional(),
  })
  .superRefine((value, ctx) => {
    // The page can replay events: reachable from other hosts, it must not be open to anyone.
    if (value.ui && value.token === undefined && !LOOPBACK_HOSTS.includes(value.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['token'],
        message: `required when http.ui is true and http.host (${value.host}) is not 127.0.0.1, ::1 or localhost`,
      });
    }
  });

// Alerts to a person (src/alerts/): a POST of one JSON line per alert start, repeat and end.
const alerts = z
  .strictObject({
    endpoint,
    secret: secret().optional(),
    lagOver: duration('PT5M'),
    repeatEvery: duration('PT1H'),
    // Ours: how often the conditions are looked at.
    checkInterval: duration('PT15S'),
    connectionTimeout: duration('PT10S'),
    requestTimeout: duration('PT10S'),
    useSslTrustAll: z.boolean().default(true),
    useSslClientCert: z.boolean().default(false),
    sslTrustFile: z.string().min(1).optional(),
    sslKeyFile: z.string().min(1).optional(),
    sslKeyPassword: secret(true).optional(),
  })
  .superRefine((value, ctx) => {
    if (value.useSslClientCert && !value.sslKeyFile) {
      ctx.addIssue({
        code: 'custom',
        path: ['sslKeyFile'],
        message: 'expected a key file (the client identity) when useSslClientCert is true',
      });
    }
    if (value.checkInterval < 100) ctx.addIssue({ code: 'custom', path: ['checkInterval'], message: 'expected at least PT0.1S' });
  });

const retention = z.strictObject({
  /** Delivered events (and their attempts) older than this, by delivered_at, are deleted. */
  delivered: keepFor('P30D'),
  /** Failed events whose last attempt is older than this are deleted; null keeps them until replayed or purged. */
  failed: keepFor(null),
});

const configSchema = z.strictObject({
  webHook: webHook.default(() => webHook.parse({})),
  webHooks: webHooks.default([]),
  database: database.default(() => database.parse({})),
  orders: z
    .strictObject({
      schema: identifier.default('public'),
      table: identifier.default('orders'),
      idColumn: z.preprocess((column, ctx) => {
        if (!Array.isArray(column)) return column;
        ctx.addIssue({
          code: 'custom',
          message:
            'expected one column: a composite key is not supported, since a webhook carries one orderId string; add a generated column that joins the key columns (see docs/how-it-works.md, "Tables we capture") and name it here',
        });
        return z.NEVER;
      }, identifier.default('id')),
      stateColumn: identifier.default('state'),
      dueDateColumn: identifier.optional(),
      transitions: z.array(transition).min(1).optional(),
      // Whether changes made in sessions with session_replication_role = replica are captured too
      // (the triggers then fire ALWAYS); see docs/how-it-works.md.
      replicaSessions: z.enum(['skip', 'capture']).default('skip'),
    })
    .default(() => ({ schema: 'public', table: 'orders', idColumn: 'id', stateColumn: 'state', replicaSessions: 'skip' as const })),
  http: http.optional(),
  alerts: alerts.optional(),
  retention: retention.prefault({}),
  telemetry: telemetrySchema.optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Config = z.output<typeof configSchema> & {
  database: { url: string };
  /** One line each for the start-up log (a config file with secrets that others can read). */
  warnings: string[];
  /** Set when tracing is on (`telemetry.otlp` or the OpenTelemetry variables). */
  tracing?: TracingConfig;
};
export type WebHookConfig = Config['webHook'];

/** One receiver: `webHook` (named `default`) or an entry of `webHooks`. */
export interface EndpointConfig {
  name: string;
  hook: WebHookConfig;
}

/**
 * Every configured receiver, `default` first: `webHook` when it names an endpoint, then each entry
 * of `webHooks`. A change gives events only for these; events of any other name wait unsent.
 */
export function endpointsOf(config: Pick<Config, 'webHook' | 'webHooks'>): EndpointConfig[] {
  const list: EndpointConfig[] = [];
  if (config.webHook.endpoint) list.push({ name: DEFAULT_ENDPOINT, hook: config.webHook });
  for (const { name, ...hook } of config.webHooks) list.push({ name, hook });
  return list;
}

/** Whether any receiver is enabled: without one, `start` runs idle and the journal keeps every change. */
export function anyEndpointEnabled(config: Pick<Config, 'webHook' | 'webHooks'>): boolean {
  return endpointsOf(config).some((e) => e.hook.enabled);
}
export type OrdersConfig = Config['orders'];
export type HttpConfig = NonNullable<Config['http']>;
export type RetentionConfig = Config['retention'];
export type AlertsConfig = NonNullable<Config['alerts']>;
export type Transition = z.output<typeof transition>;

/** Where the config comes from: `--config`, else the path in ORDER_WEBHOOKS_CONFIG. */
export function configPathFrom(cliPath: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return cliPath ?? env[ENV.configPath] ?? undefined;
}

/** Whether the service is set up at all: a config file or DATABASE_URL. Without, `npm start` runs the demo. */
export function isServiceConfigured(cliPath: string | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  return configPathFrom(cliPath, env) !== undefined || Boolean(env[ENV.databaseUrl]);
}

/** Validates a config object; DATABASE_URL, LOG_LEVEL and the OpenTelemetry variables from env override the file. */
export function parseConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): Config {
  const result = withSecretsFrom(env, () => configSchema.safeParse(raw ?? {}));
  if (!result.success) throw new ConfigError(describeIssue(result.error.issues[0]!));
  const config = result.data;
  const url = env[ENV.databaseUrl] || config.database.url;
  if (!url) {
    throw new ConfigError(`database.url: expected a PostgreSQL connection URL (or set ${ENV.databaseUrl})`);
  }
  const level = env[ENV.logLevel];
  if (level) {
    const parsed = configSchema.shape.logLevel.safeParse(level);
    if (!parsed.success) throw new ConfigError(`${ENV.logLevel}: expected one of fatal, error, warn, info, debug, trace, silent`);
    config.logLevel = parsed.data;
  }
  const tracing = resolveTracing(config.telemetry?.otlp, env);
  return { ...config, database: { ...config.database, url }, warnings: [], ...(tracing ? { tracing } : {}) };
}

/** Reads and validates the config file at `path` (or an empty config when there is none). */
export function loadConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): Config {
  if (!path) return parseConfig({}, env);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  const config = parseConfig(raw, env);
  const literal = literalSecrets(raw);
  // Only the bits for group and others: the owner (the service's user) must read it anyway.
  const mode = statSync(path).mode & 0o777;
  if (literal.length && mode & 0o044) {
    config.warnings.push(
      `config file ${path} holds secrets (${literal.join(', ')}) and is readable by group or others (mode ${mode.toString(8).padStart(3, '0')}): ` +
        `run chmod 600 ${path}, or give them as {"env": …} or {"file": …}`,
    );
  }
  return config;
}

// One line naming the key path and what was expected; never the value (it may be a secret).
function describeIssue(issue: z.core.$ZodIssue): string {
  // webHooks[1].endpoint: an array index in brackets, as a person writes it.
  const path = issue.path.map((part, n) => (typeof part === 'number' ? `[${part}]` : `${n > 0 ? '.' : ''}${String(part)}`)).join('');
  if (issue.code === 'unrecognized_keys') {
    // A key of any shape is shown quoted, so that the message stays one line.
    const keys = issue.keys.map((key) => (/^[\w$-]+$/.test(key) ? key : JSON.stringify(key))).map((key) => (path ? `${path}.${key}` : key));
    return `${keys.join(', ')}: unknown key${keys.length > 1 ? 's' : ''}`;
  }
  let message = issue.message;
  if (issue.code === 'invalid_type') message = `expected ${issue.expected}`;
  if (issue.code === 'invalid_value') message = `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  return `${path || '(top level)'}: ${message}`;
}

export { DEFAULT_ENDPOINT, WHSEC } from './receivers.ts';
