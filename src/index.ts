// The package's module (`import … from 'order-webhooks'`): the webhook's event types and the
// receiver kit. The service itself is the command, `order-webhooks` (bin/order-webhooks.js).
export { EVENT_TYPES, type EventType } from './events.ts';
export * from './verify/index.ts';
