#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=100
// Runs the compiled service (dist/, from `npm run build`; `npm ci` and every npm script build it
// first): plain node, no TypeScript loader in the process. A dist/ that is missing or older than
// src/ is refused, so an edit or a pull without a build never runs old code silently.
// The shebang's flags keep the heap small while draining a backlog (docs/performance.md): a 4 MB
// semi-space and an old space that grows to twice its live size before a full GC, not four times.
// Neither is a hard limit, so a large `concurrency` cannot run out of heap because of them.
// `npm start` and npx run this file, so they get them, and the bench reads them from this line.
// Run as `node bin/order-webhooks.js`, node ignores the shebang: the bounds are then set below, as
// far as V8 takes them once running. The old space's growth it takes as is; the semi-space's maximum
// is fixed when the heap is made, so the young generation is kept at its initial size instead.
// Flags given to node (command line or NODE_OPTIONS) win.
import { setFlagsFromString } from 'node:v8';
import { existsSync, readdirSync, statSync } from 'node:fs';

const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(' ')].map((arg) => arg.replaceAll('_', '-'));
const unless = (flags, set) => {
  if (!given.some((arg) => flags.some((flag) => arg.startsWith(flag)))) setFlagsFromString(set);
};
unless(['--heap-growing-percent'], '--heap-growing-percent=100');
unless(['--max-semi-space-size', '--semi-space-growth-factor'], '--semi-space-growth-factor=1');

const src = new URL('../src/', import.meta.url);
const dist = new URL('../dist/', import.meta.url);
const ENTRY = 'cli/main.js';

/** Every .ts file under src/, as paths relative to it. */
function sources(dir = '') {
  return readdirSync(new URL(dir, src), { withFileTypes: true }).flatMap((entry) => {
    if (entry.isDirectory()) return sources(`${dir}${entry.name}/`);
    return entry.name.endsWith('.ts') ? [`${dir}${entry.name}`] : [];
  });
}

/** Why dist/ cannot be run, or undefined when it is built from the current sources. */
function notRunnable() {
  if (!existsSync(new URL(ENTRY, dist))) return 'dist/ is not built';
  if (!existsSync(src)) return undefined; // installed without its sources: dist/ is all there is
  for (const name of sources()) {
    const compiled = new URL(name.replace(/\.ts$/, '.js'), dist);
    if (!existsSync(compiled) || statSync(compiled).mtimeMs < statSync(new URL(name, src)).mtimeMs) {
      return `dist/ is older than src/${name}`;
    }
  }
  return undefined;
}

const reason = notRunnable();
if (reason) {
  process.stderr.write(`order-webhooks: ${reason}; run \`npm run build\` (or \`npm ci\`) first\n`);
  process.exit(2);
}
await import(new URL(ENTRY, dist).href);
