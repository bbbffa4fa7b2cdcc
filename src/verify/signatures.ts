// Checks the service's signatures on the raw body, with the functions the service signs with
// (src/delivery/sign.ts), so sender and receiver cannot drift apart. Every comparison is constant
// time; every failure is a WebhookVerificationError.
import { timingSafeEqual } from 'node:crypto';
import { type SignatureEncoding, standardWebhookHeaders, verifySignature } from '../delivery/sign.ts';
import { WebhookVerificationError } from './error.ts';
import { requiredHeader, type WebhookHeaders } from './headers.ts';

export type { SignatureEncoding };

/** The body exactly as received: a Buffer, any Uint8Array, or a string of it. */
export type RawBody = string | Uint8Array;

/** Five minutes either way, as the Standard Webhooks libraries allow. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export interface StandardWebhooksOptions {
  /** Seconds `webhook-timestamp` may be from the receiver's clock, either way (default 300). */
  toleranceSeconds?: number;
  /** The receiver's clock; for tests. */
  now?: Date;
}

export function rawBytes(body: RawBody): string | Buffer {
  if (typeof body === 'string' || Buffer.isBuffer(body)) return body;
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new WebhookVerificationError(
    'BODY_NOT_RAW',
    'expected the raw body (a Buffer or string of the bytes received), not a parsed object: read it before any JSON parser does',
  );
}

function list(secrets: string | readonly string[], what: string): readonly string[] {
  const all = typeof secrets === 'string' ? [secrets] : secrets;
  if (all.length === 0 || all.some((s) => typeof s !== 'string' || s === ''))
    throw new TypeError(`${what}: expected one or more non-empty secrets`);
  return all;
}

/**
 * Checks `X-Signature` (HMAC-SHA256 of the body keyed by `webHook.secret`). Several secrets: any
 * one may match (a receiver accepts the old and the new one while the service's secret changes).
 */
export function verifyXSignature(
  secrets: string | readonly string[],
  rawBody: RawBody,
  signature: string | undefined,
  encoding: SignatureEncoding = 'hex',
): void {
  if (encoding !== 'hex' && encoding !== 'base64')
    throw new TypeError(`signatureEncoding: expected hex or base64, not ${String(encoding)}`);
  const body = rawBytes(rawBody);
  const all = list(secrets, 'secret');
  if (!signature?.trim()) throw new WebhookVerificationError('HEADER_MISSING', 'the X-Signature header is missing');
  // Every secret is tried, so the time taken does not tell which one matched.
  const matches = all.map((secret) => verifySignature(secret, body, signature, encoding));
  if (!matches.includes(true)) throw new WebhookVerificationError('SIGNATURE_MISMATCH', 'X-Signature does not match the body');
}

/** A Standard Webhooks secret's form: `whsec_` and the base64 of the key. */
function checkWhsec(secret: string): void {
  if (!/^whsec_[A-Za-z0-9+/]+={0,2}$/.test(secret)) {
    throw new TypeError('standardWebhooks.secrets: expected "whsec_" followed by the base64 of the key');
  }
}

/**
 * Checks the Standard Webhooks headers: the timestamp within the tolerance, then a `v1,` signature
 * of `${webhook-id}.${webhook-timestamp}.${body}` by one of the `whsec_` secrets.
 */
export function verifyStandardWebhook(
  secrets: string | readonly string[],
  rawBody: RawBody,
  headers: WebhookHeaders,
  { toleranceSeconds = DEFAULT_TOLERANCE_SECONDS, now = new Date() }: StandardWebhooksOptions = {},
): { id: string; timestamp: number } {
  const body = rawBytes(rawBody);
  const all = list(secrets, 'standardWebhooks.secrets');
  for (const secret of all) checkWhsec(secret);
  const id = requiredHeader(headers, 'webhook-id');
  const timestampText = requiredHeader(headers, 'webhook-timestamp');
  const signatures = requiredHeader(headers, 'webhook-signature').split(' ');
  if (!/^\d{1,15}$/.test(timestampText)) {
    throw new WebhookVerificationError('TIMESTAMP_INVALID', 'webhook-timestamp is not a whole number of seconds');
  }
  const timestamp = Number(timestampText);
  const nowSeconds = Math.floor(now.getTime() / 1000);
  if (nowSeconds - timestamp > toleranceSeconds) {
    throw new WebhookVerificationError('TIMESTAMP_TOO_OLD', `webhook-timestamp is more than ${toleranceSeconds} s old`);
  }
  if (timestamp - nowSeconds > toleranceSeconds) {
    throw new WebhookVerificationError('TIMESTAMP_TOO_NEW', `webhook-timestamp is more than ${toleranceSeconds} s ahead`);
  }
  const given = signatures.map((entry) => Buffer.from(entry));
  let matched = false;
  for (const secret of all) {
    const expected = Buffer.from(standardWebhookHeaders([secret], id, timestamp, body)['webhook-signature']);
    for (const entry of given) {
      if (entry.length === expected.length && timingSafeEqual(entry, expected)) matched = true;
    }
  }
  if (!matched) throw new WebhookVerificationError('SIGNATURE_MISMATCH', 'no webhook-signature matches the body');
  return { id, timestamp };
}
