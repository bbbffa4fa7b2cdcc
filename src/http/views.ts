// The operator's page as HTML: the summary cards and chart, the outbox table, the replay forms and
// one event with its attempts. Every value goes through `html`, which escapes it.
import { EVENT_TYPES } from '../events.ts';
import { type Problem, removedEndpointLine } from '../health/model.ts';
import { DELIVERED_WINDOW_MINUTES, EVENT_STATUSES, type EndpointState, type MinuteCounts } from '../outbox/status.ts';
import type { EventDetail, EventRow, ListFilter } from '../outbox/reads.ts';
import type { EndpointReport } from '../outbox/endpointState.ts';
import { type Html, html } from './html.ts';

/** Events per page of the outbox table. */
export const PAGE_SIZE = 50;

export interface Summary {
  enabled: boolean;
  /** Every endpoint: configured ones, then any removed from the config that still has events. */
  endpoints: EndpointState[];
  /** No error among the health model's problems of the page's scope. */
  captureHealthy: boolean;
  /** Their lines, or what is well. */
  capture: string;
  problems: Problem[];
  pending: number;
  failed: number;
  delivered: number;
  /** Whether `delivered` is PostgreSQL's estimate (more than EXACT_UP_TO delivered events kept). */
  deliveredEstimated: boolean;
  lagSeconds: number;
  deliveredPerMinute: number;
  minutes: MinuteCounts[];
  /** Each endpoint's status: up, down (circuit breaker open) or paused. */
  breakers: EndpointReport[];
  at: Date;
}

const ENDPOINT_TONE = { up: 'ok', down: 'bad', paused: 'warn' } as const;

function breakerCard(e: EndpointReport): Html {
  const detail =
    e.status === 'down'
      ? `circuit breaker open since ${formatTime(e.openedAt)}; next probe ${formatTime(e.nextProbeAt)}`
      : e.status === 'paused'
        ? `paused since ${formatTime(e.pausedAt)}; events wait`
        : 'sending';
  return html`<div class="card ${ENDPOINT_TONE[e.status]}" data-breaker="${e.endpoint}"><dt>Sending to ${e.endpoint}</dt><dd><span class="endpoint-status">${e.status}</span><small>${detail}</small></dd></div>`;
}

