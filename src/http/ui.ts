// The operator's web page (http.ui): the outbox at a glance, each event with its attempts, and
// replay. Server-rendered HTML, a small inline script that refreshes through /api/*, no framework.
// It reads and replays through src/outbox/queries.ts, the same functions as the command line.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type pg from 'pg';
import type { CaptureTarget } from '../capture/trigger.ts';
import { EVENT_TYPES } from '../events.ts';
import type { Logger } from '../log.ts';
import {
  attemptsPerMinute,
  countReplayable,
  EVENT_STATUSES,
  type EventDetail,
  type EventRow,
  type EventStatus,
  type ListFilter,
  listEvents,
  type MinuteCounts,
  outboxStatus,
  type ReplayScope,
  replay,
  showEvent,
  triggerState,
} from '../outbox/queries.ts';
import { type Html, html, raw } from './html.ts';

export interface UiOptions {
  db: pg.Pool;
  schema: string;
  target: CaptureTarget;
  enabled: boolean;
  /** The endpoint with its key redacted, or null. */
  endpoint: string | null;
  /** When set, every request to the page needs it (cookie after `/?token=…`, or `Authorization: Bearer`). */
  token?: string;
  listening(): boolean;
  log: Logger;
}

/** Answers a request to the page; the probes (/healthz …) never reach it. */
export type UiHandler = (request: IncomingMessage, response: ServerResponse, url: URL) => Promise<void>;

const PAGE_SIZE = 50;
const COOKIE = 'order_webhooks_session';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_FORM_BYTES = 16 * 1024;

class BadRequest extends Error {}

