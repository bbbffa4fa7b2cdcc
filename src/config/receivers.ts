// The receivers: `webHook`, the spec's section (the endpoint `default`), and `webHooks`, named
// endpoints that take every `webHook` key; with their retries and circuit breaker.
import { z } from 'zod';
import { parseDuration } from './duration.ts';
import { duration, endpoint, isoDuration } from './fields.ts';
import { secret } from './secrets.ts';
import { EVENT_TYPES } from '../events.ts';

/** `whsec_` then the base64 of the key bytes, as Standard Webhooks writes its secrets. */
export const WHSEC = /^whsec_(?=.)(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const DEFAULT_RETRY_DELAYS = ['PT5S', 'PT30S', 'PT2M', 'PT10M', 'PT30M', 'PT1H', 'PT3H', 'PT6H', 'PT12H'];

const stateList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

export const transition = z.strictObject({
  from: stateList.optional(),
  to: stateList,
  event: z.enum(EVENT_TYPES),
});

// Per endpoint (src/delivery/breaker.ts); `false` turns it off. Defaults: docs/operations.md.
const circuitBreaker = z
  .union([
    z.literal(false),
    z.strictObject({
      failures: z.number().int().min(1).max(1_000_000).default(20),
      probeInterval: duration('PT10S'),
      maxProbeInterval: duration('PT1M'),
    }),
  ])
  .default(() => ({ failures: 20, probeInterval: parseDuration('PT10S'), maxProbeInterval: parseDuration('PT1M') }))
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

export const webHook = z.strictObject(webHookShape).superRefine(checkHook);

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

export const webHooks = z.array(namedWebHook).superRefine((hooks, ctx) => {
  const seen = new Set<string>();
  for (const [n, hook] of hooks.entries()) {
    if (seen.has(hook.name))
      ctx.addIssue({ code: 'custom', path: [n, 'name'], message: `expected a unique name: "${hook.name}" is used twice` });
    seen.add(hook.name);
  }
});

/** How the trigger wakes an idle service (docs/security.md, "Two-phase commit"). */
