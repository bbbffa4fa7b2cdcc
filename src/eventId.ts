// Event ids (X-Event-Id): UUID version 7 (RFC 9562), 48 bits of Unix milliseconds then random bits.
// Time-ordered, so the outbox's event_id index grows at its right edge instead of dirtying a random
// leaf page per event (each one a full-page image in the WAL after every checkpoint), and an id
// tells roughly when its event was created. 74 random bits keep ids unguessable and unique.
import { randomFillSync } from 'node:crypto';

/** `count` new event ids, as UUID strings. */
export function newEventIds(count: number, now = Date.now()): string[] {
  const random = randomFillSync(Buffer.alloc(16 * count));
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const b = random.subarray(16 * i, 16 * i + 16);
    b.writeUIntBE(now, 0, 6);
    b[6] = (b[6]! & 0x0f) | 0x70; // version 7
    b[8] = (b[8]! & 0x3f) | 0x80; // variant 10
    const h = b.toString('hex');
    ids.push(`${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`);
  }
  return ids;
}
