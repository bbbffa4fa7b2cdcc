import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { answers, chooseTestServer } from './helpers/testServer.ts';

// A port nothing listens on: bound, then closed.
async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('choosing the test server', () => {
  const listening = createServer((socket) => socket.end());
  let up = '';
  before(async () => {
    await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
    up = `postgres://postgres@127.0.0.1:${(listening.address() as { port: number }).port}/postgres`;
  });
  after(() => new Promise((resolve) => listening.close(resolve)));

  it('uses the local server when it answers, an embedded one when nothing does', async () => {
    const down = `postgres://postgres@127.0.0.1:${await unusedPort()}/postgres`;
    assert.equal(await answers(up), true);
    assert.equal(await answers(down), false);
    assert.deepEqual(await chooseTestServer({}, up), { kind: 'local', url: up });
    const choice = await chooseTestServer({}, down);
    assert.equal(choice.kind, 'embedded');
  });

  it('uses TEST_DATABASE_URL as given, and an embedded server when TEST_EMBEDDED_PG=1', async () => {
    const down = `postgres://postgres@127.0.0.1:${await unusedPort()}/postgres`;
    assert.deepEqual(await chooseTestServer({ TEST_DATABASE_URL: down }, up), { kind: 'given', url: down });
    assert.equal((await chooseTestServer({ TEST_EMBEDDED_PG: '1', TEST_DATABASE_URL: up }, up)).kind, 'embedded');
  });
});
