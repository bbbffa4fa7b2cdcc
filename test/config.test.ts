import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../src/config/config.ts';
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
    assert.equal(config.webHook.retry.delays.length, 9);
    assert.deepEqual(config.orders, { schema: 'public', table: 'orders', idColumn: 'id', stateColumn: 'state' });
    assert.equal(config.database.schema, 'order_webhooks');
    assert.equal(config.database.wakeUp, 'auto');
    assert.equal(config.database.idlePollInterval, 50);
    assert.equal(config.database.statementTimeout, 10_000);
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
    ['unknown event type', { database: db, webHook: { events: ['OrderShipped'] } }, /^webHook\.events\.0: expected one of "OrderCreated"/],
    ['bad transition', { database: db, orders: { transitions: [{ to: 'x' }] } }, /^orders\.transitions\.0\.event: expected one of/],
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
      'lease too short',
      { database: db, webHook: { leaseTimeout: 'PT40S' } },
      /^webHook\.leaseTimeout: expected at least twice webHook\.requestTimeout \(30000 ms\)/,
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
});
