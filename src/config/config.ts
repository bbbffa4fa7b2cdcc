// Loads and validates the one JSON config file. The config folder is the only one that reads process.env.
import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import { parseDuration } from './duration.ts';
import { literalSecrets, secret, withSecretsFrom } from './secrets.ts';
import { resolveTracing, telemetrySchema, type TracingConfig } from './telemetry.ts';
import { ConfigError } from '../errors.ts';
import { EVENT_TYPES } from '../events.ts';

/** The environment variables this service reads; `.env.example` lists the same. */
export const ENV = {
  configPath: 'ORDER_WEBHOOKS_CONFIG',
  databaseUrl: 'DATABASE_URL',
  logLevel: 'LOG_LEVEL',
  /** https://no-color.org: any non-empty value turns colour off in the command line's output. */
  noColor: 'NO_COLOR',
} as const;

/** `whsec_` then the base64 of the key bytes, as Standard Webhooks writes its secrets. */
export const WHSEC = /^whsec_(?=.)(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Whether colour may be used on a terminal (NO_COLOR not set). */
export function colorAllowed(env: NodeJS.ProcessEnv = process.env): boolean {
  return !env[ENV.noColor];
}

const DEFAULT_RETRY_DELAYS = ['PT5S', 'PT30S', 'PT2M', 'PT10M', 'PT30M', 'PT1H', 'PT3H', 'PT6H', 'PT12H'];

/** An ISO-8601 duration (`PT30S`), as milliseconds. */
const isoDuration = z.string().transform((text, ctx) => {
  try {
    return parseDuration(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

/** A duration with a default, given as text like the config's own. */
const duration = (fallback: string) => isoDuration.prefault(fallback);

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

// Per endpoint (src/delivery/breaker.ts); `false` turns it off. Defaults: docs/operations.md.
const circuitBreaker = z
  .union([
    z.literal(false),
    z.strictObject({
      failures: z.number().int().min(1).max(1_000_000).default(20),
      probeInterval: duration('PT10S'),
      maxProbeInterval: duration('PT5M'),
    }),
  ])
  .default(() => ({ failures: 20, probeInterval: parseDuration('PT10S'), maxProbeInterval: parseDuration('PT5M') }))
  .superRefine((breaker, ctx) => {
    if (breaker !== false && breaker.maxProbeInterval < breaker.probeInterval) {
      ctx.addIssue({ code: 'custom', path: ['maxProbeInterval'], message: 'expected at least probeInterval' });
    }
    if (breaker !== false && breaker.probeInterval < 100) {
      ctx.addIssue({ code: 'custom', path: ['probeInterval'], message: 'expected at least PT0.1S' });
    }
  });

// Every key of a receiver, as `webHook` takes them (the spec's) and each `webHooks` entry too.
const webHookShape = {
  // The spec's keys, names and defaults.
  enabled: z.boolean().default(false),
  endpoint: endpoint.optional(),
  key: secret().optional(),
  connectionTimeout: duration('PT30S'),
  secret: secret().optional(),
  useSslTrustAll: z.boolean().default(true),
  useSslClientCert: z.boolean().default(false),
  sslTrustFile: z.string().min(1).optional(),
  sslKeyFile: z.string().min(1).optional(),
  sslKeyPassword: secret(true).optional(),
  // Ours.
  signatureEncoding: z.enum(['hex', 'base64']).default('hex'),
  standardWebhooks: z
    .strictObject({
      secrets: z
        .array(
          secret().pipe(
            z.string().regex(WHSEC, 'expected "whsec_" followed by the base64 of the key, as Standard Webhooks secrets are written'),
          ),
        )
        .min(1, 'expected at least one "whsec_…" secret'),
    })
    .optional(),
  requestTimeout: duration('PT30S'),
  events: z.array(z.enum(EVENT_TYPES)).optional(),
  concurrency: z.number().int().min(1).max(1024).default(32),
  leaseTimeout: duration('PT1M'),
  retry: z
    .strictObject({
      delays: z.array(isoDuration).prefault(DEFAULT_RETRY_DELAYS),
    })
    .prefault({}),
  circuitBreaker,
};

function checkHook(
  hook: {
    enabled: boolean;
    endpoint?: string | undefined;
    leaseTimeout: number;
    requestTimeout: number;
    useSslClientCert: boolean;
    sslKeyFile?: string | undefined;
  },
  ctx: z.RefinementCtx,
): void {
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
}

const webHook = z.strictObject(webHookShape).superRefine(checkHook);

/** The name of the endpoint that `webHook` configures. */
export const DEFAULT_ENDPOINT = 'default';

// One entry of `webHooks`: every key of `webHook` plus a name; enabled unless it says otherwise.
const namedWebHook = z
  .strictObject({
    ...webHookShape,
    name: z
      .string()
      .regex(/^[a-z0-9-]{1,40}$/, 'expected 1 to 40 characters of a-z, 0-9 and -')
      .refine((name) => name !== DEFAULT_ENDPOINT, `expected another name: "${DEFAULT_ENDPOINT}" is the endpoint of webHook`),
    enabled: z.boolean().default(true),
    endpoint,
  })
  .superRefine(checkHook);

const webHooks = z.array(namedWebHook).superRefine((hooks, ctx) => {
  const seen = new Set<string>();
  for (const [n, hook] of hooks.entries()) {
    if (seen.has(hook.name))
      ctx.addIssue({ code: 'custom', path: [n, 'name'], message: `expected a unique name: "${hook.name}" is used twice` });
    seen.add(hook.name);
  }
});

/** How the trigger wakes an idle service (docs/security.md, "Two-phase commit"). */
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
