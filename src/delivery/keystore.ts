// Reads a key or trust store (PEM, DER certificate, PKCS#12 or Java KeyStore), recognised by its
// content, into Node's own certificate and key objects. No policy here: `tls.ts` decides roles.
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import jks from 'jks-js';
import forge from 'node-forge';

export type KeyStoreFormat = 'PEM' | 'DER' | 'PKCS#12' | 'JKS';

export interface KeyStoreContents {
  format: KeyStoreFormat;
  certificates: X509Certificate[];
  /** Decrypted private keys, in file order; always empty for a trust store. */
  privateKeys: KeyObject[];
}

export type KeyStoreProblem = 'unreadable' | 'not-a-keystore' | 'wrong-password' | 'needs-password' | 'unsupported';

/** Why a store could not be read; the message names the file, never the password. */
export class KeyStoreError extends Error {
  override name = 'KeyStoreError';
  constructor(
    message: string,
    readonly problem: KeyStoreProblem,
  ) {
    super(message);
  }
}

export interface ReadOptions {
  /** Opens the store and its keys; undefined for an unprotected store. */
  password: string | undefined;
  /** An identity's private keys are decrypted; a trust store's keys, if any, are not touched. */
  role: 'identity' | 'trust';
}

const JKS_MAGIC = 0xfeedfeed;
const JCEKS_MAGIC = 0xcececece;

export function readKeyStore(path: string, options: ReadOptions): KeyStoreContents {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new KeyStoreError(`cannot read ${path} (${code})`, 'unreadable');
  }
  if (data.length >= 4 && data.readUInt32BE(0) === JKS_MAGIC) return readJks(path, data, options);
  if (data.length >= 4 && data.readUInt32BE(0) === JCEKS_MAGIC) {
    throw new KeyStoreError(
      `${path} is a JCEKS keystore, which is not supported; convert it: keytool -importkeystore -srckeystore ${path} -srcstoretype JCEKS -destkeystore new.p12 -deststoretype PKCS12`,
      'unsupported',
    );
  }
  if (data.includes('-----BEGIN ')) return readPem(path, data.toString('latin1'), options);
  // Binary and DER (starts with an ASN.1 SEQUENCE): a single certificate, else a PKCS#12 PFX.
  if (data[0] === 0x30) {
    const certificate = tryCertificate(data);
    if (certificate) return { format: 'DER', certificates: [certificate], privateKeys: [] };
    return readPkcs12(path, data, options);
  }
  throw new KeyStoreError(`${path} is not a PEM, PKCS#12 (.p12/.pfx) or Java KeyStore (.jks) file`, 'not-a-keystore');
}

