// The architecture, checked: every import in src/ points one way along the pipeline. A new file
// that imports against it fails here with the file and the import named.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

/** Each part and the parts it may import from (besides itself and the shared leaves). */
const ORDER = [
  'config',
  'db',
  'capture',
  'schema',
  'wake',
  'mapping',
  'delivery',
  'verify',
  'outbox',
  'health',
  'alerts',
  'http',
  'service',
  'demo',
  'cli',
  'index',
];
/** Parts that ship as a package export on their own: only node and these files of ours. */
const SELF_CONTAINED: Record<string, string[]> = { verify: ['delivery/sign.ts'] };
/** Vocabulary every part may use; they import nothing of ours. */
const LEAVES = new Set(['errors', 'log', 'events']);

function partOf(file: string): string {
  const [first] = relative(SRC, file).split('/');
  return first!.replace(/\.ts$/, '');
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => normalize(join(dirname(file), m[1]!)));
}

describe('code layout', () => {
  it('imports point one way: config → db → capture → schema → wake → mapping → delivery → verify → outbox → health → http → service → demo → cli → index', () => {
    const wrong: string[] = [];
    for (const file of sources(SRC)) {
      const from = partOf(file);
      for (const target of importsOf(file)) {
        const to = partOf(target);
        if (to === from) continue;
        const ok = LEAVES.has(from) ? false : LEAVES.has(to) || ORDER.indexOf(to) < ORDER.indexOf(from);
        if (!ok) wrong.push(`${relative(SRC, file)} imports ${relative(SRC, target)}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('keeps the pure parts pure: mapping, signing, the retry policy, a dispatcher’s slots, durations and the health model do no I/O', () => {
    const pure = sources(SRC).filter((file) =>
      [
        'mapping/',
        'delivery/sign.ts',
        'delivery/retryPolicy.ts',
        'delivery/slots.ts',
        'delivery/claimFailures.ts',
        'config/duration.ts',
        'health/model.ts',
      ].some((p) => relative(SRC, file).startsWith(p)),
    );
    assert.ok(pure.length >= 8, `expected the pure modules, found ${pure.map((f) => relative(SRC, f)).join(', ')}`);
    const io = /from\s+'(pg|pg-listen|got|node:fs|node:net|node:http|node:https|node:child_process)'/;
    assert.deepEqual(
      pure.filter((file) => io.test(readFileSync(file, 'utf8'))).map((file) => relative(SRC, file)),
      [],
    );
  });

  it('the receiver kit (order-webhooks/verify) imports only node and src/delivery/sign.ts', () => {
    const wrong: string[] = [];
    for (const [part, allowed] of Object.entries(SELF_CONTAINED)) {
      for (const file of sources(join(SRC, part))) {
        const text = readFileSync(file, 'utf8');
        for (const [, specifier] of text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
          if (specifier!.startsWith('node:')) continue;
          const target = relative(SRC, normalize(join(dirname(file), specifier!)));
          if (specifier!.startsWith('.') && (partOf(join(SRC, target)) === part || allowed.includes(target))) continue;
          wrong.push(`${relative(SRC, file)} imports ${specifier}`);
        }
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('knows every part', () => {
    const parts = new Set(sources(SRC).map(partOf));
    assert.deepEqual(
      [...parts].filter((p) => !LEAVES.has(p) && !ORDER.includes(p)),
      [],
    );
  });
});
