// The deploy files (deploy/), each checked by what this machine can run: the systemd unit by
// systemd-analyze; the Dockerfile and the Kubernetes manifests (no image can be built here) parsed
// and held against the service's config, routes and the bench's memory figure; their config run.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { parseConfig } from '../src/config/config.ts';
import { run, startService, writeConfig } from './helpers/cli.ts';
import { createOrdersTable, createTestDatabase } from './helpers/db.ts';
import { waitFor } from './helpers/poll.ts';
import { startReceiver } from './helpers/receiver.ts';
import { available, exec, shellEnv } from './helpers/shell.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const UNIT = join(ROOT, 'deploy', 'order-webhooks.service');

/** A unit file's [Service] directives, each with every value it was given. */
function directives(text: string): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const match = /^(\w+)=(.*)$/.exec(line.trim());
    if (match) found.set(match[1]!, [...(found.get(match[1]!) ?? []), match[2]!]);
  }
  return found;
}

/** Every `{"env": NAME}` or `{"file": PATH}` a config names, by kind. */
function secretSources(value: unknown, kind: 'env' | 'file'): string[] {
  if (value === null || typeof value !== 'object') return [];
  const object = value as Record<string, unknown>;
  if (Object.keys(object).length === 1 && typeof object[kind] === 'string') return [object[kind] as string];
  return Object.values(object).flatMap((child) => secretSources(child, kind));
}

/** The bench's peak RSS figures of the service (docs/performance.md tables), in MB. */
function benchPeakRssMb(): number {
  const rows = read('docs/performance.md')
    .split('\n')
    .filter((line) => line.startsWith('|') && /peak RSS/.test(line));
  const figures = rows.flatMap((row) =>
    row
      .split('|')
      .slice(2)
      .filter((cell) => !cell.includes('≤'))
      .flatMap((cell) => [...cell.matchAll(/\d+/g)].map((m) => Number(m[0]))),
  );
  assert.ok(figures.length >= 2, `peak RSS figures found in docs/performance.md: ${rows.join(' / ')}`);
  return Math.max(...figures);
}

const mebibytes = (quantity: string) => {
  const match = /^(\d+)(Mi|Gi)$/.exec(quantity);
  assert.ok(match, `a memory quantity in Mi or Gi: ${quantity}`);
  return Number(match[1]) * (match[2] === 'Gi' ? 1024 : 1);
};

describe('deploy: the systemd unit', async () => {
  const analyze = await available('systemd-analyze');
  const unit = directives(readFileSync(UNIT, 'utf8'));

  it(analyze ? 'systemd-analyze verify finds nothing to report' : 'SKIPPED: systemd-analyze is not installed here', {
    skip: !analyze,
  }, async (t) => {
    let file = UNIT;
    const node = unit.get('ExecStart')![0]!.split(' ')[0]!;
    if (!existsSync(node)) {
      // verify checks that ExecStart's program exists: this machine's node stands in for it.
      t.diagnostic(`${node} is not on this machine: verified with ${process.execPath} in its place`);
      const dir = mkdtempSync(join(tmpdir(), 'order-webhooks-unit-'));
      after(() => rmSync(dir, { recursive: true, force: true }));
      file = join(dir, 'order-webhooks.service');
      writeFileSync(file, readFileSync(UNIT, 'utf8').replace(`ExecStart=${node} `, `ExecStart=${process.execPath} `));
    }
    const verified = await exec('systemd-analyze', ['verify', file], ROOT);
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(verified.stderr + verified.stdout, '', 'no warning: every directive known and well-formed');
    const security = await exec('systemd-analyze', ['security', '--offline=yes', file], ROOT);
    const level = /Overall exposure level for [\w.-]+: ([\d.]+)/.exec(security.stdout + security.stderr);
    if (!level) t.diagnostic(`systemd-analyze security --offline gave no level here: ${security.stderr.trim()}`);
    else assert.ok(Number(level[1]) <= 2, `exposure ${level[1]} (0 best, 10 worst) is at most 2`);
  });

  it('runs as a user of its own, restarts on failure, hardened', () => {
    assert.deepEqual(unit.get('DynamicUser'), ['yes']);
    assert.deepEqual(unit.get('User'), ['order-webhooks']);
    assert.deepEqual(unit.get('Restart'), ['on-failure']);
    assert.deepEqual(unit.get('RestartPreventExitStatus'), ['2'], 'a config to fix is not restarted in a loop');
    for (const [key, value] of Object.entries({
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      CapabilityBoundingSet: '',
    })) {
      assert.deepEqual(unit.get(key), [value], key);
    }
    assert.equal(unit.has('MemoryDenyWriteExecute'), false, "V8's JIT needs writable code memory");
  });

  it("gives node the heap flags of the bin's shebang", () => {
    const shebang = read('bin/order-webhooks.js').split('\n')[0]!;
    const flags = shebang.split(' ').filter((word) => word.startsWith('--'));
    assert.ok(flags.length >= 2, shebang);
    const [program, ...args] = unit.get('ExecStart')![0]!.split(' ');
    assert.match(program!, /\/node$/);
    assert.deepEqual(args.slice(0, flags.length), flags);
    assert.match(args[flags.length]!, /\/node_modules\/order-webhooks\/bin\/order-webhooks\.js$/);
    assert.deepEqual(args.slice(flags.length + 1), ['start', '--config', '/etc/order-webhooks/order-webhooks.json']);
  });

  it('reads its secrets from a root-only environment file, which a shell reads alike; its config is valid', async () => {
    assert.deepEqual(unit.get('EnvironmentFile'), ['/etc/order-webhooks/order-webhooks.env']);
    // The example file as the operator's commands read it (docs/deploy.md): sourced by sh.
    const example = join(ROOT, 'deploy', 'order-webhooks.env.example');
    const printed = await exec('sh', ['-c', `set -a; . "${example}"; exec "${process.execPath}" -p 'JSON.stringify(process.env)'`], ROOT, {
      PATH: process.env.PATH,
    });
    assert.equal(printed.code, 0, printed.stderr);
    const env = JSON.parse(printed.stdout) as NodeJS.ProcessEnv;
    const config = JSON.parse(read('deploy/order-webhooks.json'));
    assert.deepEqual(secretSources(config, 'file'), []);
    assert.deepEqual(secretSources(config, 'env'), ['WEBHOOK_SECRET']);
    assert.equal(config.database?.url, undefined, 'the database URL, with its password, from DATABASE_URL');
    const parsed = parseConfig(config, env);
    assert.equal(parsed.webHook.secret, 'change-me');
    assert.equal(parsed.database.url, 'postgres://order_webhooks_service:change-me@db.internal:5432/orders');
    assert.equal(parsed.http?.host, '127.0.0.1', 'health and metrics for this machine only');
    assert.equal(parsed.http?.port, JSON.parse(read('deploy/container.json')).http.port, 'one port in every deploy file');
  });
});

