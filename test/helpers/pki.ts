// A throw-away PKI made at test time in a temp folder (no private key is committed): two CAs,
// server and client certificates, and the same material as PEM, DER, PKCS#12 and Java KeyStore.
// openssl makes everything but the JKS files; those come from the JDK's keytool, the tool that
// makes the JKS files operators bring (no npm package writes JKS).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PASSWORD = 'Tls-Pa55word-7q';

export interface Pki {
  dir: string;
  path(name: string): string;
  read(name: string): string;
}

function tool(name: string, args: string[], cwd: string): void {
  try {
    execFileSync(name, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const e = error as Error & { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT') {
      throw new Error(`${name} is needed to make the TLS test files (openssl, and keytool from a JDK, are on the project's machines)`);
    }
    throw new Error(`${name} ${args.join(' ')} failed: ${e.stderr?.toString() ?? e.message}`);
  }
}

export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'order-webhooks-pki-'));
  const ssl = (...args: string[]) => tool('openssl', args, dir);
  const keytool = (...args: string[]) => tool('keytool', args, dir);
  const pass = `pass:${PASSWORD}`;
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'elsewhere.ext'), 'subjectAltName=DNS:elsewhere.example\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  writeFileSync(join(dir, 'ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n');

  const selfSigned = (name: string, subject: string, days: string, ext = 'ca.ext') => {
    ssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    ssl('x509', '-req', '-in', `${name}.csr`, '-signkey', `${name}.key`, '-out', `${name}.pem`, '-days', days, '-extfile', ext);
  };
  const signed = (name: string, subject: string, days: string, ext: string) => {
    ssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      days,
      '-extfile',
      ext,
    );
  };
  selfSigned('ca', '/CN=Test Root CA', '3650');
  selfSigned('other-ca', '/CN=Unrelated CA', '3650');
  // -days -1 gives a notAfter of yesterday: already expired.
  selfSigned('expired-ca', '/CN=Expired CA', '-1');
  selfSigned('self-signed', '/CN=localhost', '365', 'server.ext');
  signed('server', '/CN=localhost', '365', 'server.ext');
  signed('elsewhere', '/CN=elsewhere.example', '365', 'elsewhere.ext');
  signed('client', '/CN=webhook-client', '365', 'client.ext');
  signed('client-soon', '/CN=soon-client', '10', 'client.ext');
  signed('client-expired', '/CN=expired-client', '-1', 'client.ext');
  ssl(
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'client-ec.key',
    '-out',
    'client-ec.csr',
    '-subj',
    '/CN=webhook-client',
  );
  ssl(
    'x509',
    '-req',
    '-in',
    'client-ec.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-out',
    'client-ec.pem',
    '-days',
    '365',
    '-extfile',
    'client.ext',
  );

  // Client identities: one PEM file with the certificate and its (encrypted) key, PKCS#12, JKS.
  ssl('pkey', '-in', 'client.key', '-aes-256-cbc', '-passout', pass, '-out', 'client.enc.key');
  concat('client-identity.pem', ['client.pem', 'client.enc.key', 'ca.pem']);
  concat('client-identity-plain.pem', ['client.pem', 'client.key']);
  ssl('rsa', '-in', 'client.key', '-aes256', '-traditional', '-passout', pass, '-out', 'client.trad.key');
  concat('client-identity-traditional.pem', ['client.pem', 'client.trad.key']);
  concat('client-soon-identity.pem', ['client-soon.pem', 'client-soon.key']);
  concat('client-expired-identity.pem', ['client-expired.pem', 'client-expired.key']);
  ssl(
    'pkcs12',
    '-export',
    '-in',
    'client.pem',
    '-inkey',
    'client.key',
    '-certfile',
    'ca.pem',
    '-name',
    'client',
    '-out',
    'client.p12',
    '-passout',
    pass,
  );
  ssl('pkcs12', '-export', '-in', 'client-ec.pem', '-inkey', 'client-ec.key', '-out', 'client-ec.p12', '-passout', pass);
  // The old RC2/3DES encryption Node's own `pfx` option cannot read under OpenSSL 3.
  ssl('pkcs12', '-export', '-legacy', '-in', 'client.pem', '-inkey', 'client.key', '-out', 'client-legacy.p12', '-passout', pass);
  // An encryption forge does not read: must be refused at start with how to re-export it.
  ssl(
    'pkcs12',
    '-export',
    '-in',
    'client.pem',
    '-inkey',
    'client.key',
    '-out',
    'client-camellia.p12',
    '-passout',
    pass,
    '-keypbe',
    'camellia-256-cbc',
    '-certpbe',
    'camellia-256-cbc',
  );
  keytool(
    '-importkeystore',
    '-noprompt',
    '-srckeystore',
    'client.p12',
    '-srcstoretype',
    'PKCS12',
    '-srcstorepass',
    PASSWORD,
    '-destkeystore',
    'client.jks',
    '-deststoretype',
    'JKS',
    '-deststorepass',
    PASSWORD,
    '-destkeypass',
    PASSWORD,
  );

  // Trust stores: the CA as PEM, DER, PKCS#12 with and without a password, JKS.
  ssl('x509', '-in', 'ca.pem', '-outform', 'DER', '-out', 'ca.der');
  ssl('pkcs12', '-export', '-nokeys', '-in', 'ca.pem', '-out', 'ca.p12', '-passout', pass);
  ssl('pkcs12', '-export', '-nokeys', '-in', 'ca.pem', '-out', 'ca-unprotected.p12', '-passout', 'pass:');
  keytool(
    '-importcert',
    '-noprompt',
    '-alias',
    'test-ca',
    '-file',
    'ca.pem',
    '-keystore',
    'ca.jks',
    '-storetype',
    'JKS',
    '-storepass',
    PASSWORD,
  );

  function concat(target: string, sources: string[]) {
    writeFileSync(join(dir, target), sources.map((source) => readFileSync(join(dir, source), 'utf8')).join(''));
  }
  return { dir, path: (name) => join(dir, name), read: (name) => readFileSync(join(dir, name), 'utf8') };
}
