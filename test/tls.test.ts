import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { rootCertificates } from 'node:tls';
import { parseConfig } from '../src/config/config.ts';
import { type Outcome, Sender } from '../src/delivery/sender.ts';
import { loadTls } from '../src/delivery/tls.ts';
import { run, writeConfig } from './helpers/cli.ts';
import { type HttpsReceiver, startHttpsReceiver } from './helpers/httpsServer.ts';
import { PASSWORD, type Pki, makePki } from './helpers/pki.ts';
import { waitFor } from './helpers/poll.ts';
import { createStack, outbox, type Stack } from './helpers/stack.ts';

const SECRET = 'HeaderSecret-tls-9x';
const KEY = 'QueryKey-tls-4k';
const UNKNOWN_AUTHORITY = /^tls: certificate signed by unknown authority \(/;

describe('tls', () => {
  let pki: Pki;
  let server: HttpsReceiver; // certificate from the test CA
  let mutual: HttpsReceiver; // the same, and asks for a client certificate from the test CA
  let selfSigned: HttpsReceiver;
  let elsewhere: HttpsReceiver; // from the test CA, but for another host name
  const stacks: Stack[] = [];

  before(async () => {
    pki = makePki();
    server = await startHttpsReceiver({ key: pki.read('server.key'), cert: pki.read('server.pem') });
    mutual = await startHttpsReceiver({ key: pki.read('server.key'), cert: pki.read('server.pem'), clientCa: pki.read('ca.pem') });
    selfSigned = await startHttpsReceiver({ key: pki.read('self-signed.key'), cert: pki.read('self-signed.pem') });
    elsewhere = await startHttpsReceiver({ key: pki.read('elsewhere.key'), cert: pki.read('elsewhere.pem') });
  });
  after(async () => {
    for (const s of stacks) await s.close();
    await Promise.all([server, mutual, selfSigned, elsewhere].map((r) => r?.close()));
    rmSync(pki.dir, { recursive: true, force: true }); // throw-away private keys
  });

  const files = (webHook: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(webHook).map(([name, value]) => [name, name.endsWith('File') ? pki.path(value as string) : value]));

  /** One POST through the real Sender, with the agent options loaded from the files as `start` does. */
  async function send(endpoint: string, webHook: Record<string, unknown>): Promise<Outcome> {
    const hook = parseConfig(
      { webHook: { enabled: true, endpoint, ...files(webHook) }, database: { url: 'postgres://unused' } },
      {},
    ).webHook;
    const sender = new Sender(hook, loadTls(hook).options);
    try {
      return await sender.send({ eventId: randomUUID(), attempt: 1, body: '{}' });
    } finally {
      sender.close();
    }
  }

  describe('formats, through the real Sender and real HTTPS servers', () => {
    const trustStores: [string, string][] = [
      ['PEM', 'ca.pem'],
      ['DER', 'ca.der'],
      ['PKCS#12 holding only certificates', 'ca.p12'],
      ['PKCS#12 without a password', 'ca-unprotected.p12'],
      ['JKS', 'ca.jks'],
    ];
    for (const [format, file] of trustStores) {
      it(`${format} works as the keystore of certificates to trust (sslKeyFile, useSslClientCert false)`, async () => {
        const outcome = await send(server.url, { useSslTrustAll: false, sslKeyFile: file, sslKeyPassword: PASSWORD });
        assert.equal(outcome.error, null);
        assert.equal(outcome.httpStatus, 200);
      });
      it(`${format} works as the trust store (sslTrustFile) beside a client certificate`, async () => {
        const before = mutual.clients.length;
        const outcome = await send(mutual.url, {
          useSslTrustAll: false,
          useSslClientCert: true,
          sslKeyFile: 'client.p12',
          sslKeyPassword: PASSWORD,
          sslTrustFile: file,
        });
        assert.equal(outcome.error, null);
        assert.deepEqual(mutual.clients.slice(before), ['webhook-client']);
      });
    }

    const identities: [string, string][] = [
      ['PEM with an encrypted private key', 'client-identity.pem'],
      ['PEM with a plain private key', 'client-identity-plain.pem'],
      ['PEM with a key in OpenSSL’s traditional encrypted format', 'client-identity-traditional.pem'],
      ['PKCS#12', 'client.p12'],
      ['PKCS#12 with an EC key', 'client-ec.p12'],
      ['PKCS#12 in the old RC2/3DES encryption', 'client-legacy.p12'],
      ['JKS', 'client.jks'],
    ];
    for (const [format, file] of identities) {
      it(`${format} works as the client certificate for mutual TLS (sslKeyFile, useSslClientCert true)`, async () => {
        const before = mutual.clients.length;
        const outcome = await send(mutual.url, {
          useSslTrustAll: false,
          useSslClientCert: true,
          sslKeyFile: file,
          sslKeyPassword: PASSWORD,
          sslTrustFile: 'ca.jks',
        });
        assert.equal(outcome.error, null);
        assert.deepEqual(mutual.clients.slice(before), ['webhook-client']);
      });
    }

    it('sslTrustFile adds to the keystore of trusted certificates', async () => {
      const webHook = { useSslTrustAll: false, sslKeyFile: 'other-ca.pem', sslKeyPassword: PASSWORD };
      assert.match((await send(server.url, webHook)).error ?? '', UNKNOWN_AUTHORITY);
      assert.equal((await send(server.url, { ...webHook, sslTrustFile: 'ca.p12' })).error, null);
    });

    it('verifies against the system CAs when no trust file is given, so a private CA is refused', async () => {
      assert.match((await send(server.url, { useSslTrustAll: false })).error ?? '', UNKNOWN_AUTHORITY);
    });

    it('trust-all (the default) sends to a self-signed server; verification refuses it', async () => {
      assert.equal((await send(selfSigned.url, {})).httpStatus, 200);
      assert.match((await send(selfSigned.url, { useSslTrustAll: false, sslTrustFile: 'ca.pem' })).error ?? '', UNKNOWN_AUTHORITY);
    });

    it('a trusted certificate for another host name is refused with a readable reason', async () => {
      const outcome = await send(elsewhere.url, { useSslTrustAll: false, sslTrustFile: 'ca.pem' });
      assert.equal(outcome.error, 'tls: certificate does not match the host name (ERR_TLS_CERT_ALTNAME_INVALID)');
    });

    it('each TLS set-up has its own agent: two client identities side by side keep their own connections', async () => {
      const make = (sslKeyFile: string) => {
        const hook = parseConfig(
          {
            webHook: {
              enabled: true,
              endpoint: mutual.url,
              ...files({ useSslTrustAll: false, useSslClientCert: true, sslKeyFile, sslKeyPassword: PASSWORD, sslTrustFile: 'ca.pem' }),
            },
            database: { url: 'postgres://unused' },
          },
          {},
        ).webHook;
        return new Sender(hook, loadTls(hook).options);
      };
      const a = make('client.p12');
      const b = make('client-soon-identity.pem');
      const before = mutual.clients.length;
      try {
        for (const sender of [a, b, a, b]) assert.equal((await sender.send({ eventId: randomUUID(), attempt: 1, body: '{}' })).error, null);
      } finally {
        a.close();
        b.close();
      }
      assert.deepEqual(mutual.clients.slice(before), ['webhook-client', 'soon-client', 'webhook-client', 'soon-client']);
    });
  });

  describe('start-up warnings', () => {
    const hook = (webHook: Record<string, unknown>) => ({
      endpoint: 'https://127.0.0.1/automation',
      useSslTrustAll: true,
      useSslClientCert: false,
      ...files(webHook),
    });

    it('warns about a certificate that expires within 30 days, naming the key', () => {
      const { warnings } = loadTls(
        hook({ useSslTrustAll: false, useSslClientCert: true, sslKeyFile: 'client-soon-identity.pem', sslTrustFile: 'ca.pem' }),
      );
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /^webHook\.sslKeyFile: the certificate "CN=soon-client" in \S+ expires in (9|10) days, on \d{4}-/);
    });

    it('warns once that trust-all does not verify, only for an https endpoint, and says the trust files are unused', () => {
      assert.deepEqual(loadTls(hook({ endpoint: 'http://127.0.0.1/automation' })).warnings, []);
      const { warnings, options } = loadTls(hook({ sslKeyFile: 'ca.pem' }));
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /certificate is NOT verified.*the certificates in webHook\.sslKeyFile are not used\. For testing only/);
      assert.equal(options.ca, undefined);
    });

    it('keeps the system CAs beside the configured ones (Node’s `ca` would replace them)', () => {
      const { options, warnings } = loadTls(hook({ useSslTrustAll: false, sslTrustFile: 'ca.pem' }));
      assert.deepEqual(warnings, []);
      assert.equal(options.ca!.length, rootCertificates.length + 1);
      assert.ok(rootCertificates.every((root) => options.ca!.includes(root)));
    });
  });

  describe('through the service: the spec’s three set-ups', () => {
    const stack = async (label: string, webHook: Record<string, unknown>) => {
      const s = await createStack(label, { webHook: { secret: SECRET, key: KEY, ...files(webHook) } });
      stacks.push(s);
      return s;
    };
    const attempts = (s: Stack) =>
      s.db.query<{ attempt: number; http_status: number | null; error: string | null }>(
        'SELECT attempt, http_status, error FROM order_webhooks.attempts ORDER BY outbox_id, attempt',
      );
    const assertNoSecrets = (text: string) => {
      for (const secret of [PASSWORD, SECRET, KEY]) assert.ok(!text.includes(secret), `output must not contain ${secret}`);
    };

    it('trust-all (the default) delivers to a self-signed server and warns once at start', async () => {
      const s = await stack('tls_trustall', { endpoint: selfSigned.url });
      await s.db.query("INSERT INTO orders (state) VALUES ('created')");
      await waitFor(async () => (await outbox(s.db))[0]?.status === 'delivered', { what: 'delivered' });
      const warnings = s.service!.output().match(/useSslTrustAll is true \(the default\): the receiver's certificate is NOT verified/g);
      assert.equal(warnings?.length, 1);
      assert.match(s.service!.output(), /"level":40,[^\n]*For testing only/);
      assertNoSecrets(s.service!.output());
    });

    it('"Adding keys": verification on delivers with the right CA (PKCS#12 keystore)', async () => {
      const s = await stack('tls_keys', {
        endpoint: server.url,
        useSslTrustAll: false,
        useSslClientCert: false,
        sslKeyFile: 'ca.p12',
        sslKeyPassword: PASSWORD,
      });
      await s.db.query("INSERT INTO orders (state) VALUES ('created')");
      const row = await waitFor(async () => (await outbox(s.db)).find((r) => r.status !== 'pending'), { what: 'settled' });
      assert.equal(row.status, 'delivered');
      assert.doesNotMatch(s.service!.output(), /useSslTrustAll is true/);
      assertNoSecrets(s.service!.output());
    });

    it('"Adding keys": the wrong CA fails, recorded on each attempt as unknown authority, and is retried', async () => {
      const s = await stack('tls_wrongca', {
        endpoint: server.url,
        useSslTrustAll: false,
        sslKeyFile: 'other-ca.pem',
        sslKeyPassword: PASSWORD,
      });
      await s.db.query("INSERT INTO orders (state) VALUES ('created')");
      const rows = await waitFor(
        async () => {
          const r = await attempts(s);
          return r.length >= 2 && r;
        },
        { what: 'two attempts' },
      );
      for (const row of rows.slice(0, 2)) {
        assert.equal(row.http_status, null);
        assert.match(row.error ?? '', UNKNOWN_AUTHORITY);
      }
      assert.deepEqual(
        rows.slice(0, 2).map((r) => r.attempt),
        [1, 2],
      );
      assertNoSecrets(s.service!.output());
    });

    it('"Adding client authentication": mutual TLS delivers with the right client certificate (JKS key store, PKCS#12 trust store)', async () => {
      const before = mutual.clients.length;
      const s = await stack('tls_mutual', {
        endpoint: mutual.url,
        useSslTrustAll: false,
        useSslClientCert: true,
        sslTrustFile: 'ca.p12',
        sslKeyFile: 'client.jks',
        sslKeyPassword: PASSWORD,
      });
      await s.db.query("INSERT INTO orders (state) VALUES ('created')");
      const row = await waitFor(async () => (await outbox(s.db)).find((r) => r.status !== 'pending'), { what: 'settled' });
      assert.equal(row.status, 'delivered');
      assert.deepEqual(mutual.clients.slice(before), ['webhook-client']);
      assertNoSecrets(s.service!.output());
    });

    it('mutual TLS is refused without a client certificate, with a readable reason recorded', async () => {
      const s = await stack('tls_noclient', { endpoint: mutual.url, useSslTrustAll: false, sslTrustFile: 'ca.pem' });
      await s.db.query("INSERT INTO orders (state) VALUES ('created')");
      const rows = await waitFor(
        async () => {
          const r = await attempts(s);
          return r.length >= 1 && r;
        },
        { what: 'an attempt' },
      );
      assert.match(rows[0]!.error ?? '', /^tls: handshake refused by the receiver \(certificate required\)$/);
    });
  });

  describe('start-time checks: exit code 2 and one line naming the key', () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      [
        'a missing file',
        { useSslTrustAll: false, sslKeyFile: 'missing.p12', sslKeyPassword: PASSWORD },
        /webHook\.sslKeyFile: cannot read \S+missing\.p12 \(ENOENT\)$/,
      ],
      [
        'a wrong PKCS#12 password',
        { useSslTrustAll: false, useSslClientCert: true, sslKeyFile: 'client.p12', sslKeyPassword: 'not-it' },
        /webHook\.sslKeyFile: wrong password for \S+client\.p12 \(webHook\.sslKeyPassword\)$/,
      ],
      [
        'a wrong JKS password',
        { useSslTrustAll: false, sslKeyFile: 'ca.jks', sslKeyPassword: 'not-it' },
        /webHook\.sslKeyFile: wrong password for \S+ca\.jks/,
      ],
      [
        'a wrong password for a PEM key',
        { useSslClientCert: true, sslKeyFile: 'client-identity.pem', sslKeyPassword: 'not-it' },
        /webHook\.sslKeyFile: wrong password for \S+client-identity\.pem/,
      ],
      [
        'a protected trust store the password does not open',
        {
          useSslTrustAll: false,
          useSslClientCert: true,
          sslKeyFile: 'client-identity-plain.pem',
          sslKeyPassword: 'not-it',
          sslTrustFile: 'ca.p12',
        },
        /webHook\.sslTrustFile: wrong password for \S+ca\.p12/,
      ],
      [
        'an encrypted key without a password',
        { useSslClientCert: true, sslKeyFile: 'client.p12' },
        /webHook\.sslKeyFile: \S+client\.p12 is password-protected and webHook\.sslKeyPassword is not set$/,
      ],
      [
        'no private key for the client certificate',
        { useSslClientCert: true, sslKeyFile: 'ca.pem', sslKeyPassword: PASSWORD },
        /webHook\.sslKeyFile: no private key in \S+ca\.pem: a client certificate/,
      ],
      [
        'no certificate in a trust store',
        { useSslTrustAll: false, useSslClientCert: true, sslKeyFile: 'client.p12', sslKeyPassword: PASSWORD, sslTrustFile: 'client.key' },
        /webHook\.sslTrustFile: no certificate in \S+client\.key/,
      ],
      [
        'an expired client certificate',
        { useSslClientCert: true, sslKeyFile: 'client-expired-identity.pem' },
        /webHook\.sslKeyFile: the certificate "CN=expired-client" in \S+ expired on \d{4}-/,
      ],
      [
        'an expired trusted certificate',
        { useSslTrustAll: false, sslTrustFile: 'expired-ca.pem' },
        /webHook\.sslTrustFile: the certificate "CN=Expired CA" in \S+ expired on \d{4}-/,
      ],
      [
        'a PKCS#12 in an encryption that cannot be read',
        { useSslClientCert: true, sslKeyFile: 'client-camellia.p12', sslKeyPassword: PASSWORD },
        /webHook\.sslKeyFile: \S+ uses a PKCS#12 encryption that cannot be read .*re-export it with AES: openssl pkcs12 -in /,
      ],
      [
        'a file that is no key store',
        { useSslTrustAll: false, sslTrustFile: 'server.ext' },
        /webHook\.sslTrustFile: \S+server\.ext is not a PEM, PKCS#12 \(\.p12\/\.pfx\) or Java KeyStore \(\.jks\) file$/,
      ],
    ];
    for (const [name, webHook, message] of cases) {
      it(`refuses ${name}`, async () => {
        const config = writeConfig({
          webHook: { enabled: true, endpoint: 'https://127.0.0.1:1/automation', secret: SECRET, key: KEY, ...files(webHook) },
          // Never reached: the TLS files are checked before the database.
          database: { url: 'postgres://postgres@127.0.0.1:1/none' },
        });
        const result = await run(['start', '--config', config]);
        assert.equal(result.code, 2, result.stderr);
        const lines = result.stderr.trimEnd().split('\n');
        assert.equal(lines.length, 1, result.stderr);
        assert.match(lines[0]!, /^order-webhooks: start: webHook\.ssl/);
        assert.match(lines[0]!, message);
        for (const secret of [PASSWORD, 'not-it', SECRET, KEY])
          assert.ok(!(result.stderr + result.stdout).includes(secret), `no ${secret} in the output`);
      });
    }
  });
});
