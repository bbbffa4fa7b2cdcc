import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { endpointsOf, loadConfig, parseConfig } from '../src/config/config.ts';
import { ConfigError } from '../src/errors.ts';
import { run, writeConfig } from './helpers/cli.ts';

const db = { url: 'postgres://app:DbPassw0rd@127.0.0.1:1/none' };

describe('config', () => {
  it('fills in the spec’s defaults', () => {
    const config = parseConfig({ database: db }, {});
    assert.equal(config.webHook.enabled, false);
    assert.equal(config.webHook.connectionTimeout, 30_000);
    assert.equal(config.webHook.requestTimeout, 30_000);
    assert.equal(config.webHook.useSslTrustAll, true);
    assert.equal(config.webHook.useSslClientCert, false);
    assert.equal(config.webHook.concurrency, 32);
    // A receiver back after an outage is found within a minute (docs/performance.md, W5).
    assert.deepEqual(config.webHook.circuitBreaker, { failures: 20, probeInterval: 10_000, maxProbeInterval: 60_000 });
    assert.deepEqual(parseConfig({ database: db, webHook: { circuitBreaker: {} } }, {}).webHook.circuitBreaker, {
      failures: 20,
      probeInterval: 10_000,
      maxProbeInterval: 60_000,
    });
    assert.equal(config.webHook.retry.delays.length, 9);
    assert.deepEqual(config.orders, { schema: 'public', table: 'orders', idColumn: 'id', stateColumn: 'state', replicaSessions: 'skip' });
    assert.equal(config.database.schema, 'order_webhooks');
    assert.equal(config.database.captureCheckInterval, 60_000);
    // Given an orders section, its defaults are filled in all the same.
    assert.equal(parseConfig({ database: { ...db, pollInterval: 'PT1S' }, orders: { table: 't' } }, {}).orders.replicaSessions, 'skip');
    assert.equal(parseConfig({ database: { ...db, pollInterval: 'PT1S' } }, {}).database.captureCheckInterval, 60_000);
    assert.equal(config.database.wakeUp, 'auto');
    assert.equal(config.database.idlePollInterval, 50);
    assert.equal(config.database.statementTimeout, 10_000);
    assert.equal(config.database.startTimeout, 60_000);
    assert.deepEqual(config.retention, { delivered: 30 * 86_400_000, failed: null });
    assert.deepEqual(config.webHook.retry.delays.slice(0, 3), [5000, 30_000, 120_000]);
  });

  it('reads every duration the one way: ISO-8601 text to milliseconds, null where a key allows it', () => {
    const config = parseConfig(
      {
        database: { ...db, startTimeout: 'PT5S' },
        webHook: { retry: { delays: ['PT1S', 'PT1M'] } },
        retention: { delivered: null, failed: 'P1D' },
      },
      {},
    );
    assert.equal(config.database.startTimeout, 5000);
    assert.deepEqual(config.webHook.retry.delays, [1000, 60_000]);
    assert.deepEqual(config.retention, { delivered: null, failed: 86_400_000 });
  });

  it('takes DATABASE_URL over the file', () => {
    assert.equal(parseConfig({ database: db }, { DATABASE_URL: 'postgres://other' }).database.url, 'postgres://other');
    assert.equal(parseConfig({}, { DATABASE_URL: 'postgres://other' }).database.url, 'postgres://other');
  });

  const errors: [string, unknown, RegExp][] = [
    ['unknown key', { database: db, webHook: { enabeld: true } }, /^webHook\.enabeld: unknown key$/],
    ['wrong type', { database: db, webHook: { enabled: 'yes' } }, /^webHook\.enabled: expected boolean$/],
    [
      'bad duration',
      { database: db, webHook: { connectionTimeout: '60s' } },
      /^webHook\.connectionTimeout: "60s" is not an ISO-8601 duration/,
    ],
    ['bad start timeout', { database: { ...db, startTimeout: '1m' } }, /^database\.startTimeout: "1m" is not an ISO-8601 duration/],
    ['bad retry delay', { database: db, webHook: { retry: { delays: ['PT1S', 'soon'] } } }, /^webHook\.retry\.delays\[1\]: "soon" is not/],
    ['bad retention', { database: db, retention: { failed: 'forever' } }, /^retention\.failed: "forever" is not/],
    ['trailing junk in a duration', { database: db, webHook: { requestTimeout: 'PT5Sabc' } }, /^webHook\.requestTimeout: "PT5Sabc" is not/],
    [
      'missing endpoint',
      { database: db, webHook: { enabled: true } },
      /^webHook\.endpoint: expected an endpoint URL when enabled is true$/,
    ],
    [
      'endpoint not http',
      { database: db, webHook: { enabled: true, endpoint: 'ftp://x/y' } },
      /^webHook\.endpoint: expected an absolute http/,
    ],
    [
      'unknown event type',
      { database: db, webHook: { events: ['OrderShipped'] } },
      /^webHook\.events\[0\]: expected one of "OrderCreated"/,
    ],
    ['bad transition', { database: db, orders: { transitions: [{ to: 'x' }] } }, /^orders\.transitions\[0\]\.event: expected one of/],
    ['no database url', {}, /^database\.url: expected a PostgreSQL connection URL \(or set DATABASE_URL\)$/],
    ['unknown section', { database: db, webhook: {} }, /^webhook: unknown key$/],
    ['unknown wake-up', { database: { ...db, wakeUp: 'listen' } }, /^database\.wakeUp: expected one of "auto", "notify", "poll"$/],
    ['idle poll of zero', { database: { ...db, idlePollInterval: 'PT0S' } }, /^database\.idlePollInterval: expected at least 1 ms/],
    [
      'statement timeout too short',
      { database: { ...db, statementTimeout: 'PT0.5S' } },
      /^database\.statementTimeout: expected at least PT1S$/,
    ],
    [
      'a secret from an unset variable',
      { database: db, webHook: { secret: { env: 'ORDER_WEBHOOKS_TEST_UNSET' } } },
      /^webHook\.secret: environment variable ORDER_WEBHOOKS_TEST_UNSET is not set$/,
    ],
    [
      'a database URL from a missing file',
      { database: { url: { file: '/nonexistent/database-url' } } },
      /^database\.url: cannot read \/nonexistent\/database-url \(ENOENT\)$/,
    ],
    [
      'a Standard Webhooks secret without whsec_',
      { database: db, webHook: { standardWebhooks: { secrets: ['c2VjcmV0'] } } },
      /^webHook\.standardWebhooks\.secrets\[0\]: expected "whsec_" followed by the base64 of the key/,
    ],
    [
      'an unknown signature encoding',
      { database: db, webHook: { signatureEncoding: 'HEX' } },
      /^webHook\.signatureEncoding: expected one of "hex", "base64"$/,
    ],
    [
      'lease too short',
      { database: db, webHook: { leaseTimeout: 'PT40S' } },
      /^webHook\.leaseTimeout: expected at least twice webHook\.requestTimeout \(30000 ms\)/,
    ],
    [
      'a webHooks entry without an endpoint',
      { database: db, webHooks: [{ name: 'a', endpoint: 'http://127.0.0.1:1/a' }, { name: 'b' }] },
      /^webHooks\[1\]\.endpoint: expected string/,
    ],
    [
      'a webHooks entry with a bad endpoint',
      {
        database: db,
        webHooks: [
          { name: 'a', endpoint: 'http://127.0.0.1:1/a' },
          { name: 'b', endpoint: 'ftp://x' },
        ],
      },
      /^webHooks\[1\]\.endpoint: expected an absolute http:\/\/ or https:\/\/ URL$/,
    ],
    [
      'a webHooks entry without a name',
      { database: db, webHooks: [{ endpoint: 'http://127.0.0.1:1/a' }] },
      /^webHooks\[0\]\.name: expected string/,
    ],
    [
      'a webHooks name with capitals',
      { database: db, webHooks: [{ name: 'Billing', endpoint: 'http://127.0.0.1:1/a' }] },
      /^webHooks\[0\]\.name: expected 1 to 40 characters of a-z, 0-9 and -$/,
    ],
    [
      'a webHooks name of 41 characters',
      { database: db, webHooks: [{ name: 'a'.repeat(41), endpoint: 'http://127.0.0.1:1/a' }] },
      /^webHooks\[0\]\.name: expected 1 to 40 characters/,
    ],
    [
      'a webHooks entry named default',
      { database: db, webHooks: [{ name: 'default', endpoint: 'http://127.0.0.1:1/a' }] },
      /^webHooks\[0\]\.name: expected another name: "default" is the endpoint of webHook$/,
    ],
    [
      'two webHooks entries of one name',
      {
        database: db,
        webHooks: [
          { name: 'crm', endpoint: 'http://127.0.0.1:1/a' },
          { name: 'crm', endpoint: 'http://127.0.0.1:1/b' },
        ],
      },
      /^webHooks\[1\]\.name: expected a unique name: "crm" is used twice$/,
    ],
    [
      'a webHooks entry with an unknown key',
      { database: db, webHooks: [{ name: 'crm', endpoint: 'http://127.0.0.1:1/a', url: 'x' }] },
      /^webHooks\[0\]\.url: unknown key$/,
    ],
    [
      'a webHooks entry with a short lease',
      { database: db, webHooks: [{ name: 'crm', endpoint: 'http://127.0.0.1:1/a', leaseTimeout: 'PT40S' }] },
      /^webHooks\[0\]\.leaseTimeout: expected at least twice/,
    ],
  ];
  for (const [name, raw, message] of errors) {
    it(`rejects ${name} with one line naming the key`, () => {
      assert.throws(
        () => parseConfig(raw, {}),
        (error: Error) => error instanceof ConfigError && message.test(error.message),
      );
    });
  }

  it('webHooks: every key of webHook plus a name, enabled by default; webHook is the endpoint default, listed first', () => {
    const config = parseConfig(
      {
        database: db,
        webHook: { enabled: true, endpoint: 'https://sign.example/automation', key: 'k', secret: 'sign-secret' },
        webHooks: [
          {
            name: 'billing',
            enabled: true,
            endpoint: 'https://billing.example/hooks',
            secret: { env: 'BILLING_SECRET' },
            events: ['OrderSigned', 'OrderCanceled'],
            concurrency: 8,
          },
          {
            name: 'audit',
            endpoint: 'https://audit.example/in',
            standardWebhooks: { secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'] },
          },
        ],
      },
      { BILLING_SECRET: 'billing-secret' },
    );
    const endpoints = endpointsOf(config);
    assert.deepEqual(
      endpoints.map((e) => [e.name, e.hook.enabled, e.hook.endpoint, e.hook.concurrency, e.hook.secret ?? null, e.hook.events ?? null]),
      [
        ['default', true, 'https://sign.example/automation', 32, 'sign-secret', null],
        ['billing', true, 'https://billing.example/hooks', 8, 'billing-secret', ['OrderSigned', 'OrderCanceled']],
        ['audit', true, 'https://audit.example/in', 32, null, null],
      ],
    );
    assert.equal(endpoints[2]!.hook.requestTimeout, 30_000, 'the defaults of webHook');
    // Either form may stand alone.
    assert.deepEqual(
      endpointsOf(parseConfig({ database: db, webHooks: [{ name: 'crm', endpoint: 'http://127.0.0.1:1/a' }] }, {})).map((e) => e.name),
      ['crm'],
    );
    assert.deepEqual(
      endpointsOf(parseConfig({ database: db, webHook: { enabled: true, endpoint: 'http://127.0.0.1:1/a' } }, {})).map((e) => e.name),
      ['default'],
    );
  });

  it('exits 2 with one line for every config error, from the command line', async () => {
    for (const [name, raw, message] of errors) {
      const result = await run(['start', '--config', writeConfig(raw)]);
      assert.equal(result.code, 2, name);
      const line = result.stderr.trim();
      assert.equal(line.split('\n').length, 1, `${name}: ${line}`);
      assert.match(line.replace(/^order-webhooks: config error: /, ''), message, name);
    }
  });

  it('exits 2 for a missing or malformed file, and reads the path from ORDER_WEBHOOKS_CONFIG', async () => {
    const missing = await run(['migrate', '--config', '/nonexistent/config.json']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read config file \/nonexistent\/config\.json: ENOENT/);
    const malformed = await run(['migrate'], { ORDER_WEBHOOKS_CONFIG: writeConfig('{"webHook": {enabled: true}}') });
    assert.equal(malformed.code, 2);
    assert.match(malformed.stderr, /is not valid JSON/);
  });

  it('never prints secrets', async () => {
    const raw = {
      database: db,
      webHook: {
        enabled: true,
        endpoint: 'http://127.0.0.1:1/x',
        key: 'UrlKeyValue',
        secret: 'HmacSecretValue',
        sslKeyPassword: 'KeyPassValue',
        connectionTimeout: 'bad',
      },
    };
    const result = await run(['start', '--config', writeConfig(raw)]);
    assert.equal(result.code, 2);
    const printed = result.stdout + result.stderr;
    for (const secret of ['UrlKeyValue', 'HmacSecretValue', 'KeyPassValue', 'DbPassw0rd']) assert.ok(!printed.includes(secret), secret);
  });

  describe('secrets from the environment or a file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'order-webhooks-secrets-'));
    const file = (name: string, text: string) => {
      const path = join(dir, name);
      writeFileSync(path, text, { mode: 0o600 });
      return path;
    };

    it('reads secret, key, sslKeyPassword, standardWebhooks secrets and database.url from either', () => {
      const config = parseConfig(
        {
          database: { url: { file: file('db', 'postgres://svc:DbPass@h/d\n') } },
          webHook: {
            secret: { env: 'HOOK_SECRET' },
            key: { file: file('key', 'UrlKey\r\n') },
            sslKeyPassword: { env: 'KEY_PASS' },
            standardWebhooks: { secrets: [{ file: file('whsec', 'whsec_AAAA\n') }, 'whsec_BBBB', { env: 'WHSEC' }] },
          },
        },
        { HOOK_SECRET: 'HmacSecret', KEY_PASS: '', WHSEC: 'whsec_CCCC' },
      );
      assert.equal(config.database.url, 'postgres://svc:DbPass@h/d', 'one trailing newline dropped');
      assert.equal(config.webHook.secret, 'HmacSecret');
      assert.equal(config.webHook.key, 'UrlKey');
      assert.equal(config.webHook.sslKeyPassword, '', 'an empty key password is a password');
      assert.deepEqual(config.webHook.standardWebhooks?.secrets, ['whsec_AAAA', 'whsec_BBBB', 'whsec_CCCC']);
      assert.equal(parseConfig({ database: db, webHook: { secret: { file: file('two', 'a\n\n') } } }, {}).webHook.secret, 'a\n');
    });

    it('a missing variable or unreadable file is one line naming the key, never a value', () => {
      const cases: [unknown, RegExp][] = [
        [{ database: db, webHook: { secret: { env: 'NOT_SET' } } }, /^webHook\.secret: environment variable NOT_SET is not set$/],
        [{ database: db, webHook: { key: { file: join(dir, 'none') } } }, /^webHook\.key: cannot read \/.*\/none \(ENOENT\)$/],
        [{ database: db, webHook: { sslKeyPassword: { file: dir } } }, /^webHook\.sslKeyPassword: cannot read .* \(EISDIR\)$/],
        [{ database: { url: { env: 'NO_DB' } } }, /^database\.url: environment variable NO_DB is not set$/],
        [{ database: db, webHook: { secret: { env: 'EMPTY' } } }, /^webHook\.secret: expected a non-empty value$/],
        [
          { database: db, webHook: { standardWebhooks: { secrets: [{ env: 'BAD_WHSEC' }] } } },
          /^webHook\.standardWebhooks\.secrets\[0\]: expected "whsec_" followed by the base64 of the key/,
        ],
        [
          { database: db, webHook: { secret: { env: 'A', file: 'b' } } },
          /^webHook\.secret: expected a string, \{"env": "VARIABLE"\} or \{"file": "\/path"\}$/,
        ],
      ];
      for (const [raw, message] of cases) {
        assert.throws(
          () => parseConfig(raw, { EMPTY: '', BAD_WHSEC: 'TopSecretNotWhsec' }),
          (error: Error) => error instanceof ConfigError && message.test(error.message) && !error.message.includes('TopSecret'),
        );
      }
    });

    it('warns once, naming the file and chmod 600, when a file with a literal secret is readable by others', () => {
      const withSecret = writeConfig({ database: db, webHook: { secret: 'HmacSecretValue' } });
      chmodSync(withSecret, 0o644);
      const [warning, ...more] = loadConfig(withSecret, {}).warnings;
      assert.equal(more.length, 0);
      assert.equal(
        warning,
        `config file ${withSecret} holds secrets (webHook.secret, database.url) and is readable by group or others (mode 644): run chmod 600 ${withSecret}, or give them as {"env": …} or {"file": …}`,
      );
      assert.ok(!warning!.includes('HmacSecretValue') && !warning!.includes('DbPassw0rd'));
      chmodSync(withSecret, 0o600);
      assert.deepEqual(loadConfig(withSecret, {}).warnings, []);
      // Secrets taken from elsewhere: nothing to protect in the file.
      const referenced = writeConfig({ database: { url: { env: 'DB' } }, webHook: { secret: { env: 'S' }, key: { file: '/dev/null' } } });
      chmodSync(referenced, 0o644);
      assert.throws(() => loadConfig(referenced, { DB: 'postgres://h/d', S: 's' }), /webHook\.key: expected a non-empty value/);
      const noPassword = writeConfig({ database: { url: 'postgres://svc@h/d' }, webHook: { secret: { env: 'S' } } });
      chmodSync(noPassword, 0o644);
      assert.deepEqual(loadConfig(noPassword, { S: 's' }).warnings, []);
    });
  });
});
