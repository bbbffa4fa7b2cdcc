// order-webhooks/verify: what a receiver written in Node needs to check our webhooks, on nothing
// but Node. docs/receivers/README.md shows it in use.
export { type VerificationErrorCode, WebhookVerificationError } from './error.ts';
export { headerValue, type WebhookHeaders } from './headers.ts';
export {
  type Claim,
  MemoryProcessedEvents,
  type MemoryProcessedEventsOptions,
  type Processed,
  type ProcessedEvents,
  processOnce,
} from './processedEvents.ts';
export {
  DEFAULT_TOLERANCE_SECONDS,
  type RawBody,
  type SignatureEncoding,
  type StandardWebhooksOptions,
  verifyStandardWebhook,
  verifyXSignature,
} from './signatures.ts';
export { type VerifiedWebhook, type VerifyOptions, verifyWebhook } from './webhook.ts';
