// Signatures as receivers check them, and secrets that never show: not in logs, command output,
// or the outbox, even when a receiver echoes them back or a start fails.
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pg from 'pg';
import { Webhook } from 'standardwebhooks';
import { verifySignature } from '../src/delivery/sign.ts';
import { run, startService, writeConfig } from './helpers/cli.ts';
import { createOrdersTable, createTestDatabase, serverUrl } from './helpers/db.ts';
import { makePki, PASSWORD } from './helpers/pki.ts';
import { waitFor } from './helpers/poll.ts';
import { outbox, stacksClosedAfter } from './helpers/stack.ts';

describe('signatures, end to end', () => {
  const stack = stacksClosedAfter();

  it('base64 X-Signature and Standard Webhooks with two secrets verify with the standardwebhooks package, on every attempt', async () => {
    const current = `whsec_${randomBytes(24).toString('base64')}`;
    const next = `whsec_${randomBytes(32).toString('base64')}`;
    const s = await stack('sw_sigs', {
      webHook: {
        secret: 'HeaderSecret',
        signatureEncoding: 'base64',
        standardWebhooks: { secrets: [current, next] },
        retry: { delays: ['PT0.2S'] },
      },
    });
    let first = true;
    s.receiver.respond = (_req, res) => {
      res.statusCode = first ? 500 : 200;
      first = false;
      res.end();
    };
    await s.db.query("INSERT INTO orders (state) VALUES ('created')");
    const requests = await s.receiver.waitForCount(2);
    await waitFor(async () => (await outbox(s.db))[0]?.status === 'delivered', { what: 'delivered on the retry' });
    for (const request of requests) {
      const headers = request.headers as Record<string, string>;
      const independent = createHmac('sha256', 'HeaderSecret').update(request.body).digest('base64');
      assert.equal(headers['x-signature'], independent);
      assert.ok(verifySignature('HeaderSecret', request.body, headers['x-signature'], 'base64'));
      assert.equal(headers['webhook-id'], headers['x-event-id'], 'webhook-id is the event id');
      assert.ok(Math.abs(Number(headers['webhook-timestamp']) - request.at / 1000) < 5, 'webhook-timestamp is now, in seconds');
      assert.equal(headers['webhook-signature']!.split(' ').length, 2, 'one signature per secret');
      for (const secret of [current, next]) assert.deepEqual(new Webhook(secret).verify(request.body, headers), JSON.parse(request.body));
    }
    assert.equal(requests[0]!.headers['webhook-id'], requests[1]!.headers['webhook-id'], 'the same id on a retry, so receivers can dedupe');
    assert.match(s.service!.output(), /"signed":true,"standardWebhookSecrets":2/);
  });
});

