// The LISTEN connection. A NOTIFY is only a latency hint: the journal is the queue, and the caller
// re-scans on every wake-up, on every reconnect, and on its own poll interval.
import pgListen, { type Subscriber } from 'pg-listen';
import { describeDbError } from '../db.ts';
import type { Logger } from '../log.ts';

export interface ListenerEvents {
  onWake: () => void;
  /** The connection is gone for good (pg-listen gave up): the service must stop. */
  onFatal: (error: Error) => void;
}

export class WakeListener {
  private readonly subscriber: Subscriber;
  private closing = false;
  /** Whether LISTEN is in place now: NOTIFYs reach us only then. */
  connected = false;
  /** How many times the connection was lost and reconnecting began (for metrics). */
  reconnects = 0;

  constructor(
    url: string,
    private readonly channel: string,
    private readonly log: Logger,
    events: ListenerEvents,
  ) {
    // pg-listen's defaults give up reconnecting after 3 s; we keep trying for 10 minutes, with a
    // growing pause, and check the connection every 5 s so a silently dead socket is noticed.
    this.subscriber = pgListen.default(
      { connectionString: url, application_name: 'order-webhooks listen' },
      {
        paranoidChecking: 5000,
        retryInterval: (attempt: number) => Math.min(250 * 2 ** attempt, 5000),
        retryLimit: Infinity,
        retryTimeout: 10 * 60 * 1000,
        parse: (payload: string) => payload,
      },
    );
    this.subscriber.events.on('notification', () => events.onWake());
    this.subscriber.events.on('reconnect', (attempt) => {
      this.connected = false;
      if (attempt === 1) {
        this.reconnects++;
        log.warn('listen connection lost; reconnecting');
        events.onWake(); // an idle drainer gives up the wake lock: no NOTIFY would reach it now
      }
    });
    this.subscriber.events.on('connected', () => {
      // After a reconnect, changes committed while we were away have sent no NOTIFY we heard.
      log.info('listen connection (re)established');
      this.connected = true;
      events.onWake();
    });
    this.subscriber.events.on('error', (error) => {
      this.connected = false;
      if (this.closing) return;
      log.error({ error: describeDbError(error) }, 'listen connection failed for good');
      events.onFatal(error);
    });
  }

  async start(): Promise<void> {
    await this.subscriber.connect();
    await this.subscriber.listenTo(this.channel);
    this.connected = true;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.connected = false;
    await this.subscriber.close().catch((error) => this.log.debug({ error: describeDbError(error) }, 'closing listen connection'));
  }
}
