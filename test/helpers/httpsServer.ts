// A real HTTPS receiver on 127.0.0.1 and a free port; with a CA it asks for and checks a client
// certificate (mutual TLS) and records whose it was.
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface HttpsReceiver {
  url: string;
  /** One entry per request: the client certificate's CN, or null without one. */
  clients: (string | null)[];
  close(): Promise<void>;
}

export async function startHttpsReceiver({
  key,
  cert,
  clientCa,
}: {
  key: string;
  cert: string;
  clientCa?: string;
}): Promise<HttpsReceiver> {
  const clients: (string | null)[] = [];
  const server: Server = createServer(
    { key, cert, ...(clientCa ? { ca: [clientCa], requestCert: true, rejectUnauthorized: true } : {}) },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      req.resume();
      req.on('end', () => {
        clients.push(peer?.subject ? String(peer.subject.CN) : null);
        res.end('ok');
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}/automation`,
    clients,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
