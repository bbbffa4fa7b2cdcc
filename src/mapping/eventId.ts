// Event ids (X-Event-Id) are UUID version 7 (RFC 9562) derived from the change they come from: 48
// bits of the change's `changed_at` milliseconds (when the order transaction started), then 74 bits of an HMAC of the change (journal id,
// exact time, order id), the event's place among the change's events, keyed by this installation's
// random id. The same change always gives the same id, so no commit of ours needs to wait for the
// disk: if a server crash undoes a record, the change is mapped again and any resend carries the
// id the receiver has already seen. Time-ordered, the event_id index grows at its right edge instead
// of dirtying a random leaf page per event (each a full-page image in the WAL after a checkpoint).
import { createHmac } from 'node:crypto';

export interface EventSource {
  /** The journal row's id. */
  changeId: string;
  /** When the change was recorded, in microseconds since the epoch (exact, as text). */
  changedAtUs: string;
  orderId: string;
}

/** The endpoint that `webHook` configures: its ids are derived without a name, as before there were several. */
const DEFAULT_ENDPOINT = 'default';

/**
 * The id of the `n`th event (from 0) of a change to `endpoint`, for the installation whose random id
 * is `installation`. Another endpoint's name is part of the key, so each endpoint's event has its own id.
 */
export function eventId(installation: string, source: EventSource, n: number, endpoint = DEFAULT_ENDPOINT): string {
  const named = endpoint === DEFAULT_ENDPOINT ? '' : `\n${endpoint}`;
  const mac = createHmac('sha256', installation)
    .update(`${source.changeId}\n${source.changedAtUs}\n${source.orderId}\n${n}${named}`)
    .digest();
  return uuid7(Number(source.changedAtUs) / 1000, mac);
}

/**
 * The id of a backfilled event: the event `sourceEventId` (of another endpoint) made again for
 * `endpoint`. Same time as its source, so ids stay sorted by the change's time.
 */
export function backfillEventId(installation: string, sourceEventId: string, endpoint: string): string {
  const mac = createHmac('sha256', installation).update(`backfill\n${sourceEventId}\n${endpoint}`).digest();
  return uuid7(eventTimeMs(sourceEventId), mac);
}

function uuid7(timeMs: number, mac: Buffer): string {
  const b = Buffer.alloc(16);
  b.writeUIntBE(Math.floor(timeMs), 0, 6);
  mac.copy(b, 6, 0, 10);
  b[6] = (b[6]! & 0x0f) | 0x70; // version 7
  b[8] = (b[8]! & 0x3f) | 0x80; // variant 10
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** When the change behind an event id was recorded (its first 48 bits), in milliseconds since the epoch. */
export function eventTimeMs(id: string): number {
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