function formatLag(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

export function summaryHtml(s: Summary): Html {
  const item = (label: string, value: Html | string | number, tone = '') =>
    html`<div class="card ${tone}"><dt>${label}</dt><dd>${value}</dd></div>`;
  return html`<dl class="cards">
    ${item('Webhooks', s.enabled ? 'enabled' : 'disabled', s.enabled ? 'ok' : 'warn')}
    ${s.endpoints.length === 0 ? item('Endpoint', '(none)') : ''}
    ${s.breakers.map(breakerCard)}
    ${item(
      'Capture',
      html`${s.captureHealthy ? 'healthy' : 'NOT healthy'}<small>${s.capture}</small>`,
      !s.captureHealthy ? 'bad' : s.problems.length > 0 ? 'warn' : 'ok',
    )}
    ${item('Pending', html`<span id="count-pending">${s.pending}</span>`)}
    ${item('Failed', html`<span id="count-failed">${s.failed}</span>`, s.failed > 0 ? 'bad' : '')}
    ${item('Delivered', s.deliveredEstimated ? html`<span id="count-delivered">about ${s.delivered}</span><small>estimated</small>` : html`<span id="count-delivered">${s.delivered}</span>`)}
    ${item('Lag', s.pending === 0 ? 'none pending' : formatLag(s.lagSeconds))}
    ${item('Delivered / min', html`${s.deliveredPerMinute}<small>last ${DELIVERED_WINDOW_MINUTES} minutes</small>`)}
  </dl>
  <dl class="cards endpoints">${s.endpoints.map((e) => endpointCard(e))}</dl>
  ${chart(s.minutes, s.at)}`;
}

/** One endpoint at a glance: its state, what waits and failed, its lag and last success. */
function endpointCard(e: EndpointState): Html {
  const tone = e.state === 'enabled' ? (e.failed > 0 ? 'bad' : 'ok') : e.state === 'removed' ? 'bad' : 'warn';
  const state = e.state === 'removed' ? 'removed from the config' : e.state;
  const note = e.state === 'removed' && e.pending > 0 ? removedEndpointLine(e.endpoint, e.pending) : undefined;
  return html`<div class="card ${tone}" data-endpoint="${e.endpoint}"><dt>Endpoint ${e.endpoint}</dt><dd>${state}
    <small>${e.pending} pending · ${e.failed} failed · ${e.pending === 0 ? 'none pending' : `lag ${formatLag(e.lagSeconds)}`}</small>
    <small>${e.lastSuccessAt ? `last success ${formatTime(e.lastSuccessAt)}` : 'no success yet'}</small>
    ${e.url ? html`<small class="wrap">${e.url}</small>` : ''}${note ? html`<small>${note}</small>` : ''}</dd></div>`;
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

export function formatTime(time: Date | null): string {
  return time
    ? new Date(time)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z')
    : '';
}

export function eventsHtml(rows: EventRow[], filter: ListFilter & { page: number }, params: URLSearchParams): Html {
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
    <thead><tr><th scope="col">Event</th><th scope="col">Endpoint</th><th scope="col">Order</th><th scope="col">Type</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Created</th><th scope="col">Last failure</th></tr></thead>
    <tbody>${
      shown.length === 0
        ? html`<tr><td colspan="8" class="empty">No events match.</td></tr>`
        : shown.map(
            (e) => html`<tr data-event="${e.eventId}" data-status="${e.status}" data-endpoint="${e.endpoint}">
      <td><a href="/events/${e.eventId}" aria-label="event ${e.eventId}">…${e.eventId.slice(-12)}</a></td>
      <td>${e.endpoint}</td><td class="wrap">${e.orderId}</td><td>${e.eventType}</td>
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

/** A choice of endpoint: any (all of them) or one. */
function endpointSelect(endpoints: readonly EndpointState[], chosen: string | null | undefined, any: string): Html {
  return html`<label>Endpoint<select name="endpoint"><option value="">${any}</option>${endpoints.map(
    (e) => html`<option value="${e.endpoint}"${chosen === e.endpoint ? html` selected` : ''}>${e.endpoint}</option>`,
  )}</select></label>`;
}

function replayForm(kind: string, title: string, csrf: string, fields: Html[], button: string): Html {
  return html`<form method="post" action="/replay" class="replay" data-kind="${kind}">
    <fieldset><legend>${title}</legend>
    <input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="kind" value="${kind}">
    ${fields}<button type="submit">${button}</button></fieldset></form>`;
}

export function mainPage(
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
      ${endpointSelect(summary.endpoints, filter.endpoint, 'any')}
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
  <section aria-labelledby="endpoints-title"><h2 id="endpoints-title">Endpoints</h2>
    <p class="muted">Pausing stops every instance sending to the endpoint; its events wait as pending. You are asked to confirm.</p>
    <div class="replays">${summary.breakers.map((e) => endpointForm(e, csrf, false))}</div>
  </section>
  <section aria-labelledby="replay-title"><h2 id="replay-title">Replay</h2>
    <p class="muted">Sends events again under their own ids (pending events are left as they are). You are asked to confirm, with how many.</p>
    <div class="replays">
    ${replayForm('failed', 'Every failed event', csrf, [endpointSelect(summary.endpoints, null, 'every endpoint'), field('Created since (optional)', 'since', null, '2026-12-02T14:00Z')], 'Replay failed events')}
    ${replayForm('order', "An order's events", csrf, [endpointSelect(summary.endpoints, null, 'every endpoint'), field('Order id', 'order', null)], 'Replay order')}
    ${replayForm('range', 'A time range (any status)', csrf, [endpointSelect(summary.endpoints, null, 'every endpoint'), field('From', 'from', null, '2026-12-02T14:00Z'), field('To', 'to', null, '2026-12-02T15:00Z')], 'Replay range')}
    ${replayForm('event', 'One event', csrf, [field('Event id', 'event', null)], 'Replay event')}
    </div>
  </section>`;
}

/** Pause or resume (by the endpoint's status); `confirmed` posts the answer to the confirmation page. */
function endpointForm(e: EndpointReport, csrf: string, confirmed: boolean): Html {
  const action = e.status === 'paused' ? 'resume' : 'pause';
  return html`<form method="post" action="/endpoint" class="endpoint-action" data-breaker="${e.endpoint}">
    <fieldset><legend>Endpoint ${e.endpoint}: ${e.status}</legend>
    <input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="endpoint" value="${e.endpoint}">
    <input type="hidden" name="action" value="${action}">${confirmed ? html`<input type="hidden" name="confirm" value="yes">` : ''}
    <button type="submit">${confirmed ? `Yes, ${action} ${e.endpoint}` : `${action === 'pause' ? 'Pause' : 'Resume'} ${e.endpoint}`}</button></fieldset></form>`;
}

/** The question asked before pausing or resuming an endpoint. */
export function endpointConfirmPage(e: EndpointReport, csrf: string): Html {
  const question =
    e.status === 'paused'
      ? `Resume endpoint ${e.endpoint}? Its waiting events go out at once, each order in order.`
      : `Pause endpoint ${e.endpoint}? Every instance stops sending to it; its events wait as pending until it is resumed.`;
  return html`<header><p><a href="/">← Outbox</a></p><h1>Endpoint ${e.endpoint}</h1></header>
  <section><p class="notice" role="alert">${question}</p>${endpointForm(e, csrf, true)}<p><a href="/">Cancel</a></p></section>`;
}

export function eventPage(e: EventDetail, csrf: string): Html {
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
      ${pair('Endpoint', e.endpoint)}${pair('Order', e.orderId)}${pair('Attempts', e.attempts)}${pair('Created', formatTime(e.createdAt))}
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
