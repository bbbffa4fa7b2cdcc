// A dispatcher's slots, decided without I/O: how many events are worth claiming, and when a claimed
// event waited too long for a slot to be sent.

/** Whether a claimed event that waited `waitedMs` for a slot must go back unsent: it had half its lease. */
export function isStale(waitedMs: number, leaseMs: number): boolean {
  return waitedMs > leaseMs / 2;
}

/**
 * How many events are worth claiming now: up to one batch beyond the free slots, and none while
 * some wait and fewer than half a batch is free (one claim per event would make claims the cost).
 */
export function claimRoom(concurrency: number, inFlight: number, waiting: number): number {
  const room = 2 * concurrency - inFlight - waiting;
  if (room <= 0 || (waiting > 0 && room < concurrency / 2)) return 0;
  return room;
}