function tryCertificate(der: Buffer): X509Certificate | undefined {
  try {
    return new X509Certificate(der);
  } catch {
    return undefined; // not a certificate: the caller tries the next format
  }
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

function readPem(path: string, text: string, { password, role }: ReadOptions): KeyStoreContents {
  const certificates: X509Certificate[] = [];
  const privateKeys: KeyObject[] = [];
  for (const [block, label] of text.matchAll(PEM_BLOCK)) {
    if (label === 'CERTIFICATE' || label === 'TRUSTED CERTIFICATE') {
      const certificate = tryCertificate(Buffer.from(block.replace(/TRUSTED CERTIFICATE/g, 'CERTIFICATE')));
      if (!certificate) throw new KeyStoreError(`${path} has a certificate that cannot be parsed`, 'not-a-keystore');
      certificates.push(certificate);
    } else if (role === 'identity' && label!.endsWith('PRIVATE KEY')) {
      privateKeys.push(pemPrivateKey(path, block, password));
    }
  }
  return { format: 'PEM', certificates, privateKeys };
}

function pemPrivateKey(path: string, block: string, password: string | undefined): KeyObject {
  try {
    // Node reads both PKCS#8 ("ENCRYPTED PRIVATE KEY") and OpenSSL's traditional encrypted PEM.
    return createPrivateKey({ key: block, format: 'pem', passphrase: password ?? '' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (password === undefined || password === '') {
      if (/PASSPHRASE|BAD_DECRYPT/.test(code))
        throw new KeyStoreError(`the private key in ${path} is encrypted and no password is set`, 'needs-password');
    } else if (/BAD_DECRYPT|PASSPHRASE|DECODER|UNSUPPORTED/.test(code)) {
      throw new KeyStoreError(`wrong password for ${path}`, 'wrong-password');
    }
    throw new KeyStoreError(`${path} has a private key that cannot be read (${code || (error as Error).message})`, 'not-a-keystore');
  }
}

function readPkcs12(path: string, data: Buffer, { password, role }: ReadOptions): KeyStoreContents {
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    p12 = openPkcs12(data, password ?? '');
  } catch (error) {
    const problem = pkcs12Error(path, error as Error);
    // A trust store may be unprotected (empty password) while the password belongs to the key store.
    if (role !== 'trust' || !password || problem.problem !== 'wrong-password') throw problem;
    try {
      p12 = openPkcs12(data, '');
    } catch {
      throw problem; // the configured password was the one to report on
    }
  }
  const certificates: X509Certificate[] = [];
  for (const bag of p12.getBags({ bagType: forge.pki.oids.certBag! })[forge.pki.oids.certBag!] ?? []) {
    // forge keeps the parsed certificate, or the raw ASN.1 when it is not RSA; Node reads either.
    const asn1 = bag.cert ? forge.pki.certificateToAsn1(bag.cert) : bag.asn1;
    if (asn1) certificates.push(new X509Certificate(Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary')));
  }
  const privateKeys: KeyObject[] = [];
  if (role === 'identity') {
    for (const type of [forge.pki.oids.pkcs8ShroudedKeyBag!, forge.pki.oids.keyBag!]) {
      for (const bag of p12.getBags({ bagType: type })[type] ?? []) {
        const info = bag.key ? forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(bag.key)) : bag.asn1;
        if (!info) continue;
        const der = Buffer.from(forge.asn1.toDer(info).getBytes(), 'binary');
        privateKeys.push(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
      }
    }
  }
  return { format: 'PKCS#12', certificates, privateKeys };
}

function openPkcs12(data: Buffer, password: string): forge.pkcs12.Pkcs12Pfx {
  const asn1 = forge.asn1.fromDer(forge.util.createBuffer(data.toString('binary')));
  return forge.pkcs12.pkcs12FromAsn1(asn1, false, password);
}

function pkcs12Error(path: string, error: Error): KeyStoreError {
  const message = error.message;
  if (/MAC could not be verified|wrong password|Invalid password/i.test(message)) {
    return new KeyStoreError(`wrong password for ${path}`, 'wrong-password');
  }
  if (/Unsupported|unknown|not supported/i.test(message)) {
    // forge reads the usual encryptions, old (RC2, 3DES) and new (AES with PBKDF2); not every one.
    return new KeyStoreError(
      `${path} uses a PKCS#12 encryption that cannot be read (${message.replace(/\s+$/, '')}); re-export it with AES: ` +
        `openssl pkcs12 -in ${path} -nodes -out all.pem && openssl pkcs12 -export -in all.pem -out new.p12 -keypbe AES-256-CBC -certpbe AES-256-CBC -macalg sha256` +
        ` (add -legacy to the first command for old RC2/DES files)`,
      'unsupported',
    );
  }
  return new KeyStoreError(`${path} is not a PEM, PKCS#12 (.p12/.pfx) or Java KeyStore (.jks) file (${message})`, 'not-a-keystore');
}

function readJks(path: string, data: Buffer, { password, role }: ReadOptions): KeyStoreContents {
  let entries: ReturnType<typeof jks.parseJks>;
  try {
    // Without a password jks-js skips the integrity check, as `keytool -list` does.
    entries = jks.parseJks(data, password ?? '');
  } catch (error) {
    if (/Password verification failed/.test((error as Error).message)) {
      throw new KeyStoreError(`wrong password for ${path}`, 'wrong-password');
    }
    throw new KeyStoreError(`${path} is not a readable Java KeyStore (${(error as Error).message})`, 'not-a-keystore');
  }
  const certificates: X509Certificate[] = [];
  const privateKeys: KeyObject[] = [];
  for (const entry of entries) {
    if ('cert' in entry) certificates.push(new X509Certificate(entry.cert.value));
    else {
      certificates.push(...entry.chain.map((c) => new X509Certificate(c.value)));
      if (role === 'trust') continue;
      if (!password) throw new KeyStoreError(`the private key in ${path} is protected and no password is set`, 'needs-password');
      let pem: string;
      try {
        pem = jks.decrypt(entry.protectedPrivateKey, password);
      } catch (error) {
        if (/Cannot recover key/.test((error as Error).message)) {
          throw new KeyStoreError(`wrong password for the private key "${entry.alias}" in ${path}`, 'wrong-password');
        }
        throw new KeyStoreError(`${path}: the private key "${entry.alias}" cannot be read (${(error as Error).message})`, 'unsupported');
      }
      privateKeys.push(createPrivateKey(pem));
    }
  }
  return { format: 'JKS', certificates, privateKeys };
}
