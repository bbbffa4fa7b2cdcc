// Which PostgreSQL server a test run uses: the one TEST_DATABASE_URL names; else the local one on
// 127.0.0.1:5432 when it answers; else (or with TEST_EMBEDDED_PG=1) an embedded one for the run.
import { connect } from 'node:net';

export const LOCAL_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

export type TestServerChoice = { kind: 'given' | 'local'; url: string } | { kind: 'embedded'; reason: string };

/** Whether something accepts TCP connections at the URL's host and port. */
export function answers(url: string, timeoutMs = 2_000): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname.replace(/^\[|\]$/g, ''), port: Number(port || 5432) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export async function chooseTestServer(env: NodeJS.ProcessEnv, localUrl = LOCAL_URL): Promise<TestServerChoice> {
  if (env.TEST_EMBEDDED_PG === '1') return { kind: 'embedded', reason: 'TEST_EMBEDDED_PG=1' };
  // A server named on purpose is used as it is: if it is down, the tests say so.
  if (env.TEST_DATABASE_URL) return { kind: 'given', url: env.TEST_DATABASE_URL };
  if (await answers(localUrl)) return { kind: 'local', url: localUrl };
  const { host } = new URL(localUrl);
  return { kind: 'embedded', reason: `TEST_DATABASE_URL is not set and nothing answers on ${host}` };
}
