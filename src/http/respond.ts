// Answers of the HTTP port's page: the headers every answer carries, and a whole page with its own
// stylesheet and script (page/page.css, page/page.js) under a per-answer CSP nonce.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { type Html, html, raw } from './html.ts';

// Read once; `npm run build` copies them next to the compiled module.
const STYLE = readFileSync(new URL('./page/page.css', import.meta.url), 'utf8');
const SCRIPT = readFileSync(new URL('./page/page.js', import.meta.url), 'utf8');

export function sendPage(response: ServerResponse, title: string, content: Html): void {
  const nonce = randomBytes(16).toString('base64');
  const page = html`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>${title} · order-webhooks</title><style nonce="${nonce}">${raw(STYLE)}</style></head>
<body><main>${content}</main><script nonce="${nonce}">${raw(SCRIPT)}</script></body></html>`;
  response.setHeader(
    'Content-Security-Policy',
    `default-src 'none'; style-src 'nonce-${nonce}'; script-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  );
  send(response, 200, 'text/html; charset=utf-8', page.text);
}

export function sendJson(response: ServerResponse, value: unknown): void {
  send(response, 200, 'application/json; charset=utf-8', JSON.stringify(value));
}

export function send(response: ServerResponse, status: number, contentType: string, body: string): void {
  response.writeHead(status, {
    'Content-Type': contentType,
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
    'X-Content-Type-Options': 'nosniff',
    // Not no-referrer: with it, browsers send `Origin: null` on form posts, and the origin check needs the real one.
    'Referrer-Policy': 'same-origin',
  });
  response.end(response.req.method === 'HEAD' ? undefined : body);
}
