// Property-based: for every config key, wrong types and values end in one line naming the key
// (a ConfigError; exit code 2 from the command line), never a stack trace.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseConfig } from '../src/config/config.ts';
import { ConfigError } from '../src/errors.ts';
import { parseDuration } from '../src/config/duration.ts';
import { EVENT_TYPES } from '../src/events.ts';
import { run, writeConfig } from './helpers/cli.ts';

const base = () => ({ database: { url: 'postgres://svc@127.0.0.1:1/none' } }) as Record<string, any>;

function withValue(path: string, value: unknown): Record<string, any> {
  const config = base();
  const keys = path.split('.');
  let node = config;
  for (const key of keys.slice(0, -1)) node = node[key] ??= {};
  node[keys.at(-1)!] = value;
  return config;
}

const json = fc.jsonValue();
const notA = (type: 'string' | 'boolean' | 'number' | 'array' | 'object') =>
  json.filter((v) =>
    type === 'array' ? !Array.isArray(v) : type === 'object' ? v === null || typeof v !== 'object' || Array.isArray(v) : typeof v !== type,
  );
const notDuration = fc.oneof(
  notA('string'),
  fc.string().filter((text) => {
    try {
      parseDuration(text);
      return false;
    } catch {
      return true;
    }
  }),
);
const notIdentifier = fc.oneof(notA('string'), fc.constant(''), fc.string({ minLength: 64, maxLength: 100 }), fc.constant('a\0b'));
const notIn = (values: readonly string[]) =>
  fc.oneof(
    notA('string'),
    fc.string().filter((s) => !values.includes(s)),
  );
const notUrl = fc.oneof(
  notA('string'),
  fc.string().filter((s) => !/^https?:\/\/[^/]/i.test(s)),
  fc.constantFrom('ftp://x/y', 'file:///etc/passwd', 'mailto:a@b', '//host/x', 'http//x'),
);
const notSecret = fc.oneof(
  json.filter((v) => typeof v !== 'string' && (v === null || typeof v !== 'object' || Array.isArray(v))),
  fc.constant(''),
  fc.constantFrom(
    { env: 'ORDER_WEBHOOKS_TEST_UNSET' },
    { file: '/nonexistent/secret' },
    { env: '' },
    { file: 7 },
    { env: 'A', file: 'B' },
    {},
  ),
  fc.record({ env: notA('string') }),
);
const notWhsec = fc.oneof(
  notA('array'),
  fc.constant([]),
  fc.array(
    fc.oneof(
      notA('string'),
      fc.string().filter((s) => !s.startsWith('whsec_')),
    ),
    { minLength: 1, maxLength: 3 },
  ),
  fc.constant(['whsec_not base64!']),
);
const notConcurrency = fc.oneof(
  notA('number'),
  fc.integer({ max: 0 }),
  fc.integer({ min: 1025 }),
  fc.double({ noNaN: true }).filter((n) => !Number.isInteger(n)),
);