describe('deploy: the Dockerfile and the Kubernetes manifests', () => {
  const documents = (path: string) =>
    parseAllDocuments(read(path)).map((document) => {
      assert.deepEqual(document.errors, [], `${path} is valid YAML`);
      return document.toJS() as Record<string, any>;
    });
  const manifests = documents('deploy/kubernetes.yaml');
  const job = documents('deploy/kubernetes-migrate.yaml');
  const kind = (name: string) => manifests.find((m) => m.kind === name)!;
  const deployment = kind('Deployment');
  const container = deployment.spec.template.spec.containers[0];
  const containerJson = JSON.parse(read('deploy/container.json'));
  const port: number = containerJson.http.port;
  /** The Dockerfile's instructions, continuation lines joined. */
  const dockerfile = read('deploy/Dockerfile')
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'));

  it('the manifests are a ConfigMap and a Deployment, and a migrate Job', () => {
    assert.deepEqual(
      manifests.map((m) => m.kind),
      ['ConfigMap', 'Deployment'],
    );
    assert.deepEqual(
      job.map((m) => `${m.kind} ${m.spec.template.spec.containers[0].args.join(' ')}`),
      ['Job migrate'],
    );
  });

  it("the ConfigMap holds deploy/container.json, valid with the Deployment's environment, its secrets from the Secret", () => {
    const configMap = kind('ConfigMap');
    const [key] = Object.keys(configMap.data);
    assert.deepEqual(JSON.parse(configMap.data[key!]), containerJson);
    for (const spec of [deployment.spec.template.spec, job[0]!.spec.template.spec]) {
      const [c] = spec.containers;
      const env = Object.fromEntries(c.env.map((e: any) => [e.name, e]));
      const mount = c.volumeMounts.find(
        (m: any) => spec.volumes.find((v: any) => v.name === m.name)?.configMap?.name === configMap.metadata.name,
      );
      assert.equal(env.ORDER_WEBHOOKS_CONFIG.value, `${mount.mountPath}/${key}`, 'the config file is the mounted ConfigMap');
      for (const name of ['DATABASE_URL', ...secretSources(containerJson, 'env')]) {
        assert.equal(env[name]?.valueFrom?.secretKeyRef?.name, 'order-webhooks', `${name} from the Secret`);
      }
      const values = Object.fromEntries(Object.keys(env).map((name) => [name, `value of ${name}`]));
      assert.equal(
        parseConfig(containerJson, { ...values, DATABASE_URL: 'postgres://db.internal/orders' }).webHook.secret,
        'value of WEBHOOK_SECRET',
      );
    }
    assert.equal(deployment.spec.strategy.type, 'Recreate', 'an upgrade stops every instance first');
    assert.ok(deployment.spec.replicas >= 2, 'several instances');
  });

  it("names the config's http.port everywhere: container port, probes, scrape annotations, EXPOSE, healthcheck", () => {
    assert.equal(containerJson.http.host, '0.0.0.0', 'reachable by the kubelet');
    assert.deepEqual(container.ports, [{ name: 'http', containerPort: port }]);
    assert.deepEqual(container.livenessProbe.httpGet, { path: '/healthz', port: 'http' });
    assert.deepEqual(container.readinessProbe.httpGet, { path: '/readyz', port: 'http' });
    assert.equal(deployment.spec.template.metadata.annotations['prometheus.io/port'], String(port));
    assert.equal(deployment.spec.template.metadata.annotations['prometheus.io/path'], '/metrics');
    assert.ok(dockerfile.includes(`EXPOSE ${port}`), 'EXPOSE');
    const healthcheck = dockerfile.find((line) => line.startsWith('HEALTHCHECK'));
    assert.ok(healthcheck?.includes(`http://127.0.0.1:${port}/healthz`), healthcheck);
  });

  it("the Dockerfile: node:20-slim, the README's production install, non-root, run through the bin", () => {
    const from = dockerfile.filter((line) => line.startsWith('FROM'));
    assert.ok(from.length >= 1 && from.every((line) => line.startsWith('FROM node:20-slim')), from.join(' / '));
    const install = /\*\*Production install\*\*: `([^`]+)`/.exec(read('README.md'))?.[1];
    assert.ok(install, "the README's production install");
    const steps = install.split('&&').map((step) => step.trim());
    const runs = dockerfile.filter((line) => line.startsWith('RUN '));
    assert.ok(
      runs.some((line) => {
        const parts = line
          .slice(4)
          .split('&&')
          .map((part) => part.trim());
        return parts.length === steps.length && steps.every((step, i) => parts[i] === step || parts[i]!.startsWith(`${step} `));
      }),
      `a RUN of ${install}: ${runs.join(' / ')}`,
    );
    const users = dockerfile.filter((line) => line.startsWith('USER '));
    assert.deepEqual(users, ['USER node']);
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    assert.equal(deployment.spec.template.spec.securityContext.runAsNonRoot, true);
    assert.ok(dockerfile.includes('ENTRYPOINT ["/app/bin/order-webhooks.js"]'), 'the shebang and its heap flags');
  });

  it("sizes memory from the bench's peak RSS (docs/performance.md)", () => {
    const peak = benchPeakRssMb();
    const { requests, limits } = container.resources;
    assert.ok(mebibytes(requests.memory) >= peak, `request ${requests.memory} ≥ the bench's ${peak} MB`);
    assert.ok(mebibytes(limits.memory) >= 2 * peak, `limit ${limits.memory} ≥ twice the bench's ${peak} MB`);
    assert.ok(mebibytes(limits.memory) <= 4 * peak, `limit ${limits.memory} bounds a leak`);
  });

  it('with its config, a running service answers the probe paths and the healthcheck', async (t) => {
    const db = await createTestDatabase('deploy');
    const receiver = await startReceiver();
    t.after(async () => {
      await receiver.close();
      await db.drop();
    });
    await createOrdersTable(db);
    // The container's config as it is, but for the endpoint and a free port on this shared machine.
    const configPath = writeConfig({
      ...containerJson,
      webHook: { ...containerJson.webHook, endpoint: receiver.url },
      http: { ...containerJson.http, port: 0 },
    });
    const env = { DATABASE_URL: db.url, WEBHOOK_SECRET: 'container secret' };
    const migrated = await run(['migrate', '--config', configPath], env);
    assert.equal(migrated.code, 0, migrated.stderr);
    const service = await startService(configPath, env);
    t.after(() => service.kill());
    const listening = Number(/"port":(\d+),"msg":"http listening/.exec(service.output())?.[1]);
    assert.ok(listening > 0, service.output());
    const get = async (path: string) => (await fetch(`http://127.0.0.1:${listening}${path}`)).status;
    // The paths the manifests name, answered by the service (its routes: src/http/).
    assert.equal(await get(container.livenessProbe.httpGet.path), 200);
    assert.equal(await get(deployment.spec.template.metadata.annotations['prometheus.io/path']), 200);
    await waitFor(async () => (await get(container.readinessProbe.httpGet.path)) === 200, { what: 'ready' });
    const check = JSON.parse(
      /^HEALTHCHECK .*CMD (\[.*\])$/.exec(dockerfile.find((line) => line.startsWith('HEALTHCHECK'))!)![1]!,
    ) as string[];
    assert.equal(check[0], 'node');
    const healthcheck = () =>
      exec(
        process.execPath,
        check.slice(1).map((arg) => arg.replace(`:${port}/`, `:${listening}/`)),
        ROOT,
        shellEnv(),
      );
    assert.equal((await healthcheck()).code, 0, 'healthy');
    await service.stop();
    assert.equal((await healthcheck()).code, 1, 'unhealthy once stopped');
  });
});
