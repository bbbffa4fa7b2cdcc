// Signatures over the exact body bytes sent: the spec's X-Signature (HMAC-SHA256, lowercase hex or
// base64) and, optionally, Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature).
import { createHmac, timingSafeEqual } from 'node:crypto';

export type SignatureEncoding = 'hex' | 'base64';

export function signBody(secret: string, body: string | Buffer, encoding: SignatureEncoding = 'hex'): string {
  return createHmac('sha256', secret).update(body).digest(encoding);
}

/** Constant-time check of a received signature, as a receiver should do it. */
export function verifySignature(
  secret: string,
  body: string | Buffer,
  signature: string | undefined,
  encoding: SignatureEncoding = 'hex',
): boolean {
  if (typeof signature !== 'string') return false;
  const expected = Buffer.from(signBody(secret, body, encoding), 'utf8');
  // Hex is case-insensitive; base64 is not.
  const text = encoding === 'hex' ? signature.trim().toLowerCase() : signature.trim();
  const given = Buffer.from(text, 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Standard Webhooks headers for one attempt: one `v1,` signature per secret (several during a rotation). */
export function standardWebhookHeaders(
  secrets: readonly string[],
  id: string,
  timestampSeconds: number,
  body: string | Buffer,
): Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string> {
  const timestamp = String(timestampSeconds);
  const signatures = secrets.map((secret) => {
    const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
    // Signed as bytes: `${id}.${timestamp}.` then the body exactly as sent.
    const digest = createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest('base64');
    return `v1,${digest}`;
  });
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signatures.join(' ') };
}