/** Every key, with values that are wrong for it. */
const KEYS: [string, fc.Arbitrary<unknown>][] = [
  ['webHook', notA('object')],
  ['webHook.enabled', notA('boolean')],
  ['webHook.endpoint', notUrl],
  ['webHook.key', notSecret],
  ['webHook.connectionTimeout', notDuration],
  ['webHook.secret', notSecret],
  ['webHook.useSslTrustAll', notA('boolean')],
  ['webHook.useSslClientCert', notA('boolean')],
  ['webHook.sslTrustFile', fc.oneof(notA('string'), fc.constant(''))],
  ['webHook.sslKeyFile', fc.oneof(notA('string'), fc.constant(''))],
  ['webHook.sslKeyPassword', notSecret.filter((v) => v !== '')],
  ['webHook.signatureEncoding', notIn(['hex', 'base64'])],
  ['webHook.standardWebhooks', notA('object')],
  ['webHook.standardWebhooks.secrets', notWhsec],
  ['webHook.requestTimeout', notDuration],
  ['webHook.events', fc.oneof(notA('array'), fc.array(notIn(EVENT_TYPES), { minLength: 1, maxLength: 3 }))],
  ['webHook.concurrency', notConcurrency],
  [
    'webHook.leaseTimeout',
    fc.oneof(
      notDuration,
      fc.integer({ min: 0, max: 59 }).map((s) => `PT${s}S`),
    ),
  ],
  ['webHook.retry', notA('object')],
  ['webHook.retry.delays', fc.oneof(notA('array'), fc.array(notDuration, { minLength: 1, maxLength: 3 }))],
  ['database', notA('object')],
  ['database.url', notSecret],
  ['database.schema', notIdentifier],
  ['database.pollInterval', notDuration],
  ['database.startTimeout', notDuration],
  ['orders', notA('object')],
  ['orders.schema', notIdentifier],
  ['orders.table', notIdentifier],
  ['orders.idColumn', notIdentifier],
  ['orders.stateColumn', notIdentifier],
  ['orders.dueDateColumn', notIdentifier],
  [
    'orders.transitions',
    fc.oneof(
      notA('array'),
      fc.constant([]),
      fc.array(
        fc.oneof(
          notA('object'),
          fc.record({ to: notA('string') }),
          fc.record({ to: fc.string({ minLength: 1 }), event: notIn(EVENT_TYPES) }),
        ),
        {
          minLength: 1,
          maxLength: 3,
        },
      ),
    ),
  ],
  ['telemetry', notA('object')],
  ['telemetry.otlp', notA('object')],
  ['telemetry.otlp.endpoint', notUrl],
  ['telemetry.otlp.protocol', notIn(['http/protobuf', 'http/json'])],
  ['telemetry.otlp.headers', notA('object')],
  ['telemetry.otlp.headers.authorization', notSecret],
  ['telemetry.otlp.serviceName', fc.oneof(notA('string'), fc.constant(''))],
  ['logLevel', notIn(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])],
];

/** The one error parseConfig must give: a ConfigError, one line, starting with the key path. */
function errorFor(raw: unknown): ConfigError {
  try {
    parseConfig(raw, {});
  } catch (error) {
    assert.ok(error instanceof ConfigError, `not a ConfigError: ${(error as Error).stack}`);
    return error;
  }
  assert.fail(`accepted ${JSON.stringify(raw)}`);
}

describe('bad config', () => {
  for (const [path, wrong] of KEYS) {
    it(`${path}: a wrong type or value is one line naming the key`, () => {
      fc.assert(
        fc.property(wrong, (value) => {
          const error = errorFor(withValue(path, value));
          assert.ok(error.message.startsWith(`${path}`), `${JSON.stringify(value)} gave: ${error.message}`);
          assert.ok(!error.message.includes('\n'), error.message);
        }),
        { numRuns: 150 },
      );
    });
  }

  it('any JSON value at any key is accepted or one line, never another error', () => {
    fc.assert(
      fc.property(fc.constantFrom(...KEYS.map(([path]) => path)), fc.jsonValue(), (path, value) => {
        let config: unknown;
        try {
          config = parseConfig(withValue(path, value), {});
        } catch (error) {
          assert.ok(error instanceof ConfigError, `${path} = ${JSON.stringify(value)}: ${(error as Error).stack}`);
          assert.ok(!error.message.includes('\n'), error.message);
          assert.ok(error.message.startsWith(path.split('.')[0]!), error.message);
        }
        return config === undefined || typeof config === 'object';
      }),
      { numRuns: 2000 },
    );
  });

  it('a config that is not an object is one line', () => {
    for (const raw of [[], 'text', 42, true]) assert.match(errorFor(raw).message, /^\(top level\): expected object$/);
  });

  it('the command line exits 2 with one line naming the key, no stack trace', async () => {
    // A few cases through the real bin (each run starts a process); the properties above cover the rest.
    const picks = fc.sample(
      fc.constantFrom(...KEYS).chain(([path, wrong]) => wrong.map((value) => [path, value] as const)),
      { numRuns: 8, seed: 16 },
    );
    for (const [path, value] of picks) {
      const result = await run(['start', '--config', writeConfig(withValue(path, value))]);
      const what = `${path} = ${JSON.stringify(value)}: ${result.stderr}`;
      assert.equal(result.code, 2, what);
      assert.equal(result.stdout, '', what);
      assert.equal(result.stderr.split('\n').length, 2, what);
      assert.ok(result.stderr.startsWith(`order-webhooks: config error: ${path}`), what);
      assert.doesNotMatch(result.stderr, /\n\s+at /, what);
    }
  });
});
