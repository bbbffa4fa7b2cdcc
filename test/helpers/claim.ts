// The journal's claim as the event store plans it, for one endpoint `default` with room for all:
// what the journal and outage tests look at.
import type { Journal } from '../../src/outbox/journal.ts';
import { planClaim } from '../../src/outbox/store.ts';

export async function claimPlanned(journal: Journal, installation: string, limit: number, leaseMs: number) {
  const changes = await journal.claim(limit, leaseMs);
  return {
    changes: changes.length,
    ...planClaim(changes, installation, undefined, [{ name: 'default' }], new Map([['default', Infinity]])),
  };
}