export function createUi(options: UiOptions): UiHandler {
  // Signs CSRF tokens: a form token is the HMAC of its session cookie, so a cross-site page can neither read nor forge it.
  const csrfKey = randomBytes(32);
  /** Sessions opened with the token (only kept when a token is configured). */
  const sessions = new Set<string>();
  const csrfFor = (session: string) => createHmac('sha256', csrfKey).update(session).digest('hex');

  const sameSecret = (given: string, expected: string) => {
    const a = Buffer.from(given);
    const b = Buffer.from(expected);
    return a.length === b.length && timingSafeEqual(a, b);
  };
  const bearer = (request: IncomingMessage) => {
    const header = request.headers.authorization ?? '';
    return header.startsWith('Bearer ') ? header.slice(7) : undefined;
  };

  return async (request, response, url) => {
    const path = url.pathname;
    const cookie = readCookie(request, COOKIE);
    let session = cookie && (!options.token || sessions.has(cookie)) ? cookie : undefined;
    const byBearer = options.token !== undefined && sameSecret(bearer(request) ?? '', options.token);

    // Logging in: `/?token=…` opens a session and drops the token from the address bar.
    const given = url.searchParams.get('token');
    if (options.token !== undefined && given !== null && request.method === 'GET') {
      if (!sameSecret(given, options.token)) return send(response, 401, 'text/plain; charset=utf-8', 'wrong token\n');
      session = randomBytes(24).toString('base64url');
      sessions.add(session);
      response.setHeader('Set-Cookie', sessionCookie(session));
      response.writeHead(303, { Location: '/', 'Cache-Control': 'no-store' });
      response.end();
      return;
    }
    if (options.token !== undefined && !session && !byBearer) {
      return send(
        response,
        401,
        'text/plain; charset=utf-8',
        'a token is required: open /?token=<http.token> once, or send "Authorization: Bearer <http.token>"\n',
      );
    }
    if (!session && !options.token) {
      // Without a token the page is open (loopback only); the session still binds the CSRF token.
      session = randomBytes(24).toString('base64url');
      response.setHeader('Set-Cookie', sessionCookie(session));
    }
    const csrf = session ? csrfFor(session) : '';

    if (request.method === 'POST') {
      if (path !== '/replay') return send(response, 404, 'text/plain; charset=utf-8', 'not found\n');
      const refused = crossSite(request);
      if (refused) return send(response, 403, 'text/plain; charset=utf-8', `refused: ${refused}\n`);
      const form = new URLSearchParams(await readBody(request));
      // A bearer header is never sent by a browser on its own: only cookie sessions need the form token.
      if (!byBearer && !(session && cookie === session && sameSecret(form.get('csrf') ?? '', csrf))) {
        return send(response, 403, 'text/plain; charset=utf-8', 'refused: missing or wrong CSRF token (reload the page)\n');
      }
      let scope: ReplayScope;
      try {
        scope = replayScope(form);
      } catch (error) {
        if (error instanceof BadRequest) return send(response, 400, 'text/plain; charset=utf-8', `${error.message}\n`);
        throw error;
      }
      const replayed = await replay(options.db, options.schema, scope);
      options.log.info({ scope: scope.kind, replayed }, 'replay from the web page');
      response.writeHead(303, { Location: `/?replayed=${replayed}`, 'Cache-Control': 'no-store' });
      response.end();
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('Allow', 'GET, HEAD, POST');
      return send(response, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    }

    try {
      if (path === '/') {
        const filter = eventFilter(url.searchParams);
        const [summary, events] = await Promise.all([readSummary(options), listEvents(options.db, options.schema, filter)]);
        const replayed = url.searchParams.get('replayed');
        return sendPage(response, 'Outbox', mainPage(summary, events, filter, url.searchParams, csrf, replayed));
      }
      if (path === '/api/summary') {
        const summary = await readSummary(options);
        return sendJson(response, { summary, html: summaryHtml(summary).text });
      }
      if (path === '/api/events') {
        const filter = eventFilter(url.searchParams);
        const events = await listEvents(options.db, options.schema, filter);
        return sendJson(response, { events, html: eventsHtml(events, filter, url.searchParams).text });
      }
      if (path === '/replay/preview') {
        const count = await countReplayable(options.db, options.schema, replayScope(url.searchParams));
        return sendJson(response, { count });
      }
      const match = /^\/events\/([^/]+)$/.exec(path);
      if (match) {
        const id = decodeURIComponent(match[1]!);
        const event = UUID.test(id) ? await showEvent(options.db, options.schema, id) : undefined;
        if (!event) return send(response, 404, 'text/plain; charset=utf-8', 'no such event\n');
        return sendPage(response, `Event ${event.eventId}`, eventPage(event, csrf));
      }
    } catch (error) {
      if (error instanceof BadRequest) return send(response, 400, 'text/plain; charset=utf-8', `${error.message}\n`);
      throw error;
    }
    send(response, 404, 'text/plain; charset=utf-8', 'not found\n');
  };
}

/** Why a POST looks cross-site, or undefined. Browsers send these headers; a foreign page cannot forge them. */
function crossSite(request: IncomingMessage): string | undefined {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site is ${site}`;
  const origin = request.headers.origin;
  const host = request.headers.host;
  if (origin !== undefined && origin !== `http://${host}` && origin !== `https://${host}`) return 'request from another origin';
  return undefined;
}

function sessionCookie(session: string): string {
  return `${COOKIE}=${session}; Path=/; HttpOnly; SameSite=Strict`;
}

function readCookie(request: IncomingMessage, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}

async function readBody(request: IncomingMessage): Promise<string> {
  let body = '';
  for await (const chunk of request) {
    body += chunk;
    if (body.length > MAX_FORM_BYTES) throw new BadRequest('form too large');
  }
  return body;
}

function parseTime(name: string, text: string | null): Date | undefined {
  if (text === null || text.trim() === '') return undefined;
  const time = new Date(text.trim());
  if (Number.isNaN(time.getTime())) throw new BadRequest(`${name}: "${text}" is not a time (ISO-8601, e.g. 2026-12-02T14:00Z)`);
  return time;
}

function eventFilter(params: URLSearchParams): ListFilter & { page: number } {
  const status = params.get('status') || undefined;
  if (status !== undefined && !(EVENT_STATUSES as readonly string[]).includes(status))
    throw new BadRequest(`status: "${status}" is unknown`);
  const page = Math.max(1, Math.trunc(Number(params.get('page') ?? '1')) || 1);
  return {
    status: status as EventStatus | undefined,
    orderId: params.get('order')?.trim() || undefined,
    eventType: params.get('type') || undefined,
    since: parseTime('since', params.get('since')),
    until: parseTime('until', params.get('until')),
    limit: PAGE_SIZE + 1,
    offset: (page - 1) * PAGE_SIZE,
    page,
  };
}

function replayScope(params: URLSearchParams): ReplayScope {
  const kind = params.get('kind');
  if (kind === 'event') {
    const eventId = params.get('event')?.trim() ?? '';
    if (!UUID.test(eventId)) throw new BadRequest('event: expected an event id (a UUID, as in X-Event-Id)');
    return { kind, eventId };
  }
  if (kind === 'order') {
    const orderId = params.get('order')?.trim() ?? '';
    if (!orderId) throw new BadRequest('order: expected an order id');
    return { kind, orderId };
  }
  if (kind === 'failed') return { kind, since: parseTime('since', params.get('since')) };
  if (kind === 'range') {
    const from = parseTime('from', params.get('from'));
    const to = parseTime('to', params.get('to'));
    if (!from || !to) throw new BadRequest('a range needs both from and to');
    if (from >= to) throw new BadRequest('from must be before to');
    return { kind, from, to };
  }
  throw new BadRequest('kind: expected event, order, failed or range');
}

interface Summary {
  enabled: boolean;
  endpoint: string | null;
  captureHealthy: boolean;
  capture: string;
  pending: number;
  failed: number;
  delivered: number;
  lagSeconds: number;
  deliveredPerMinute: number;
  minutes: MinuteCounts[];
  at: Date;
}

async function readSummary(options: UiOptions): Promise<Summary> {
  const [status, trigger, minutes] = await Promise.all([
    outboxStatus(options.db, options.schema),
    triggerState(options.db, options.target),
    attemptsPerMinute(options.db, options.schema, 60),
  ]);
  const listening = options.listening();
  const problems = [
    ...(trigger.installed && trigger.enabled ? [] : [`trigger ${trigger.condition}`]),
    ...(listening ? [] : ['listener not connected']),
  ];
  return {
    enabled: options.enabled,
    endpoint: options.endpoint,
    captureHealthy: problems.length === 0,
    capture: problems.length === 0 ? 'trigger enabled, listener connected' : problems.join(', '),
    pending: status.counts.pending,
    failed: status.counts.failed,
    delivered: status.counts.delivered,
    lagSeconds: status.lagSeconds,
    deliveredPerMinute: Math.round((status.deliveredRecently / 5) * 10) / 10,
    minutes,
    at: new Date(),
  };
}

function formatLag(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

function summaryHtml(s: Summary): Html {
  const item = (label: string, value: Html | string | number, tone = '') =>
    html`<div class="card ${tone}"><dt>${label}</dt><dd>${value}</dd></div>`;
  return html`<dl class="cards">
    ${item('Webhooks', s.enabled ? 'enabled' : 'disabled', s.enabled ? 'ok' : 'warn')}
    ${item('Endpoint', html`<span class="wrap">${s.endpoint ?? '(none)'}</span>`)}
    ${item('Capture', html`${s.captureHealthy ? 'healthy' : 'NOT healthy'}<small>${s.capture}</small>`, s.captureHealthy ? 'ok' : 'bad')}
    ${item('Pending', html`<span id="count-pending">${s.pending}</span>`)}
    ${item('Failed', html`<span id="count-failed">${s.failed}</span>`, s.failed > 0 ? 'bad' : '')}
    ${item('Delivered', html`<span id="count-delivered">${s.delivered}</span>`)}
    ${item('Lag', s.pending === 0 ? 'none pending' : formatLag(s.lagSeconds))}
    ${item('Delivered / min', html`${s.deliveredPerMinute}<small>last 5 minutes</small>`)}
  </dl>
  ${chart(s.minutes, s.at)}`;
}

/** Delivered and failed attempts per minute of the last hour, as bars (inline SVG, no library). */
function chart(minutes: MinuteCounts[], now: Date): Html {
  const slots = Array.from({ length: 60 }, () => ({ delivered: 0, failed: 0 }));
  const current = Math.floor(now.getTime() / 60_000);
  for (const m of minutes) {
    const index = 59 - (current - Math.floor(new Date(m.minute).getTime() / 60_000));
    if (index >= 0 && index < 60) slots[index] = { delivered: m.delivered, failed: m.failed };
  }
  const max = Math.max(1, ...slots.map((s) => s.delivered + s.failed));
  const height = 100;
  const bars = slots.map((s, i) => {
    const d = (s.delivered / max) * height;
    const f = (s.failed / max) * height;
    return html`<rect class="delivered" x="${i * 10 + 1}" y="${height - d}" width="8" height="${d}"></rect><rect class="failed" x="${i * 10 + 1}" y="${height - d - f}" width="8" height="${f}"></rect>`;
  });
  const delivered = slots.reduce((n, s) => n + s.delivered, 0);
  const failed = slots.reduce((n, s) => n + s.failed, 0);
  return html`<figure class="chart">
    <svg viewBox="0 -4 600 122" role="img" aria-labelledby="chart-title" preserveAspectRatio="none">
      <title id="chart-title">Attempts per minute, last hour: ${delivered} delivered, ${failed} failed (busiest minute: ${max})</title>
      <line class="axis" x1="0" y1="${height}" x2="600" y2="${height}"></line>
      ${bars}
      <text x="0" y="116">−60 min</text><text x="600" y="116" text-anchor="end">now</text>
    </svg>
    <figcaption><span class="key delivered-key"></span> delivered <span class="key failed-key"></span> failed attempts per minute, last hour (most in a minute: ${max})</figcaption>
  </figure>`;
}

function formatTime(time: Date | null): string {
  return time
    ? new Date(time)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z')
    : '';
}

function eventsHtml(rows: EventRow[], filter: ListFilter & { page: number }, params: URLSearchParams): Html {
  const more = rows.length > PAGE_SIZE;
  const shown = rows.slice(0, PAGE_SIZE);
  const pageLink = (page: number, label: string) => {
    const next = new URLSearchParams(params);
    next.set('page', String(page));
    next.delete('replayed');
    return html`<a href="/?${next.toString()}">${label}</a>`;
  };
  return html`<div class="scroll"><table>
    <caption>Events${filter.status ? `: ${filter.status}` : ''}, page ${filter.page} (newest first${filter.orderId ? '; one order: oldest first' : ''})</caption>
    <thead><tr><th scope="col">Event</th><th scope="col">Order</th><th scope="col">Type</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Created</th><th scope="col">Last failure</th></tr></thead>
    <tbody>${
      shown.length === 0
        ? html`<tr><td colspan="7" class="empty">No events match.</td></tr>`
        : shown.map(
            (e) => html`<tr data-event="${e.eventId}" data-status="${e.status}">
      <td><a href="/events/${e.eventId}" aria-label="event ${e.eventId}">…${e.eventId.slice(-12)}</a></td>
      <td class="wrap">${e.orderId}</td><td>${e.eventType}</td>
      <td><span class="status ${e.status}">${e.status}${e.inFlight ? ' (sending)' : ''}</span></td>
      <td>${e.attempts}</td><td>${formatTime(e.createdAt)}</td>
      <td class="wrap">${e.lastError ? `${e.lastErrorKind ?? 'failed'}: ${e.lastError}` : ''}</td></tr>`,
          )
    }</tbody></table></div>
    <nav class="pager" aria-label="pages">${filter.page > 1 ? pageLink(filter.page - 1, '← newer') : ''} ${more ? pageLink(filter.page + 1, 'older →') : ''}</nav>`;
}

function field(label: string, name: string, value: string | null, placeholder = ''): Html {
  return html`<label>${label}<input name="${name}" value="${value ?? ''}" placeholder="${placeholder}" autocomplete="off"></label>`;
}

function replayForm(kind: string, title: string, csrf: string, fields: Html[], button: string): Html {
  return html`<form method="post" action="/replay" class="replay" data-kind="${kind}">
    <fieldset><legend>${title}</legend>
    <input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="kind" value="${kind}">
    ${fields}<button type="submit">${button}</button></fieldset></form>`;
}

function mainPage(
  summary: Summary,
  events: EventRow[],
  filter: ListFilter & { page: number },
  params: URLSearchParams,
  csrf: string,
  replayed: string | null,
): Html {
  const get = (name: string) => params.get(name);
  return html`<header><h1>order-webhooks</h1><p class="muted">Updates every 5 seconds · <span id="updated">${formatTime(summary.at)}</span></p></header>
  ${replayed !== null ? html`<p class="notice" role="status">${replayed} event(s) sent back to pending.</p>` : ''}
  <section aria-labelledby="summary-title"><h2 id="summary-title">At a glance</h2><div id="summary">${summaryHtml(summary)}</div></section>
  <section aria-labelledby="outbox-title"><h2 id="outbox-title">Outbox</h2>
    <form method="get" action="/" class="filters" id="filters">
      <label>Status<select name="status"><option value="">any</option>${EVENT_STATUSES.map(
        (s) => html`<option value="${s}"${filter.status === s ? html` selected` : ''}>${s}</option>`,
      )}</select></label>
      <label>Event type<select name="type"><option value="">any</option>${EVENT_TYPES.map(
        (t) => html`<option value="${t}"${filter.eventType === t ? html` selected` : ''}>${t}</option>`,
      )}</select></label>
      ${field('Order id', 'order', get('order'))}
      ${field('Created since', 'since', get('since'), '2026-12-02T14:00Z')}
      ${field('Created before', 'until', get('until'), '2026-12-02T15:00Z')}
      <button type="submit">Filter</button> <a href="/">Clear</a>
    </form>
    <div id="events">${eventsHtml(events, filter, params)}</div>
  </section>
  <section aria-labelledby="replay-title"><h2 id="replay-title">Replay</h2>
    <p class="muted">Sends events again under their own ids (pending events are left as they are). You are asked to confirm, with how many.</p>
    <div class="replays">
    ${replayForm('failed', 'Every failed event', csrf, [field('Created since (optional)', 'since', null, '2026-12-02T14:00Z')], 'Replay failed events')}
    ${replayForm('order', "An order's events", csrf, [field('Order id', 'order', null)], 'Replay order')}
    ${replayForm('range', 'A time range (any status)', csrf, [field('From', 'from', null, '2026-12-02T14:00Z'), field('To', 'to', null, '2026-12-02T15:00Z')], 'Replay range')}
    ${replayForm('event', 'One event', csrf, [field('Event id', 'event', null)], 'Replay event')}
    </div>
  </section>`;
}

function eventPage(e: EventDetail, csrf: string): Html {
  let body = e.body;
  try {
    body = JSON.stringify(JSON.parse(e.body), null, 2);
  } catch {
    // Shown as stored.
  }
  const pair = (label: string, value: string | number | null) => html`<dt>${label}</dt><dd class="wrap">${value ?? ''}</dd>`;
  return html`<header><p><a href="/">← Outbox</a></p><h1>Event <span class="wrap">${e.eventId}</span></h1></header>
  <section aria-labelledby="event-title"><h2 id="event-title">${e.eventType} · <span class="status ${e.status}">${e.status}</span></h2>
    <dl class="pairs">
      ${pair('Order', e.orderId)}${pair('Attempts', e.attempts)}${pair('Created', formatTime(e.createdAt))}
      ${pair('Delivered', formatTime(e.deliveredAt))}${pair('Next attempt', e.status === 'pending' ? formatTime(e.nextAttemptAt) : '')}
      ${pair('Replayed', formatTime(e.replayedAt))}${pair('Last failure', e.lastError ? `${e.lastErrorKind ?? 'failed'}: ${e.lastError}` : '')}
    </dl>
    ${replayForm('event', 'Replay', csrf, [html`<input type="hidden" name="event" value="${e.eventId}">`], 'Replay this event')}
  </section>
  <section aria-labelledby="attempts-title"><h2 id="attempts-title">Attempts</h2>
    <div class="scroll"><table><thead><tr><th scope="col">#</th><th scope="col">Outcome</th><th scope="col">HTTP status</th><th scope="col">Started</th><th scope="col">Duration</th><th scope="col">Reason</th></tr></thead>
    <tbody>${
      e.attemptRows.length === 0
        ? html`<tr><td colspan="6" class="empty">No attempt yet.</td></tr>`
        : e.attemptRows.map(
            (a) =>
              html`<tr><td>${a.attempt}</td><td><span class="status ${a.outcome === 'delivered' ? 'delivered' : 'failed'}">${a.outcome}</span></td><td>${a.httpStatus ?? ''}</td><td>${formatTime(a.startedAt)}</td><td>${a.durationMs === null ? '' : `${a.durationMs} ms`}</td><td class="wrap">${a.reason ?? ''}</td></tr>`,
          )
    }</tbody></table></div>
  </section>
  <section aria-labelledby="body-title"><h2 id="body-title">Body</h2><pre class="body">${body}</pre></section>`;
}

const STYLE = `
:root{color-scheme:light;--fg:#1a1a1a;--muted:#555;--bg:#fff;--line:#ccc;--ok:#0a6b2d;--bad:#b00020;--warn:#8a5a00;--link:#0645ad}
*{box-sizing:border-box}body{margin:0 auto;max-width:1200px;padding:12px 16px;font:15px/1.45 system-ui,sans-serif;color:var(--fg);background:var(--bg)}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.2rem 0 .5rem}a{color:var(--link)}.muted,small{color:var(--muted)}
small{display:block;font-size:.8rem}.wrap{overflow-wrap:anywhere}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:8px;margin:0}
.card{border:1px solid var(--line);border-left:5px solid var(--line);border-radius:4px;padding:6px 10px}.card dt{font-size:.8rem;color:var(--muted)}.card dd{margin:0;font-size:1.1rem;font-weight:600}
.card.ok{border-left-color:var(--ok)}.card.bad{border-left-color:var(--bad)}.card.warn{border-left-color:var(--warn)}
.chart{margin:10px 0}.chart svg{width:100%;height:120px;border:1px solid var(--line)}.chart text{font-size:10px;fill:var(--muted)}
.delivered{fill:var(--ok)}.failed{fill:var(--bad)}.axis{stroke:var(--line)}.key{display:inline-block;width:10px;height:10px}.delivered-key{background:var(--ok)}.failed-key{background:var(--bad)}
.filters,.replays{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-end}label{display:flex;flex-direction:column;font-size:.85rem;gap:2px}
input,select,button{font:inherit;padding:6px 8px;border:1px solid #767676;border-radius:4px;min-height:36px;background:#fff;color:var(--fg)}
button{background:#0b57d0;color:#fff;border-color:#0b57d0;cursor:pointer}button:focus-visible,a:focus-visible,input:focus-visible,select:focus-visible{outline:3px solid #f5a623;outline-offset:2px}
fieldset{border:1px solid var(--line);border-radius:4px;display:flex;flex-wrap:wrap;gap:8px;align-items:flex-end}.replays form{flex:1 1 280px}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9rem}caption{text-align:left;color:var(--muted);padding:4px 0}
th,td{border-bottom:1px solid var(--line);padding:5px 6px;text-align:left;vertical-align:top}td.empty{color:var(--muted)}td:first-child{white-space:nowrap}
.status{font-weight:600}.status.delivered{color:var(--ok)}.status.failed{color:var(--bad)}.status.pending{color:var(--warn)}
.pager{margin:8px 0;display:flex;gap:16px}.notice{background:#e6f4ea;border:1px solid var(--ok);padding:6px 10px;border-radius:4px}
.pairs{display:grid;grid-template-columns:max-content 1fr;gap:4px 12px}.pairs dt{color:var(--muted)}.pairs dd{margin:0}
pre.body{background:#f4f4f4;border:1px solid var(--line);padding:8px;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}
@media (max-width:600px){body{padding:8px}.cards{grid-template-columns:repeat(2,1fr)}table{font-size:.82rem}th:nth-child(n+5),td:nth-child(n+5){display:none}}
`;

// Refreshes the summary and the table (fragments escaped by the server) and confirms replays with a count.
const SCRIPT = `
const q = location.search;
async function refresh() {
  try {
    const [s, e] = await Promise.all([fetch('/api/summary', {credentials: 'same-origin'}), fetch('/api/events' + q, {credentials: 'same-origin'})]);
    if (s.ok && document.getElementById('summary')) document.getElementById('summary').innerHTML = (await s.json()).html;
    if (e.ok && document.getElementById('events')) document.getElementById('events').innerHTML = (await e.json()).html;
    const u = document.getElementById('updated'); if (u) u.textContent = new Date().toISOString().replace('T', ' ').replace(/\\.\\d+Z$/, 'Z');
  } catch {}
}
if (document.getElementById('events')) setInterval(refresh, 5000);
for (const form of document.querySelectorAll('form.replay')) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const params = new URLSearchParams(new FormData(form));
    params.delete('csrf');
    const answer = await fetch('/replay/preview?' + params, {credentials: 'same-origin'});
    if (!answer.ok) { alert(await answer.text()); return; }
    const {count} = await answer.json();
    if (count === 0) { alert('Nothing to replay: no matching event that is not pending already.'); return; }
    if (confirm('Send ' + count + ' event(s) again? They go back to pending, keeping their ids.')) form.submit();
  });
}
`;

function sendPage(response: ServerResponse, title: string, content: Html): void {
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

function sendJson(response: ServerResponse, value: unknown): void {
  send(response, 200, 'application/json; charset=utf-8', JSON.stringify(value));
}

function send(response: ServerResponse, status: number, contentType: string, body: string): void {
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
