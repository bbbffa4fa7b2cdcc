// A real TCP proxy on 127.0.0.1 between the service and PostgreSQL. `freeze()` makes the
// connections open at that moment go silent, as a firewall, a NAT or a database failover does: bytes
// are no longer forwarded either way, and no FIN or RST is sent to either side. Connections opened
// afterwards are forwarded as usual.
import { createServer, type Server, type Socket, connect } from 'node:net';

export interface TcpProxy {
  port: number;
  /** `url` with its host and port replaced by the proxy's. */
  via(url: string): string;
  /** Silences every connection open now; new ones still pass. */
  freeze(): void;
  /** Connections forwarding now (not frozen, not closed). */
  readonly live: number;
  /** Connections frozen so far. */
  readonly frozen: number;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
  frozen: boolean;
}

/** `listenPort`: a port to listen on (one a service already tries to reach); default any free one. */
export async function startTcpProxy(target: { host: string; port: number }, listenPort = 0): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let frozenCount = 0;
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    const pair: Pair = { client, upstream, frozen: false };
    pairs.add(pair);
    const forward = (from: Socket, to: Socket) => {
      from.on('data', (chunk) => {
        if (!pair.frozen) to.write(chunk);
      });
      // A frozen connection passes nothing on, its end included: the other side never hears of it.
      from.on('end', () => {
        if (!pair.frozen) to.end();
      });
      from.on('close', () => {
        if (pair.frozen) return;
        pairs.delete(pair);
        to.destroy();
      });
      from.on('error', () => undefined);
    };
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, '127.0.0.1', resolve);
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    via(url) {
      const proxied = new URL(url);
      proxied.hostname = '127.0.0.1';
      proxied.port = String(port);
      return proxied.toString();
    },
    freeze() {
      for (const pair of pairs) {
        if (pair.frozen) continue;
        pair.frozen = true;
        frozenCount++;
      }
    },
    get live() {
      return [...pairs].filter((p) => !p.frozen).length;
    },
    get frozen() {
      return frozenCount;
    },
    async close() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      pairs.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
