// The programs some tests drive besides node and PostgreSQL's server: Debian's PgBouncer, Chromium
// and psql (on a machine with only an embedded or a remote server).
// test/run.ts installs the missing ones that the test files it runs need, with apt-get, before the
// tests start, when it can (root, apt-get, a network). A test whose tool is still missing is
// skipped with the reason in its name, never passed or failed. ORDER_WEBHOOKS_TEST_NO_INSTALL=1
// tells the runner to install nothing (a machine that must not change, or to see the skips).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { it } from 'node:test';

const TOOLS = {
  // Debian installs PgBouncer in /usr/sbin, which is not on every user's PATH.
  pgbouncer: { title: 'PgBouncer', deb: 'pgbouncer', at: '/usr/sbin/pgbouncer' },
  chromium: { title: 'Chromium', deb: 'chromium', at: '/usr/bin/chromium' },
  psql: { title: 'psql', deb: 'postgresql-client', at: '/usr/bin/psql' },
} as const;
export type Tool = keyof typeof TOOLS;

/** Why the runner installed nothing, for the skip reasons of the test files it starts. */
const NOT_INSTALLED = 'ORDER_WEBHOOKS_TEST_NOT_INSTALLED';
const NO_INSTALL = 'ORDER_WEBHOOKS_TEST_NO_INSTALL';

/** Where the tool is: Debian's path, else the first on PATH (by its key's name); undefined when it is not installed. */
export function toolPath(tool: Tool): string | undefined {
  return existsSync(TOOLS[tool].at) ? TOOLS[tool].at : onPath(tool);
}

function onPath(command: string): string | undefined {
  return (process.env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .map((dir) => join(dir, command))
    .find((path) => existsSync(path));
}

/** Why a test that needs `tool` cannot run here, or undefined when it can. */
function missing(tool: Tool): string | undefined {
  if (toolPath(tool)) return undefined;
  const why = process.env[NOT_INSTALLED] ?? 'the test runner (test/run.ts) installs it only as root, with apt-get';
  return `${TOOLS[tool].title} is not installed (Debian package ${TOOLS[tool].deb}): ${why}`;
}

/**
 * `it` for tests that need `tool`: test/run.ts reads the tool's name here (`itNeeding('…')` in a test
 * file) to know what to install. Without the tool the test is skipped, the reason in its name.
 */
export function itNeeding(tool: Tool): (name: string, fn: () => Promise<void>) => void {
  return (name, fn) => {
    const reason = missing(tool);
    if (reason) it(`${name} (skipped: ${reason})`, { skip: reason }, fn);
    else it(name, fn);
  };
}

/** The tools the given test files ask for with itNeeding. */
export function toolsNeeded(sources: string[]): Tool[] {
  const named = new Set(sources.flatMap((text) => [...text.matchAll(/\bitNeeding\('(\w+)'\)/g)].map((m) => m[1])));
  return (Object.keys(TOOLS) as Tool[]).filter((tool) => named.has(tool));
}

function run(command: string, args: string[]): string | undefined {
  // Progress on stderr; what apt says on failure is kept for the reason.
  const result = spawnSync(command, args, {
    stdio: ['ignore', 2, 'pipe'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    encoding: 'utf8',
    timeout: 20 * 60_000,
  });
  process.stderr.write(result.stderr ?? '');
  if (result.status === 0) return undefined;
  const said = (result.stderr ?? '').trim().split('\n').filter(Boolean).at(-1);
  return `\`${command} ${args.join(' ')}\` ${result.error ? `failed: ${result.error.message}` : `exited ${result.status ?? result.signal}`}${said ? `: ${said}` : ''}`;
}

/**
 * Installs those of `tools` that are missing, from Debian's packages, once. Returns the env for the
 * test files: when some are still missing, it says why, for their skip reasons.
 */
export function installTools(tools: Tool[], env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const wanted = tools.filter((tool) => !toolPath(tool));
  if (wanted.length === 0) return env;
  const debs = wanted.map((tool) => TOOLS[tool].deb);
  let why: string | undefined;
  if (env[NO_INSTALL] === '1') why = `${NO_INSTALL}=1 told the test runner not to install it`;
  else if (process.getuid?.() !== 0) why = `the test runner installs Debian's packages only as root: apt-get install ${debs.join(' ')}`;
  else if (!onPath('apt-get')) why = 'there is no apt-get to install it with';
  else {
    process.stderr.write(`tests: installing ${debs.join(', ')} from Debian's packages (apt-get)\n`);
    const updated = run('apt-get', ['update', '-qq']);
    const installed = run('apt-get', ['install', '-y', '-qq', '-o', 'DPkg::Lock::Timeout=300', ...debs]);
    if (installed) why = updated ? `${updated}; ${installed}` : installed;
    else if (wanted.some((tool) => !toolPath(tool)))
      why = `apt-get installed ${debs.join(' ')}, but it is not at ${wanted.map((t) => TOOLS[t].at).join(', ')}`;
  }
  if (why === undefined) return env;
  process.stderr.write(`tests: not installed: ${debs.join(', ')} (${why}); the tests that need them are skipped\n`);
  return { ...env, [NOT_INSTALLED]: why };
}
