// A down endpoint's probe, for its dispatcher: one real event sent when the probe is due, by the one
// instance that holds it (src/outbox/endpointState.ts). The event is the earliest due in the outbox
// (the failures that opened the breaker are there); a lone endpoint's new changes wait in the
// journal meanwhile, so with nothing due one of them is moved to the outbox for the next probe.
import type { Logger } from '../log.ts';
import type { ClaimedEvent, EventStore } from './eventStore.ts';
import type { EndpointGate } from './gate.ts';

export interface ProbeOptions {
  endpoint: string;
  leaseMs: number;
  /** How long the probe stays with this instance (DispatcherOptions.probeLeaseMs); default leaseMs. */
  probeLeaseMs?: number;
  /** Moves one change of this endpoint from the journal to the outbox, unsent; resolves with whether one moved. */
  moveForProbe?: () => Promise<boolean>;
}

export class Probe {
  /** The event sent as the probe, while it is claimed or in flight. */
  private eventId: string | undefined;
  private claiming = false;

  constructor(
    private readonly store: Pick<EventStore, 'claimDue'>,
    private readonly gate: EndpointGate,
    private readonly log: Logger,
    private readonly options: ProbeOptions,
  ) {}

  /** Whether this event is the probe. */
  is(event: ClaimedEvent): boolean {
    return event.eventId === this.eventId;
  }

  /**
   * Claims the probe, when due, and its event: resolves with the event to send (none when the probe
   * is not ours or not due, or there was nothing to send). `moved` is called when an event was moved
   * to the outbox for the next try.
   */
  async claim(moved: () => void): Promise<ClaimedEvent[]> {
    const { endpoint, leaseMs } = this.options;
    if (this.claiming || this.eventId !== undefined || !this.gate.probeDue(endpoint)) return [];
    this.claiming = true;
    try {
      if (!(await this.gate.claimProbe(endpoint, this.options.probeLeaseMs ?? leaseMs))) return [];
      let events: ClaimedEvent[];
      try {
        events = await this.store.claimDue(endpoint, 1, leaseMs, this.gate.instance);
      } catch (error) {
        void this.gate.releaseProbe(endpoint);
        throw error;
      }
      if (events.length === 0) {
        await this.gate.releaseProbe(endpoint);
        if (await this.options.moveForProbe?.()) moved();
        return [];
      }
      this.eventId = events[0]!.eventId;
      this.log.info({ endpoint, eventId: this.eventId }, 'endpoint is down: sending one event as a probe');
      return events;
    } finally {
      this.claiming = false;
    }
  }

  /** The probe's event was answered: whether `event` was the probe. */
  answered(event: ClaimedEvent): boolean {
    if (!this.is(event)) return false;
    this.eventId = undefined;
    return true;
  }

  /** The probe's event goes back unsent: another instance may take the probe. */
  givenBack(event: ClaimedEvent): void {
    if (!this.is(event)) return;
    this.eventId = undefined;
    void this.gate.releaseProbe(this.options.endpoint);
  }
}
