// The optional HTTP port for orchestrators and monitoring: /healthz (the process answers),
// /readyz (it can do its work), /metrics (Prometheus), and with http.ui the operator's page
// (src/http/ui.ts). No framework.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HttpConfig } from '../config/config.ts';
import { ConfigError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { UiHandler } from './ui.ts';

export interface Readiness {
  ready: boolean;
  /** One line: why not, or what state it is ready in. */
  reason: string;
}

export interface Probes {
  ready(): Promise<Readiness>;
  metrics(): Promise<{ contentType: string; body: string }>;
}

export interface HttpServer {
  /** The port it listens on (the configured one, or the one chosen for port 0). */
  readonly port: number;
  close(): Promise<void>;
}

const TEXT = 'text/plain; charset=utf-8';

export async function startHttpServer(config: HttpConfig, probes: Probes, log: Logger, ui?: UiHandler): Promise<HttpServer> {
  const server = createServer((request, response) => {
    void answer(request, response, probes, ui).catch((error: unknown) => {
      log.warn({ path: request.url, error: (error as Error).message }, 'http: answering failed');
      if (!response.headersSent) reply(response, 500, TEXT, 'internal error\n');
      else response.destroy();
    });
  });
  server.on('clientError', (_error, socket) => socket.destroy());
  // Probes are short: a client that holds a connection open must not keep shutdown waiting.
  server.keepAliveTimeout = 5000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        new ConfigError(
          `http: cannot listen on ${config.host}:${config.port}: ${error.code === 'EADDRINUSE' ? 'the port is in use' : error.message}${error.code ? ` (${error.code})` : ''}`,
        ),
      );
    });
    server.listen(config.port, config.host, () => resolve());
  });
  server.on('error', (error) => log.warn({ error: error.message }, 'http server error'));
  const port = (server.address() as AddressInfo).port;
  log.info({ host: config.host, port }, `http listening: /healthz /readyz /metrics${ui ? ' and the web page at /' : ''}`);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function answer(request: IncomingMessage, response: ServerResponse, probes: Probes, ui: UiHandler | undefined): Promise<void> {
  const url = new URL(request.url ?? '/', 'http://localhost');
  const path = url.pathname;
  // The probes stay open without the page's token: orchestrators and Prometheus call them.
  if (ui && !['/healthz', '/readyz', '/metrics'].includes(path)) return ui(request, response, url);
  if (!['/healthz', '/readyz', '/metrics'].includes(path))
    return reply(response, 404, TEXT, 'not found: try /healthz, /readyz or /metrics\n');
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('Allow', 'GET, HEAD');
    return reply(response, 405, TEXT, 'method not allowed\n');
  }
  if (path === '/healthz') return reply(response, 200, TEXT, 'ok\n');
  if (path === '/readyz') {
    const { ready, reason } = await probes.ready();
    return reply(response, ready ? 200 : 503, TEXT, `${ready ? 'ready' : 'not ready'}: ${reason}\n`);
  }
  const { contentType, body } = await probes.metrics();
  reply(response, 200, contentType, body);
}

function reply(response: ServerResponse, status: number, contentType: string, body: string): void {
  response.writeHead(status, { 'Content-Type': contentType, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
  response.end(response.req.method === 'HEAD' ? undefined : body);
}
