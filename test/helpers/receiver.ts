// A real HTTP receiver on 127.0.0.1 and a free port, recording every request.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from './poll.ts';

export interface Received {
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
}

export type Responder = (request: Received, response: ServerResponse) => void;

export interface Receiver {
  url: string;
  port: number;
  requests: Received[];
  /** How to answer; default 200. Change it at any time. */
  respond: Responder;
  waitForCount(count: number, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

export async function startReceiver(path = '/automation', port = 0): Promise<Receiver> {
  const receiver: Partial<Receiver> & { requests: Received[] } = {
    requests: [],
    respond: (_request, response) => response.end('ok'),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const received = { url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
      receiver.requests.push(received);
      receiver.respond!(received, res);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actualPort = (server.address() as AddressInfo).port;
  receiver.port = actualPort;
  receiver.url = `http://127.0.0.1:${actualPort}${path}`;
  receiver.waitForCount = (count, timeoutMs = 20_000) =>
    waitFor(() => (receiver.requests.length >= count ? receiver.requests : undefined), {
      timeoutMs,
      what: `${count} webhooks (have ${receiver.requests.length})`,
    });
  receiver.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver as Receiver;
}
