// X-Signature: HMAC-SHA256 of the exact body bytes sent, lowercase hex.
import { createHmac, timingSafeEqual } from 'node:crypto';

export function signBody(secret: string, body: string | Buffer): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

/** Constant-time check of a received signature, as a receiver should do it. */
export function verifySignature(secret: string, body: string | Buffer, signature: string | undefined): boolean {
  if (typeof signature !== 'string') return false;
  const expected = Buffer.from(signBody(secret, body), 'utf8');
  const given = Buffer.from(signature.trim().toLowerCase(), 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
