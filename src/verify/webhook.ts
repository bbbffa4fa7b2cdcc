// One call for a receiver: verify what the options ask for, then read the event. Nothing from the
// request is trusted before its signatures are checked.
import { WebhookVerificationError } from './error.ts';
import { headerValue, requiredHeader, type WebhookHeaders } from './headers.ts';
import { type RawBody, rawBytes, type SignatureEncoding, verifyStandardWebhook, verifyXSignature } from './signatures.ts';

export interface VerifyOptions {
  /** `webHook.secret`: `X-Signature` must match it (or one of several, while it changes). */
  secret?: string | readonly string[];
  /** `webHook.signatureEncoding`: `hex` (the default) or `base64`. */
  signatureEncoding?: SignatureEncoding;
  /** `webHook.standardWebhooks`: the three headers must verify against one of these `whsec_` secrets. */
  standardWebhooks?: { secrets: string | readonly string[]; toleranceSeconds?: number };
  /** The receiver's clock; for tests. */
  now?: Date;
}

export interface VerifiedWebhook {
  /** `X-Event-Id`: the same on every retry and replay of the event; deduplicate on it. */
  eventId: string;
  /** `X-Event-Attempt`, from 1; undefined when the header is absent. */
  attempt: number | undefined;
  orderId: string;
  /** One of the seven event types (`OrderCreated` …); a receiver should ignore types it does not know. */
  eventType: string;
  /** `webhook-timestamp` in seconds, when Standard Webhooks were verified. */
  timestamp?: number;
}

/**
 * Verifies a webhook on its raw body and returns the event. Throws WebhookVerificationError (with a
 * `code`) when it does not verify, and TypeError when the options themselves are wrong.
 */
export function verifyWebhook(rawBody: RawBody, headers: WebhookHeaders, options: VerifyOptions): VerifiedWebhook {
  const { secret, signatureEncoding = 'hex', standardWebhooks, now } = options;
  if (secret === undefined && standardWebhooks === undefined) {
    throw new TypeError('verifyWebhook: give secret, standardWebhooks or both: there is nothing to verify with');
  }
  const body = rawBytes(rawBody);
  if (secret !== undefined) verifyXSignature(secret, body, headerValue(headers, 'x-signature'), signatureEncoding);
  let signedId: string | undefined;
  let timestamp: number | undefined;
  if (standardWebhooks !== undefined) {
    const options = { ...(now ? { now } : {}), toleranceSeconds: standardWebhooks.toleranceSeconds };
    ({ id: signedId, timestamp } = verifyStandardWebhook(standardWebhooks.secrets, body, headers, options));
  }
  // X-Signature does not cover the headers; webhook-id is signed, so it wins when there is one.
  const eventId = headerValue(headers, 'x-event-id')?.trim() || signedId || requiredHeader(headers, 'x-event-id');
  if (signedId !== undefined && eventId !== signedId) {
    throw new WebhookVerificationError('EVENT_ID_MISMATCH', 'X-Event-Id differs from the signed webhook-id');
  }
  const attemptText = headerValue(headers, 'x-event-attempt')?.trim();
  const attempt = attemptText && /^\d+$/.test(attemptText) ? Number(attemptText) : undefined;
  return { eventId, attempt, ...readEvent(body), ...(timestamp === undefined ? {} : { timestamp }) };
}

function readEvent(body: string | Buffer): { orderId: string; eventType: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString());
  } catch {
    throw new WebhookVerificationError('BODY_INVALID', 'the body is not JSON');
  }
  const { orderId, eventType } = (parsed ?? {}) as Record<string, unknown>;
  if (typeof orderId !== 'string' || typeof eventType !== 'string') {
    throw new WebhookVerificationError('BODY_INVALID', 'the body is not {"orderId": "…", "eventType": "…"}');
  }
  return { orderId, eventType };
}
