// Maps one recorded change (old → new row state) onto the webhook events it causes. Pure.
import type { EventType } from '../events.ts';
import { eventId } from './eventId.ts';

/** One row of the change journal, as the trigger recorded it. */
export interface Change {
  id: string;
  orderId: string;
  op: 'INSERT' | 'UPDATE';
  oldState: string | null;
  newState: string | null;
  oldDueDate: string | null;
  newDueDate: string | null;
}

export interface TransitionRule {
  from?: string | string[] | undefined;
  to: string | string[];
  event: EventType;
}

export interface MappingOptions {
  /** Configured rules; they replace the defaults. */
  transitions?: TransitionRule[] | undefined;
  /** `webHook.events`: only these event types are sent. */
  events?: readonly EventType[] | undefined;
}

export interface MappedChange {
  events: EventType[];
  /** The state changed but no rule matched the new state: counted, nothing sent. */
  unmatchedState: boolean;
  /** Events the mapping produced but `webHook.events` left out. */
  filtered: number;
}

// Default rules: a new state whose name is the event's (case-insensitive; both spellings of cancel).
const DEFAULT_EVENT_BY_STATE: ReadonlyMap<string, EventType> = new Map<string, EventType>([
  ['accepted', 'OrderAccepted'],
  ['signed', 'OrderSigned'],
  ['rejected', 'OrderRejected'],
  ['canceled', 'OrderCanceled'],
  ['cancelled', 'OrderCanceled'],
  ['expired', 'OrderExpired'],
]);

function matches(pattern: string | string[] | undefined, state: string | null): boolean {
  if (pattern === undefined) return true;
  const patterns = Array.isArray(pattern) ? pattern : [pattern];
  return patterns.some((p) => p === '*' || p === state);
}

/** The event for a state transition, or undefined when no rule matches. First match wins. */
export function eventForTransition(from: string | null, to: string | null, rules: TransitionRule[] | undefined): EventType | undefined {
  if (rules && rules.length > 0) {
    return rules.find((rule) => matches(rule.from, from) && matches(rule.to, to))?.event;
  }
  if (to === null) return undefined;
  const name = to.toLowerCase();
  return DEFAULT_EVENT_BY_STATE.get(name.startsWith('order') ? name.slice('order'.length) : name);
}

export function mapChange(change: Change, options: MappingOptions = {}): MappedChange {
  const events: EventType[] = [];
  let unmatchedState = false;
  if (change.op === 'INSERT') {
    events.push('OrderCreated');
  } else {
    if (change.oldState !== change.newState) {
      const event = eventForTransition(change.oldState, change.newState, options.transitions);
      if (event) events.push(event);
      else unmatchedState = true;
    }
    if (change.oldDueDate !== change.newDueDate) events.push('OrderDueDateUpdated');
  }
  const allowed = options.events ? events.filter((event) => options.events!.includes(event)) : events;
  return { events: allowed, unmatchedState, filtered: events.length - allowed.length };
}

/** The exact JSON body of the spec, for one event. */
export function eventBody(orderId: string, eventType: EventType): string {
  return JSON.stringify({ orderId, eventType });
}

/** One event of a change, ready to send: its id, order, type and the exact body. */
export interface MappedEvent {
  eventId: string;
  orderId: string;
  eventType: EventType;
  body: string;
}

/**
 * A recorded change's events with their ids and bodies. `installation` is this installation's
 * random id (the key of every event id); `changedAtUs` the change's time in microseconds, as text.
 */
export function eventsOfChange(
  change: Change & { changedAtUs: string },
  installation: string,
  options: MappingOptions = {},
  /** The endpoint's name: part of the ids of every endpoint but `default`. */
  endpoint?: string,
): Omit<MappedChange, 'events'> & { events: MappedEvent[] } {
  const mapped = mapChange(change, options);
  const source = { changeId: change.id, changedAtUs: change.changedAtUs, orderId: change.orderId };
  return {
    ...mapped,
    events: mapped.events.map((type, n) => ({
      eventId: eventId(installation, source, n, endpoint),
      orderId: change.orderId,
      eventType: type,
      body: eventBody(change.orderId, type),
    })),
  };
}
