import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { BIN } from './helpers/cli.ts';

// V8's sizes change with node releases, so these tests assert relations, not V8's numbers: a
// semi-space bound holds the young generation at or under two semi-spaces (with some slack for
// V8's rounding), and the same churn without the bound grows it past that.
const SLACK = 1.25;

/**
 * Starts a node with `nodeArgs` that loads the bin (as `node … bin/order-webhooks.js --help` would),
 * unless `bin` is false, then churns through short-lived objects and returns the young generation's
 * largest size, in MB.
 */
function youngGeneration(nodeArgs: string[], { env = {}, bin = true }: { env?: NodeJS.ProcessEnv; bin?: boolean } = {}): Promise<number> {
  const script = `
    import v8 from 'node:v8';
    const young = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 2 ** 20;
    process.argv = [process.execPath, ${JSON.stringify(BIN)}, '--help'];
    if (${bin}) await import(${JSON.stringify(pathToFileURL(BIN).href)});
    let largest = 0;
    const kept = [];
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 20000; i++) {
        const garbage = { i, text: 'x'.repeat(20) + i, list: [i, i + 1] };
        if (i % 50 === 0) kept.push(garbage);
      }
      if (kept.length > 100000) kept.splice(0, 50000);
      largest = Math.max(largest, young());
    }
    process.stderr.write('young ' + largest + '\\n');`;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...nodeArgs, '--input-type=module', '-e', script],
      { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } },
      (error, _stdout, stderr) => {
        const match = /young ([\d.]+)/.exec(stderr);
        if (error || !match) reject(new Error(`${error?.message}\n${stderr}`));
        else resolve(Number(match[1]));
      },
    );
  });
}

/** The node flags on the bin's shebang line, which `./bin/order-webhooks.js`, npm and npx run it with. */
function shebangFlags(): string[] {
  const first = readFileSync(BIN, 'utf8').split('\n', 1)[0]!;
  const words = first.split(/\s+/);
  assert.match(first, /^#!\/usr\/bin\/env -S node /);
  return words.slice(words.indexOf('node') + 1);
}

const semiSpaceMb = (flags: string[]): number => {
  const flag = flags.find((f) => f.startsWith('--max-semi-space-size='));
  assert.ok(flag, `--max-semi-space-size in ${flags.join(' ')}`);
  return Number(flag.split('=')[1]);
};

describe('the heap bound, however the service is started', () => {
  // The churn on V8's defaults, without the bin: how far the young generation grows unbounded.
  const unbounded = youngGeneration([], { bin: false });
  unbounded.catch(() => undefined); // awaited by the tests, which report its failure
  const shebangBound = () => 2 * semiSpaceMb(shebangFlags()) * SLACK;

  it("the shebang's semi-space bound holds the young generation where V8's defaults let it grow", async () => {
    const young = await youngGeneration(shebangFlags());
    assert.ok(young <= shebangBound(), `young generation ${young} MB, over 2 × the shebang's semi-space (${shebangBound()} MB with slack)`);
    const free = await unbounded;
    assert.ok(free > shebangBound(), `without the bound the churn grows it past ${shebangBound()} MB (it grew to ${free} MB)`);
  });

  it("plain `node bin/order-webhooks.js` (no shebang): the bin keeps the young generation within the shebang's bound", async () => {
    // Its initial size, in fact (--semi-space-growth-factor=1): smaller than the shebang's, whatever V8 starts with.
    const young = await youngGeneration([]);
    assert.ok(young <= shebangBound(), `young generation ${young} MB, over ${shebangBound()} MB`);
    assert.ok(young < (await unbounded), 'smaller than without the bin');
  });

  it("flags given to node win over the bin's, on the command line and in NODE_OPTIONS", async () => {
    for (const [semi, young] of [
      [16, await youngGeneration(['--max-semi-space-size=16'])],
      [8, await youngGeneration([], { env: { NODE_OPTIONS: '--max-semi-space-size=8' } })],
    ] as const) {
      // Grown past the bin's own bound and held by the one given.
      assert.ok(young > shebangBound(), `semi-space ${semi}: grew to ${young} MB only, within the bin's bound`);
      assert.ok(young <= 2 * semi * SLACK, `semi-space ${semi}: grew to ${young} MB, over 2 × ${semi} MB`);
    }
  });
});
