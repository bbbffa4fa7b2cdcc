// The bench's webhook receiver, in its own process so that it does not take CPU from the service's
// event loop: verifies every signature, records each arrival, answers 200 (after a delay for W4), or
// answers another status without recording anything (an outage, W5: 'answer' switches it).
// Driven by its parent over IPC: 'phase' resets the records, 'collect' returns them.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifySignature } from '../src/delivery/sign.ts';
import { now } from './clock.ts';

export type ReceiverRequest =
  | { type: 'phase'; delayMs: number; status?: number }
  | { type: 'answer'; status: number }
  | { type: 'collect' }
  | { type: 'count' };

export interface Arrival {
  /** The request body: `{"orderId","eventType"}`, which the bench makes unique per change. */
  body: string;
  eventId: string;
  /** Milliseconds on the shared wall clock (see clock.ts). */
  at: number;
}

export type ReceiverMessage =
  | { type: 'listening'; port: number }
  | { type: 'phase' }
  | { type: 'answer' }
  | { type: 'collect'; arrivals: Arrival[]; badSignatures: number; other: number }
  | { type: 'count'; count: number; rejected: number };

const secret = process.env.BENCH_SECRET ?? '';
let delayMs = 0;
/** What to answer; anything but 200 is a failed attempt, counted in `rejected` and not recorded. */
let status = 200;
let rejected = 0;
let arrivals: Arrival[] = [];
let badSignatures = 0;
/** Requests without an event id: the bare got loop's. */
let other = 0;

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const at = now();
    if (status !== 200) {
      rejected++;
      res.statusCode = status;
      res.end('down');
      return;
    }
    const body = Buffer.concat(chunks);
    if (!verifySignature(secret, body, req.headers['x-signature'] as string | undefined)) badSignatures++;
    const eventId = req.headers['x-event-id'];
    if (typeof eventId === 'string') arrivals.push({ body: body.toString('utf8'), eventId, at });
    else other++;
    if (delayMs > 0) setTimeout(() => res.end('ok'), delayMs);
    else res.end('ok');
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.send!({ type: 'listening', port: (server.address() as AddressInfo).port } satisfies ReceiverMessage);
});

process.on('message', (message: ReceiverRequest) => {
  if (message.type === 'phase') {
    delayMs = message.delayMs;
    status = message.status ?? 200;
    rejected = 0;
    arrivals = [];
    badSignatures = 0;
    other = 0;
    process.send!({ type: 'phase' } satisfies ReceiverMessage);
  } else if (message.type === 'answer') {
    status = message.status;
    process.send!({ type: 'answer' } satisfies ReceiverMessage);
  } else if (message.type === 'collect') {
    process.send!({ type: 'collect', arrivals, badSignatures, other } satisfies ReceiverMessage);
  } else if (message.type === 'count') {
    process.send!({ type: 'count', count: arrivals.length + other, rejected } satisfies ReceiverMessage);
  }
});
// The parent going away ends us too.
process.on('disconnect', () => {
  server.closeAllConnections();
  server.close();
  process.exit(0);
});
