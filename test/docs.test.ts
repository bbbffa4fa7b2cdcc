// The docs, checked against themselves and the code: links between pages and to headings resolve,
// every error code is documented with its exit code, and no page cites commits. A heading glued to
// the end of a line renders as text, so links to it die; that is caught here too. No database.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exitCodeFor } from '../src/cli/exit.ts';
import * as errors from '../src/errors.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const DOCS = join(ROOT, 'docs');
const docPages = readdirSync(DOCS)
  .filter((name) => name.endsWith('.md'))
  .map((name) => join(DOCS, name));
const PAGES = [join(ROOT, 'README.md'), join(ROOT, 'CHANGELOG.md'), ...docPages];

const name = (file: string) => relative(ROOT, file);

interface Line {
  number: number;
  text: string;
  /** The line with inline code spans removed; empty inside fenced code blocks. */
  prose: string;
}

/** Each line of a page, with fenced code blocks and inline code taken out (neither holds links or headings). */
function proseLines(text: string): Line[] {
  let fence: string | undefined;
  return text.split('\n').map((line, index) => {
    const code = { number: index + 1, text: line, prose: '' };
    const opening = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence === undefined && opening) {
      fence = opening;
      return code;
    }
    if (fence !== undefined) {
      if (opening && opening[0] === fence[0] && opening.length >= fence.length && line.trim() === opening) fence = undefined;
      return code;
    }
    return { ...code, prose: line.replace(/(`+)(?:(?!\1).)*?\1/g, '') };
  });
}

/** GitHub's anchor for a heading text: lowercase, punctuation dropped except - and _, each space a -. */
function slug(heading: string): string {
  const text = heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // a link shows its text
    .replace(/`/g, '')
    .replace(/\*/g, '');
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors a page's headings get, duplicates numbered -1, -2… as GitHub does. */
function anchorsOf(file: string): Set<string> {
  const seen = new Set<string>();
  for (const { text, prose } of proseLines(readFileSync(file, 'utf8'))) {
    if (!/^ {0,3}#{1,6}\s/.test(prose)) continue;
    // From the line as written: inline code in a heading is part of its anchor.
    const base = slug(text.replace(/^ {0,3}#{1,6}\s+/, '').replace(/\s+#+\s*$/, ''));
    let anchor = base;
    for (let n = 1; seen.has(anchor); n++) anchor = `${base}-${n}`;
    seen.add(anchor);
  }
  return seen;
}

interface Link {
  file: string;
  line: number;
  target: string;
}

function linksOf(file: string): Link[] {
  const links: Link[] = [];
  for (const { number, prose } of proseLines(readFileSync(file, 'utf8'))) {
    for (const match of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push({ file, line: number, target: match[1]! });
    const definition = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/.exec(prose);
    if (definition) links.push({ file, line: number, target: definition[1]! });
  }
  return links;
}

/** Why a link is dead, or undefined when it resolves. */
function problemWith(link: Link): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(link.target) || link.target.startsWith('//')) return undefined; // another site
  const [path = '', anchor] = link.target.split('#', 2);
  const target = path === '' ? link.file : join(dirname(link.file), decodeURIComponent(path));
  if (!existsSync(target)) return `${name(target)} does not exist`;
  if (anchor === undefined) return undefined;
  if (!target.endsWith('.md')) return `#${anchor} points into ${name(target)}, which has no headings`;
  const anchors = anchorsOf(target);
  if (anchors.has(decodeURIComponent(anchor))) return undefined;
  return `${name(target)} has no heading with the anchor #${anchor}`;
}

describe('docs', () => {
  it('README.md, CHANGELOG.md and docs/*.md exist', () => {
    for (const file of PAGES) assert.ok(existsSync(file), `${name(file)} is missing`);
  });

  it('every relative link points to an existing file, and every #anchor to a heading of its target', () => {
    const dead: string[] = [];
    for (const file of PAGES.filter(existsSync)) {
      for (const link of linksOf(file)) {
        const problem = problemWith(link);
        if (problem) dead.push(`${name(link.file)}:${link.line}: (${link.target}): ${problem}`);
      }
    }
    assert.deepEqual(dead, [], `dead links:\n${dead.join('\n')}`);
  });

  it('no heading is glued to the end of a line (it would render as text, and links to it would die)', () => {
    const glued: string[] = [];
    for (const file of PAGES.filter(existsSync)) {
      for (const { number, text, prose } of proseLines(readFileSync(file, 'utf8'))) {
        if (/\S\s+#{2,6}\s+\S/.test(prose)) glued.push(`${name(file)}:${number}: ${text.trim()}`);
      }
    }
    assert.deepEqual(glued, [], `headings glued onto a line (put them on a line of their own):\n${glued.join('\n')}`);
  });

  it('the anchors follow GitHub: punctuation dropped, spaces to -, duplicates numbered', () => {
    assert.equal(slug('Wake-up: NOTIFY and the wake lock'), 'wake-up-notify-and-the-wake-lock');
    assert.equal(slug('Verifying `X-Signature` (Node)'), 'verifying-x-signature-node');
    assert.equal(slug("`webHook`: the spec's keys, then ours"), 'webhook-the-specs-keys-then-ours');
    assert.equal(slug('order_webhooks.change & co'), 'order_webhookschange--co');
  });

  it('docs/how-it-works.md lists every error code of src/errors.ts with its exit code', () => {
    const page = readFileSync(join(DOCS, 'how-it-works.md'), 'utf8');
    const classes = (Object.values(errors) as unknown[]).filter(
      (value): value is new (message: string) => errors.AppError =>
        typeof value === 'function' && value.prototype instanceof errors.AppError,
    );
    assert.ok(classes.length > 0, 'no error classes found in src/errors.ts');
    const wrong: string[] = [];
    for (const ErrorClass of classes) {
      const error = new ErrorClass('probe');
      const row = new RegExp(`^\\|\\s*\`${error.code}\`\\s*\\|.*\\|\\s*(\\d+)\\s*\\|\\s*$`, 'm').exec(page);
      if (!row) wrong.push(`${error.code} (${ErrorClass.name}): no row "| \`${error.code}\` | … | exit code |" in docs/how-it-works.md`);
      else if (Number(row[1]) !== exitCodeFor(error)) {
        wrong.push(`${error.code}: docs/how-it-works.md says exit ${row[1]}, src/cli/exit.ts gives ${exitCodeFor(error)}`);
      }
    }
    assert.deepEqual(wrong, [], wrong.join('\n'));
  });

  it('no page of docs/ or the README cites a commit (history belongs in CHANGELOG.md)', () => {
    const cited: string[] = [];
    for (const file of [join(ROOT, 'README.md'), ...docPages]) {
      const text = readFileSync(file, 'utf8');
      // Hex of commit length with at least one letter: timestamps and ids of digits are not hashes.
      const hash = '(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}';
      for (const pattern of [new RegExp(`\`${hash}\``, 'g'), new RegExp(`\\bcommits?\\s+${hash}\\b`, 'gi')]) {
        for (const match of text.matchAll(pattern)) {
          const line = text.slice(0, match.index).split('\n').length;
          cited.push(`${name(file)}:${line}: ${match[0].replace(/\s+/g, ' ')}`);
        }
      }
    }
    assert.deepEqual(
      cited,
      [],
      `commit references in docs (describe the current release; history goes to CHANGELOG.md):\n${cited.join('\n')}`,
    );
  });

  it('no page of docs/ reads as a diary ("this release", "the next change")', () => {
    const diary: string[] = [];
    for (const file of docPages) {
      for (const { number, text, prose } of proseLines(readFileSync(file, 'utf8'))) {
        const found = /\b(this release|the next change|we changed|before this change)\b/i.exec(prose);
        if (found) diary.push(`${name(file)}:${number}: "${found[0]}" in: ${text.trim()}`);
      }
    }
    assert.deepEqual(diary, [], `diary text in docs (describe the current release; history goes to CHANGELOG.md):\n${diary.join('\n')}`);
  });
});
