// The LISTEN connection. A NOTIFY is only a latency hint: the journal is the queue, and the caller
// re-scans on every wake-up, on every reconnect, and on its own poll interval.
import pgListen, { type Subscriber } from 'pg-listen';
import { connectionConfig, describeDbError } from '../db.ts';
import type { Logger } from '../log.ts';

export interface ListenerEvents {
  onWake: () => void;
  /** The connection was lost: no NOTIFY reaches us until it is back (the path to the server may be dead too). */
  onLost: () => void;
  /** The connection is gone for good (pg-listen gave up): the service must stop. */
  onFatal: (error: Error) => void;
}

/** How often pg-listen checks that the connection still answers. */
export const LISTEN_CHECK_MS = 5000;
/**
 * How long that check may go unanswered before the connection is replaced. Under the interval: a
 * check still waiting when the next one starts would queue behind it, and pg warns "Calling
 * client.query() when the client is already executing a query".
 */
export const LISTEN_ANSWER_MS = 4000;

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
    // growing pause, and check the connection every 5 s so a silently dead socket is noticed: a
    // check unanswered within LISTEN_ANSWER_MS fails, and pg-listen replaces the connection.
    this.subscriber = pgListen.default(
      connectionConfig(url, {
        name: 'order-webhooks listen',
        statementTimeoutMs: LISTEN_ANSWER_MS - 1000,
        answerTimeoutMs: LISTEN_ANSWER_MS,
      }),
      {
        paranoidChecking: LISTEN_CHECK_MS,
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
        events.onLost();
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
