// Turns the spec's TLS keys into the options of the one HTTPS agent, checking the files at start
// so that a wrong file or password stops `start` instead of failing every delivery.
import { rootCertificates } from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import type { WebHookConfig } from '../config/config.ts';
import type { TlsAgentOptions } from './sender.ts';
import { TlsConfigError } from '../errors.ts';
import { type KeyStoreContents, KeyStoreError, readKeyStore } from './keystore.ts';

/** A TLS file that cannot be used; the message names the config key and the file, never the password. */

export interface LoadedTls {
  options: TlsAgentOptions;
  /** One line each, for the start-up log: trust-all in use, a certificate expiring soon. */
  warnings: string[];
}

export const EXPIRY_WARNING_DAYS = 30;
const DAY_MS = 86_400_000;

type TlsHook = Pick<WebHookConfig, 'endpoint' | 'useSslTrustAll' | 'useSslClientCert' | 'sslTrustFile' | 'sslKeyFile' | 'sslKeyPassword'>;

/** `prefix`: the config key the TLS keys are under, for messages (`webHook`, `alerts`). */
export function loadTls(hook: TlsHook, now = new Date(), prefix = 'webHook'): LoadedTls {
  const options: TlsAgentOptions = {};
  const warnings: string[] = [];
  const check = (setting: string, path: string, certificates: X509Certificate[]) =>
    warnings.push(...checkValidity(setting, path, certificates, now));

  if (hook.useSslClientCert) {
    const path = required(hook.sslKeyFile, `${prefix}.sslKeyFile`, 'when useSslClientCert is true');
    const identity = read(`${prefix}.sslKeyFile`, path, hook.sslKeyPassword, 'identity');
    const key = identity.privateKeys[0];
    if (!key) {
      throw new TlsConfigError(
        `${prefix}.sslKeyFile: no private key in ${path}: a client certificate (useSslClientCert: true) needs the certificate and its private key`,
      );
    }
    const leaf = identity.certificates.find((certificate) => certificate.checkPrivateKey(key));
    if (!leaf) throw new TlsConfigError(`${prefix}.sslKeyFile: no certificate in ${path} matches its private key`);
    // The leaf first, then the rest of the chain, as the server expects it.
    const chain = [leaf, ...identity.certificates.filter((certificate) => certificate !== leaf)];
    check(`${prefix}.sslKeyFile`, path, chain);
    options.cert = chain.map((certificate) => certificate.toString()).join('');
    options.key = key.export({ format: 'pem', type: 'pkcs8' }) as string;
  }

  // Without a client certificate, sslKeyFile is the spec's "keys": certificates to trust.
  const trustSettings: [string, string | undefined][] = hook.useSslClientCert
    ? [[`${prefix}.sslTrustFile`, hook.sslTrustFile]]
    : [
        [`${prefix}.sslKeyFile`, hook.sslKeyFile],
        [`${prefix}.sslTrustFile`, hook.sslTrustFile],
      ];
  const configured = trustSettings.filter((entry): entry is [string, string] => entry[1] !== undefined);

  if (hook.useSslTrustAll) {
    if (isHttps(hook.endpoint)) {
      const ignored = configured.length ? `; the certificates in ${configured.map(([setting]) => setting).join(' and ')} are not used` : '';
      warnings.push(
        `${prefix}.useSslTrustAll is true (the default): the receiver's certificate is NOT verified, so anyone on the network path can pose as it${ignored}. ` +
          'For testing only: set useSslTrustAll to false in production.',
      );
    }
    return { options, warnings };
  }

  const trusted: string[] = [];
  for (const [setting, path] of configured) {
    const store = read(setting, path, hook.sslKeyPassword, 'trust');
    if (store.certificates.length === 0) {
      throw new TlsConfigError(`${setting}: no certificate in ${path}: with useSslTrustAll false it must hold the certificates to trust`);
    }
    check(setting, path, store.certificates);
    trusted.push(...store.certificates.map((certificate) => certificate.toString()));
  }
  // Node's `ca` replaces the system CAs; keep them, as the spec's "verify" means system CAs plus these.
  if (trusted.length) options.ca = [...rootCertificates, ...trusted];
  return { options, warnings };
}

function read(setting: string, path: string, password: string | undefined, role: 'identity' | 'trust'): KeyStoreContents {
  const prefix = setting.slice(0, setting.indexOf('.'));
  try {
    return readKeyStore(path, { password, role });
  } catch (error) {
    if (!(error instanceof KeyStoreError)) throw error;
    const locked = error.problem === 'wrong-password' || error.problem === 'needs-password';
    if (locked && password === undefined) {
      throw new TlsConfigError(`${setting}: ${path} is password-protected and ${prefix}.sslKeyPassword is not set`);
    }
    const hint = locked ? ` (${prefix}.sslKeyPassword)` : '';
    throw new TlsConfigError(`${setting}: ${error.message}${hint}`);
  }
}

/** An expired certificate is an error (nothing would verify); one expiring soon is a warning. */
function checkValidity(setting: string, path: string, certificates: X509Certificate[], now: Date): string[] {
  const warnings: string[] = [];
  for (const certificate of certificates) {
    const notAfter = new Date(certificate.validTo);
    const subject = certificate.subject.replace(/\n/g, ', ');
    if (notAfter.getTime() <= now.getTime()) {
      throw new TlsConfigError(`${setting}: the certificate "${subject}" in ${path} expired on ${notAfter.toISOString()}`);
    }
    const days = Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS);
    if (days < EXPIRY_WARNING_DAYS) {
      warnings.push(
        `${setting}: the certificate "${subject}" in ${path} expires in ${days} day${days === 1 ? '' : 's'}, on ${notAfter.toISOString()}`,
      );
    }
  }
  return warnings;
}

function required(value: string | undefined, setting: string, when: string): string {
  if (value === undefined) throw new TlsConfigError(`${setting}: expected a file ${when}`);
  return value;
}

function isHttps(endpoint: string | undefined): boolean {
  return endpoint?.toLowerCase().startsWith('https:') ?? false;
}
