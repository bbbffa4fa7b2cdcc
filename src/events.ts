// The seven event types of the spec, in one place for config validation and mapping.
export const EVENT_TYPES = [
  'OrderCreated',
  'OrderAccepted',
  'OrderSigned',
  'OrderRejected',
  'OrderCanceled',
  'OrderExpired',
  'OrderDueDateUpdated',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];
