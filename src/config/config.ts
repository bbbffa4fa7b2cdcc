// Loads and validates the one JSON config file. The only module that reads process.env.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseDuration } from './duration.ts';
import { ConfigError } from '../errors.ts';
import { EVENT_TYPES } from '../events.ts';

/** The environment variables this service reads; `.env.example` lists the same. */
export const ENV = {
  configPath: 'ORDER_WEBHOOKS_CONFIG',
  databaseUrl: 'DATABASE_URL',
  logLevel: 'LOG_LEVEL',
} as const;

const DEFAULT_RETRY_DELAYS = ['PT5S', 'PT30S', 'PT2M', 'PT10M', 'PT30M', 'PT1H', 'PT3H', 'PT6H', 'PT12H'];

const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((text, ctx) => {
      try {
        return parseDuration(text);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    });

// Identifiers from config are always quoted by us, so any name PostgreSQL accepts is fine.
const identifier = z
  .string()
  .min(1, 'expected a non-empty name')
  .max(63, 'expected a name of at most 63 characters (PostgreSQL truncates longer ones)')
  .refine((name) => !name.includes('\0'), 'expected a name without NUL characters');

const stateList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

const transition = z.strictObject({
  from: stateList.optional(),
  to: stateList,
  event: z.enum(EVENT_TYPES),
});

const endpoint = z.string().refine((text) => {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}, 'expected an absolute http:// or https:// URL');

const webHook = z
  .strictObject({
    // The spec's keys, names and defaults.
    enabled: z.boolean().default(false),
    endpoint: endpoint.optional(),
    key: z.string().min(1).optional(),
    connectionTimeout: duration('PT30S'),
    secret: z.string().min(1).optional(),
    useSslTrustAll: z.boolean().default(true),
    useSslClientCert: z.boolean().default(false),
    sslTrustFile: z.string().min(1).optional(),
    sslKeyFile: z.string().min(1).optional(),
    sslKeyPassword: z.string().optional(),
    // Ours.
    requestTimeout: duration('PT30S'),
    events: z.array(z.enum(EVENT_TYPES)).optional(),
    concurrency: z.number().int().min(1).max(1024).default(32),
    leaseTimeout: duration('PT1M'),
    retry: z
      .strictObject({
        delays: z
          .array(
            z.string().transform((text, ctx) => {
              try {
                return parseDuration(text);
              } catch (error) {
                ctx.addIssue({ code: 'custom', message: (error as Error).message });
                return z.NEVER;
              }
            }),
          )
          .default(DEFAULT_RETRY_DELAYS.map(parseDuration) as never),
      })
      .default({ delays: DEFAULT_RETRY_DELAYS.map(parseDuration) }),
  })
  .superRefine((hook, ctx) => {
    if (hook.enabled && !hook.endpoint) {
      ctx.addIssue({ code: 'custom', path: ['endpoint'], message: 'expected an endpoint URL when enabled is true' });
    }
    // An event is sent within half its lease of the claim (else it is given back unsent), and the
    // request ends within requestTimeout: so the lease cannot run out while a request is under way,
    // which would let another instance send the event again.
    if (hook.leaseTimeout < 2 * hook.requestTimeout) {
      ctx.addIssue({
        code: 'custom',
        path: ['leaseTimeout'],
        message: `expected at least twice webHook.requestTimeout (${hook.requestTimeout} ms), so that a lease never ends while its request runs`,
      });
    }
    if (hook.useSslClientCert && !hook.sslKeyFile) {
      ctx.addIssue({
        code: 'custom',
        path: ['sslKeyFile'],
        message: 'expected a key file (the client identity) when useSslClientCert is true',
      });
    }
  });

// A duration or null (null: keep for ever).
const keepFor = (fallback: string | null) =>
  z
    .string()
    .nullable()
    .default(fallback)
    .transform((text, ctx) => {
      if (text === null) return null;
      try {
        return parseDuration(text);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    });

// The optional HTTP port for health checks and metrics: off unless configured.
const http = z.strictObject({
  port: z.number().int().min(0).max(65535),
  host: z.string().min(1).default('127.0.0.1'),
});

const retention = z.strictObject({
  /** Delivered events (and their attempts) older than this, by delivered_at, are deleted. */
  delivered: keepFor('P30D'),
  /** Failed events whose last attempt is older than this are deleted; null keeps them until replayed or purged. */
  failed: keepFor(null),
});

const configSchema = z.strictObject({
  webHook: webHook.default(() => webHook.parse({})),
  database: z
    .strictObject({
      url: z.string().min(1).optional(),
      schema: identifier.default('order_webhooks'),
      pollInterval: duration('PT2S'),
    })
    .default(() => ({ schema: 'order_webhooks', pollInterval: 2000 })),
  orders: z
    .strictObject({
      schema: identifier.default('public'),
      table: identifier.default('orders'),
      idColumn: identifier.default('id'),
      stateColumn: identifier.default('state'),
      dueDateColumn: identifier.optional(),
      transitions: z.array(transition).min(1).optional(),
    })
    .default(() => ({ schema: 'public', table: 'orders', idColumn: 'id', stateColumn: 'state' })),
  http: http.optional(),
  retention: retention.default(() => ({ delivered: parseDuration('P30D'), failed: null })),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Config = z.output<typeof configSchema> & { database: { url: string } };
export type WebHookConfig = Config['webHook'];
export type OrdersConfig = Config['orders'];
export type HttpConfig = NonNullable<Config['http']>;
export type RetentionConfig = Config['retention'];
export type Transition = z.output<typeof transition>;

/** Where the config comes from: `--config`, else the path in ORDER_WEBHOOKS_CONFIG. */
export function configPathFrom(cliPath: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return cliPath ?? env[ENV.configPath] ?? undefined;
}

/** Whether the service is set up at all: a config file or DATABASE_URL. Without, `npm start` runs the demo. */
export function isServiceConfigured(cliPath: string | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  return configPathFrom(cliPath, env) !== undefined || Boolean(env[ENV.databaseUrl]);
}

/** Validates a config object; DATABASE_URL and LOG_LEVEL from env override the file. */
export function parseConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): Config {
  const result = configSchema.safeParse(raw ?? {});
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
  return { ...config, database: { ...config.database, url } };
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
  return parseConfig(raw, env);
}

// One line naming the key path and what was expected; never the value (it may be a secret).
function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((key) => (path ? `${path}.${key}` : key));
    return `${keys.join(', ')}: unknown key${keys.length > 1 ? 's' : ''}`;
  }
  let message = issue.message;
  if (issue.code === 'invalid_type') message = `expected ${issue.expected}`;
  if (issue.code === 'invalid_value') message = `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  return `${path || '(top level)'}: ${message}`;
}
