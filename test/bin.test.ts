import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BIN } from './helpers/cli.ts';

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a file as an executable, the way npx and `npm start` do: through its shebang. */
function execute(file: string, args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { PATH: process.env.PATH, HOME: process.env.HOME } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('the command (bin/order-webhooks.js)', () => {
  const folders: string[] = [];
  after(() => {
    for (const dir of folders) rmSync(dir, { recursive: true, force: true });
  });

  /** A copy of the bin in a checkout of its own, with the sources and compiled files given. */
  function checkout(files: Record<string, string>): string {
    const root = mkdtempSync(join(tmpdir(), 'order-webhooks-bin-'));
    folders.push(root);
    mkdirSync(join(root, 'bin'));
    copyFileSync(BIN, join(root, 'bin', 'order-webhooks.js'));
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(root, path, '..'), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    return join(root, 'bin', 'order-webhooks.js');
  }

  it('runs the compiled CLI through its shebang', async () => {
    const result = await execute(BIN, ['--help']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Usage: order-webhooks /);
  });

  it('without dist/ says to build, in one line, and exits 2', async () => {
    const result = await execute(checkout({ 'src/cli/main.ts': '' }), ['--help']);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'order-webhooks: dist/ is not built; run `npm run build` (or `npm ci`) first\n');
    assert.equal(result.stdout, '');
  });

  it('refuses a dist/ older than a source file, and runs it once rebuilt', async () => {
    const bin = checkout({
      'src/cli/main.ts': '',
      'src/delivery/sign.ts': '',
      'dist/cli/main.js': "console.log('compiled ran');\n",
      'dist/delivery/sign.js': '',
    });
    const root = join(bin, '..', '..');
    const [earlier, later] = [new Date(Date.now() - 60_000), new Date()];
    for (const file of ['dist/cli/main.js', 'dist/delivery/sign.js', 'src/cli/main.ts']) utimesSync(join(root, file), earlier, earlier);
    utimesSync(join(root, 'src/delivery/sign.ts'), later, later);
    const stale = await execute(bin, []);
    assert.equal(stale.code, 2);
    assert.equal(stale.stderr, 'order-webhooks: dist/ is older than src/delivery/sign.ts; run `npm run build` (or `npm ci`) first\n');

    utimesSync(join(root, 'dist/delivery/sign.js'), later, later);
    const fresh = await execute(bin, []);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.equal(fresh.stdout, 'compiled ran\n');
  });
});
