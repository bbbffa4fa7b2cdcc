// Why an attempt failed, as a machine-readable kind (for counting and grouping: the outbox's
// last_error_kind, outbox_attempt.error_kind, metrics) and a readable reason that names the phase.
// migrations/000004_failure_kind.sql derives the same kinds from the reasons of older rows.
import type { WebHookConfig } from '../config/config.ts';

export const FAILURE_KINDS = [
  /** The receiver answered with a status other than 2xx (and not a redirect). */
  'http_status',
  /** The receiver answered 3xx: redirects are not followed. */
  'redirect',
  /** No connection, handshake or complete response within the configured time. */
  'timeout',
  /** The host name did not resolve. */
  'dns',
  /** The connection was refused or could not be made. */
  'connect',
  /** The TLS handshake failed: certificate not trusted, expired, wrong host, client certificate refused. */
  'tls',
  /** The connection was closed or reset before a complete answer. */
  'reset',
  /** The answer could not be read (broken response, invalid HTTP). */
  'body',
  /** A fault of ours while sending: a bug, recorded rather than lost. */
  'internal',
] as const;

export type FailureKind = (typeof FAILURE_KINDS)[number];

export interface Failure {
  kind: FailureKind;
  reason: string;
}

const UNKNOWN_AUTHORITY = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
]);

const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ECONNABORTED']);

/** A failed request (got's error) as its kind and one line saying in which phase it failed and why. */
export function classifyRequestError(error: unknown, hook: Pick<WebHookConfig, 'connectionTimeout' | 'requestTimeout'>): Failure {
  const e = error as Error & { code?: string; event?: string; cause?: Error & { code?: string } };
  const code = e.code ?? e.cause?.code;
  const cause = e.cause?.message ?? e.message;
  if (e.name === 'TimeoutError') {
    const phase = e.event ?? 'request';
    const limit =
      phase === 'request'
        ? `webHook.requestTimeout (${hook.requestTimeout} ms)`
        : `webHook.connectionTimeout (${hook.connectionTimeout} ms)`;
    return { kind: 'timeout', reason: `timeout: no ${phase === 'request' ? 'complete response' : phase} within ${limit}` };
  }
  const tls = (reason: string): Failure => ({ kind: 'tls', reason: `tls: ${reason}` });
  if (code && UNKNOWN_AUTHORITY.has(code)) return tls(`certificate signed by unknown authority (${code})`);
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return tls(`certificate does not match the host name (${code})`);
  if (code === 'CERT_HAS_EXPIRED') return tls(`certificate has expired (${code})`);
  if (code === 'CERT_NOT_YET_VALID') return tls(`certificate is not valid yet (${code})`);
  if (code === 'EPROTO' || code?.startsWith('ERR_SSL') || code?.startsWith('ERR_TLS')) {
    const alert = /alert ([a-z ]+)/i.exec(cause)?.[1];
    return tls(alert ? `handshake refused by the receiver (${alert.trim()})` : `${cause} (${code})`);
  }
  if (code === 'ECONNREFUSED') return { kind: 'connect', reason: 'connect: connection refused (ECONNREFUSED)' };
  if (code && CONNECT_CODES.has(code)) return { kind: 'connect', reason: `connect: ${cause} (${code})` };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { kind: 'dns', reason: `dns: host not found (${code})` };
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    return { kind: 'reset', reason: `connection closed by the receiver before it answered (${code})` };
  }
  if (code?.startsWith('HPE_')) return { kind: 'body', reason: `response: the receiver's answer is not valid HTTP (${cause}; ${code})` };
  if (e.name === 'ReadError' || e.name === 'ParseError') return { kind: 'body', reason: `response: ${cause}${code ? ` (${code})` : ''}` };
  return { kind: 'internal', reason: `request: ${cause}${code ? ` (${code})` : ''}` };
}

/** A non-2xx answer. */
export function statusFailure(status: number, statusMessage: string | undefined): Failure {
  const text = statusMessage ? ` ${statusMessage}` : '';
  if (status >= 300 && status < 400) {
    return { kind: 'redirect', reason: `http: ${status}${text}: redirects are not followed; point webHook.endpoint at the final URL` };
  }
  return { kind: 'http_status', reason: `http: ${status}${text}` };
}

/** A fault of ours while sending, recorded as a failed attempt rather than lost. */
export function internalFailure(error: unknown): Failure {
  return { kind: 'internal', reason: `internal: ${error instanceof Error ? error.message : String(error)}` };
}