describe('secrets never show', () => {
  it('a full scenario (TLS client key, URL key, secrets, a DB role with a password, failures) prints and records none of them', async () => {
    const tag = randomBytes(4).toString('hex');
    const SECRET = `HmacSecret-${tag}`;
    const KEY = `UrlKey-${tag}`;
    const DB_PASSWORD = `DbPass-${tag}`;
    const WHSEC = `whsec_${randomBytes(24).toString('base64')}`;
    const WRONG_KEY_PASSWORD = `WrongKeyPass-${tag}`;
    const role = `ow_secret_${tag}`;
    const dir = mkdtempSync(join(tmpdir(), 'order-webhooks-secret-'));
    const pki = makePki();
    const db = await createTestDatabase('secrets');
    const outputs: string[] = [];
    let closeReceiver = async () => {};
    let service: Awaited<ReturnType<typeof startService>> | undefined;
    try {
      await createOrdersTable(db);
      // The service's own role, with a password; the database and orders table are its to migrate.
      await db.query(`CREATE ROLE ${role} LOGIN PASSWORD '${DB_PASSWORD}'`);
      await db.query(`ALTER DATABASE ${pg.escapeIdentifier(db.name)} OWNER TO ${role}`);
      await db.query(`ALTER TABLE orders OWNER TO ${role}`);
      const url = new URL(db.url);
      url.username = role;
      url.password = DB_PASSWORD;
      const secretFile = (name: string, text: string) => {
        const path = join(dir, name);
        writeFileSync(path, `${text}\n`, { mode: 0o600 });
        return path;
      };

      // A receiver with mutual TLS that first echoes the URL (key included) back in its answers.
      const answers: ((req: IncomingMessage, res: ServerResponse) => void)[] = [
        (req, res) => res.writeHead(500, `No such installation ${req.url}`).end(`unknown ${req.url}`),
        (req, res) => res.writeHead(302, { location: `https://127.0.0.1:1${req.url}` }).end(),
        (req) => req.socket.destroy(),
      ];
      const received: { headers: IncomingMessage['headers']; body: string }[] = [];
      const server = createServer(
        {
          key: pki.read('server.key'),
          cert: pki.read('server.pem'),
          ca: [pki.read('ca.pem')],
          requestCert: true,
          rejectUnauthorized: true,
        },
        (req, res) => {
          let body = '';
          req.on('data', (chunk) => (body += chunk));
          req.on('end', () => {
            received.push({ headers: req.headers, body });
            (answers.shift() ?? ((_req, r) => r.end('ok')))(req, res);
          });
        },
      );
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      closeReceiver = () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        });
      const endpoint = `https://127.0.0.1:${(server.address() as AddressInfo).port}/automation`;

      const config = {
        webHook: {
          enabled: true,
          endpoint,
          key: { env: 'HOOK_KEY' },
          secret: SECRET, // written in the file: the start-up warns about its mode
          useSslTrustAll: false,
          useSslClientCert: true,
          sslKeyFile: pki.path('client.p12'),
          sslKeyPassword: { file: secretFile('key-password', PASSWORD) },
          sslTrustFile: pki.path('ca.pem'),
          standardWebhooks: { secrets: [{ env: 'WHSEC' }] },
          requestTimeout: 'PT2S',
          retry: { delays: ['PT0.2S', 'PT0.2S', 'PT0.2S', 'PT0.2S'] },
        },
        database: { url: { file: secretFile('database-url', url.toString()) }, pollInterval: 'PT0.5S' },
        logLevel: 'debug',
      };
      const env = { HOOK_KEY: KEY, WHSEC };
      const configPath = writeConfig(config);
      chmodSync(configPath, 0o644);
      const cli = async (args: string[], extraEnv = {}) => {
        const result = await run(args, { ...env, ...extraEnv });
        outputs.push(result.stdout, result.stderr);
        return result;
      };

      const migrated = await cli(['migrate', '--config', configPath]);
      assert.equal(migrated.code, 0, migrated.stderr);
      await cli(['migrate', '--dry-run', '--config', configPath]);
      service = await startService(configPath, env);
      assert.match(service.output(), new RegExp(`config file ${configPath} holds secrets \\(webHook\\.secret\\) .*chmod 600`));
      await db.query("INSERT INTO orders (state) VALUES ('created')");
      await db.query("INSERT INTO orders (state) VALUES ('created')");
      await waitFor(
        async () => {
          const rows = await outbox(db);
          return rows.length === 2 && rows.every((r) => r.status === 'delivered');
        },
        { what: 'both delivered after the failures', timeoutMs: 30_000 },
      );
      assert.equal((await service.stop()).code, 0);
      outputs.push(service.output());
      for (const request of received) {
        assert.ok(verifySignature(SECRET, request.body, request.headers['x-signature'] as string));
        new Webhook(WHSEC).verify(request.body, request.headers as Record<string, string>);
      }

      // Starts that fail: a wrong key password, an unreachable database, a config error beside the secrets.
      const wrongPassword = writeConfig({
        ...config,
        webHook: { ...config.webHook, sslKeyPassword: { env: 'KEY_PASSWORD' } },
      });
      const refused = await cli(['start', '--config', wrongPassword], { KEY_PASSWORD: WRONG_KEY_PASSWORD });
      assert.equal(refused.code, 2, refused.stderr);
      const unreachable = new URL(url);
      unreachable.port = '1';
      const noDb = await cli(['migrate', '--config', configPath], { DATABASE_URL: unreachable.toString() });
      assert.notEqual(noDb.code, 0, noDb.stderr);
      const badConfig = await cli(['start', '--config', writeConfig({ ...config, webHook: { ...config.webHook, concurrency: 0 } })]);
      assert.equal(badConfig.code, 2, badConfig.stderr);

      const recorded = [
        ...(await db.query<{ row: string }>('SELECT o::text AS row FROM order_webhooks.outbox o')),
        ...(await db.query<{ row: string }>('SELECT a::text AS row FROM order_webhooks.outbox_attempt a')),
      ].map((r) => r.row);
      const errors = (
        await db.query<{ error: string }>('SELECT error FROM order_webhooks.outbox_attempt WHERE error IS NOT NULL ORDER BY id')
      ).map((r) => r.error);
      // The failures happened, and what the receiver echoed was redacted.
      assert.equal(errors.length, 3, errors.join('\n'));
      // Two events in flight at once: their attempts may be recorded in either order.
      for (const reason of [
        /^http: 500 No such installation \/automation\/\?key=\[redacted\]$/,
        /^http: 302 Found: redirects are not followed/,
        /^connection closed by the receiver before it answered \(ECONNRESET\)$/,
      ]) {
        assert.ok(
          errors.some((error) => reason.test(error)),
          `${reason} in ${errors.join(' | ')}`,
        );
      }
      assert.match(refused.stderr, /webHook\.sslKeyFile: .*\(webHook\.sslKeyPassword\)/);
      assert.match(noDb.stderr, /ECONNREFUSED/);
      assert.match(badConfig.stderr, /^order-webhooks: config error: webHook\.concurrency: /);

      const everything = [...outputs, ...recorded].join('\n');
      assert.ok(everything.length > 2000, 'there was output to search');
      for (const secret of [SECRET, KEY, DB_PASSWORD, PASSWORD, WRONG_KEY_PASSWORD, WHSEC, WHSEC.slice('whsec_'.length)]) {
        assert.ok(!everything.includes(secret), `found a secret in the output: ${secret.slice(0, 3)}…`);
      }
    } finally {
      await service?.kill();
      await closeReceiver();
      await db.drop();
      const admin = new pg.Client({ connectionString: serverUrl() });
      await admin.connect();
      await admin.query(`DROP ROLE IF EXISTS ${role}`).finally(() => admin.end());
      rmSync(dir, { recursive: true, force: true });
      rmSync(pki.dir, { recursive: true, force: true });
    }
  });
});
