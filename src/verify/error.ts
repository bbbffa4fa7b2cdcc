// The one error a failed verification throws: receivers answer every code the same way (a 4xx,
// nothing processed) and log the code, never the secret.

export type VerificationErrorCode =
  /** The body given is not the raw bytes received (a parsed object, say): signatures cover bytes. */
  | 'BODY_NOT_RAW'
  /** A header the options ask to verify is absent or empty. */
  | 'HEADER_MISSING'
  /** No signature in the request matches any secret. */
  | 'SIGNATURE_MISMATCH'
  /** `webhook-timestamp` is not a whole number of seconds. */
  | 'TIMESTAMP_INVALID'
  /** `webhook-timestamp` is further in the past than the tolerance: a replay, or a clock that is off. */
  | 'TIMESTAMP_TOO_OLD'
  /** `webhook-timestamp` is further in the future than the tolerance: a clock that is off. */
  | 'TIMESTAMP_TOO_NEW'
  /** `X-Event-Id` differs from the signed `webhook-id`. */
  | 'EVENT_ID_MISMATCH'
  /** The body verified but is not the webhook's JSON (`{"orderId","eventType"}`). */
  | 'BODY_INVALID';

export class WebhookVerificationError extends Error {
  override name = 'WebhookVerificationError';

  constructor(
    readonly code: VerificationErrorCode,
    message: string,
  ) {
    super(message);
  }
}
