// The demo's webhook receiver on 127.0.0.1: verifies each X-Signature as a real receiver should,
// and can be "down" (answering 503) for a while so that a retry shows.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifySignature } from '../delivery/sign.ts';

export interface Webhook {
  eventId: string;
  attempt: number;
  orderId: string;
  eventType: string;
  signatureOk: boolean;
  /** What the receiver answered. */
  status: number;
}

export interface DemoReceiver {
  url: string;
  /** Every webhook received, in arrival order. */
  received: Webhook[];
  /** Answer 503 to the next `count` webhooks, as a receiver that is briefly down would. */
  failNext(count: number): void;
  close(): Promise<void>;
}

export async function startDemoReceiver(secret: string, onWebhook: (webhook: Webhook) => void): Promise<DemoReceiver> {
  const received: Webhook[] = [];
  let failing = 0;
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('error', () => response.destroy());
    request.on('end', () => {
      // Verify over the raw bytes, before any JSON parsing.
      const raw = Buffer.concat(chunks);
      const signatureOk = verifySignature(secret, raw, request.headers['x-signature'] as string | undefined);
      let body: { orderId?: unknown; eventType?: unknown } = {};
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        body = {}; // reported below as a webhook without order or event
      }
      let status = 200;
      if (!signatureOk) status = 401;
      else if (failing > 0) {
        failing--;
        status = 503;
      }
      const webhook: Webhook = {
        eventId: String(request.headers['x-event-id'] ?? ''),
        attempt: Number(request.headers['x-event-attempt'] ?? 0),
        orderId: String(body.orderId ?? '?'),
        eventType: String(body.eventType ?? '?'),
        signatureOk,
        status,
      };
      received.push(webhook);
      onWebhook(webhook);
      response.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'not now');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/automation`,
    received,
    failNext: (count) => {
      failing = count;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
