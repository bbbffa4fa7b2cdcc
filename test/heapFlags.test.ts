import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { BIN } from './helpers/cli.ts';

/**
 * Loads the bin in a node started with `nodeArgs` (as `node … bin/order-webhooks.js --help` would),
 * then churns through short-lived objects and returns the young generation's largest size, in MB.
 */
function youngGenerationMb(nodeArgs: string[], env: NodeJS.ProcessEnv = {}): Promise<number> {
  const script = `
    import v8 from 'node:v8';
    process.argv = [process.execPath, ${JSON.stringify(BIN)}, '--help'];
    await import(${JSON.stringify(pathToFileURL(BIN).href)});
    let largest = 0;
    const kept = [];
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 20000; i++) {
        const garbage = { i, text: 'x'.repeat(20) + i, list: [i, i + 1] };
        if (i % 50 === 0) kept.push(garbage);
      }
      if (kept.length > 100000) kept.splice(0, 50000);
      largest = Math.max(largest, v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);
    }
    process.stderr.write('young ' + largest / 2 ** 20 + '\\n');`;
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

describe('the heap bound, however the service is started', () => {
  it('the shebang: a 4 MB semi-space (young generation 2 × 4 MB)', async () => {
    assert.equal(await youngGenerationMb(['--max-semi-space-size=4', '--heap-growing-percent=100']), 8);
  });

  it('plain `node bin/order-webhooks.js`: the bin keeps the young generation at its initial 2 × 1 MB', async () => {
    assert.equal(await youngGenerationMb([]), 2);
  });

  it("flags given to node win over the bin's, on the command line and in NODE_OPTIONS", async () => {
    assert.equal(await youngGenerationMb(['--max-semi-space-size=16']), 32);
    assert.equal(await youngGenerationMb([], { NODE_OPTIONS: '--max-semi-space-size=8' }), 16);
  });
});
