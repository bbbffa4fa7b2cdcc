import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { BIN, run, runUntil, writeConfig } from './helpers/cli.ts';
import { waitFor } from './helpers/poll.ts';

// What the demo prints about its server: its pid and temp folder, to check both are gone after.
function serverOf(stdout: string): { pid: number; dir: string } {
  const match = /pid (\d+), data in (\S+)/.exec(stdout);
  assert.ok(match, `the demo names its server:\n${stdout}`);
  return { pid: Number(match[1]), dir: match[2]! };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

describe('demo', () => {
  it('npm start without a config plays the story: every event delivered, one retry, nothing left behind', async () => {
    const result = await run([], {}, 90_000);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /11 of 11 events delivered/);
    const rows = result.stdout.split('\n').filter((line) => /^\s+Order\w+\s+ORD-\d+\s+\w+\s+\d+\s+/.test(line));
    assert.equal(rows.length, 11, result.stdout);
    assert.ok(
      rows.every((line) => /\sdelivered\s+\d+\s+200$/.test(line)),
      rows.join('\n'),
    );
    for (const event of ['Created', 'Accepted', 'Signed', 'Rejected', 'Canceled', 'Expired', 'DueDateUpdated']) {
      assert.ok(
        rows.some((line) => line.includes(`Order${event} `)),
        `Order${event} in the outbox`,
      );
    }
    assert.match(result.stdout, /OrderCreated\s+ORD-1004\s+delivered\s+2\s+200/, 'the 503 was retried');
    assert.match(result.stdout, /ORD-1004\s+attempt 1\s+signature ok\s+-> 503/);
    assert.doesNotMatch(result.stdout, /BAD SIGNATURE/);
    assert.match(result.stdout, /npx order-webhooks migrate --config order-webhooks\.json/);
    const server = serverOf(result.stdout);
    assert.equal(existsSync(server.dir), false, 'temp folder removed');
    assert.equal(alive(server.pid), false, 'PostgreSQL stopped');
  });

  it('Ctrl-C in the middle stops everything and removes the temp folder', async () => {
    // Its own process group, as a terminal's foreground job: Ctrl-C reaches PostgreSQL too.
    const child = spawn(process.execPath, [BIN, 'demo'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      await waitFor(() => stdout.includes('  order app  ') || child.exitCode !== null, { timeoutMs: 60_000, what: 'the story to start' });
      process.kill(-child.pid!, 'SIGINT');
      const code = await Promise.race([
        exited,
        new Promise((_, reject) => setTimeout(() => reject(new Error(`still running 30 s after Ctrl-C:\n${stdout}`)), 30_000).unref()),
      ]);
      assert.equal(code, 130, `${stdout}\n${stderr}`);
      assert.match(stderr, /interrupted; everything it started is stopped and removed/);
      const server = serverOf(stdout);
      assert.equal(existsSync(server.dir), false, 'temp folder removed');
      assert.equal(alive(server.pid), false, 'PostgreSQL stopped');
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    }
  });

  it('with a config file or DATABASE_URL, the same entry point runs the real service instead', async () => {
    const disabled = writeConfig({ webHook: { enabled: false }, database: { url: 'postgres://x@127.0.0.1:1/none' } });
    for (const [args, env] of [
      [['--config', disabled], {}],
      [[], { ORDER_WEBHOOKS_CONFIG: disabled }],
      [[], { DATABASE_URL: 'postgres://x@127.0.0.1:1/none' }],
    ] as const) {
      // Disabled, the service runs idle until stopped.
      const result = await runUntil([...args], '"msg":"started"', env);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /webhooks are disabled/, 'the service, not the demo');
      assert.doesNotMatch(result.stdout, /demo/);
    }
  });
});
