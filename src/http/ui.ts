// The operator's web page (http.ui): the outbox at a glance, each event with its attempts, and
// replay. Server-rendered HTML, a small inline script that refreshes through /api/*, no framework.
// It reads and replays through src/outbox/, the same functions as the command line. Who may use it:
// auth.ts; the HTML: views.ts; the answers: respond.ts.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type pg from 'pg';
import type { CaptureTarget } from '../capture/render.ts';
import { assess, type Facts, inScope } from '../health/model.ts';
import { observeInstall } from '../health/observe.ts';
import type { Logger } from '../log.ts';
import {
  attemptsPerMinute,
  DELIVERED_WINDOW_MINUTES,
  EVENT_STATUSES,
  type EventStatus,
  endpointCounts,
  endpointStates,
  outboxStatus,
} from '../outbox/status.ts';
import { countReplayable, type ReplayScope, replay } from '../outbox/replay.ts';
import { type ListFilter, listEvents, showEvent } from '../outbox/reads.ts';
import { readEndpointStates, setPaused } from '../outbox/endpointState.ts';
import { completeLogin, crossSite, PageAuth } from './auth.ts';
import { send, sendJson, sendPage } from './respond.ts';
import { endpointConfirmPage, eventPage, eventsHtml, mainPage, PAGE_SIZE, type Summary, summaryHtml } from './views.ts';

export interface UiOptions {
  db: pg.Pool;
  schema: string;
  target: CaptureTarget;
  enabled: boolean;
  /** The configured endpoints, their URLs redacted (`configuredEndpoints` of src/outbox/status.ts). */
  endpoints: readonly { name: string; enabled: boolean; url: string }[];
  /** When set, every request to the page needs it (cookie after `/?token=…`, or `Authorization: Bearer`). */
  token?: string;
  /** database.idlePollInterval (the wake-up's summary). */
  idlePollMs: number;
  /** The running service's facts for the health model: enabled, listening, claims. */
  runtime(): Facts;
  log: Logger;
}

/** Answers a request to the page; the probes (/healthz …) never reach it. */
export type UiHandler = (request: IncomingMessage, response: ServerResponse, url: URL) => Promise<void>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ENDPOINT = /^[a-z0-9-]{1,40}$/;

/** The `endpoint` parameter: one endpoint's name, or none (all). */
function endpointParam(params: URLSearchParams): string | undefined {
  const endpoint = params.get('endpoint')?.trim() || undefined;
  if (endpoint !== undefined && !ENDPOINT.test(endpoint)) throw new BadRequest('endpoint: expected an endpoint name');
  return endpoint;
}
const MAX_FORM_BYTES = 16 * 1024;

class BadRequest extends Error {}

export function createUi(options: UiOptions): UiHandler {
  const auth = new PageAuth(options.token);
  return async (request, response, url) => {
    const path = url.pathname;
    const access = auth.access(request, url);
    if (access.kind === 'login') return completeLogin(response, access.cookie);
    if (access.kind === 'refused') return send(response, access.status, 'text/plain; charset=utf-8', `${access.message}\n`);
    if (access.newCookie) response.setHeader('Set-Cookie', access.newCookie);
    const csrf = access.csrf;

    if (request.method === 'POST') {
      if (path !== '/replay' && path !== '/endpoint') return send(response, 404, 'text/plain; charset=utf-8', 'not found\n');
      const refused = crossSite(request);
      if (refused) return send(response, 403, 'text/plain; charset=utf-8', `refused: ${refused}\n`);
      const form = new URLSearchParams(await readBody(request));
      if (!auth.mayPost(access, form.get('csrf') ?? '')) {
        return send(response, 403, 'text/plain; charset=utf-8', 'refused: missing or wrong CSRF token (reload the page)\n');
      }
      if (path === '/endpoint') return endpointAction(options, form, csrf, response);
      let scope: ReplayScope;
      try {
        scope = replayScope(form);
      } catch (error) {
        if (error instanceof BadRequest) return send(response, 400, 'text/plain; charset=utf-8', `${error.message}\n`);
        throw error;
      }
      const replayed = await replay(options.db, options.schema, scope);
      options.log.info({ scope: scope.kind, endpoint: scope.endpoint, replayed }, 'replay from the web page');
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

/** Pause or resume: the first POST asks (a page with the question), the second, with confirm=yes, does it. */
async function endpointAction(options: UiOptions, form: URLSearchParams, csrf: string, response: ServerResponse): Promise<void> {
  const name = form.get('endpoint') ?? '';
  const action = form.get('action');
  const known = await readEndpointStates(
    options.db,
    options.schema,
    options.endpoints.map((e) => e.name),
  );
  const endpoint = known.find((e) => e.endpoint === name);
  if (!endpoint || (action !== 'pause' && action !== 'resume')) {
    return send(response, 400, 'text/plain; charset=utf-8', 'expected a known endpoint and action pause or resume\n');
  }
  if (form.get('confirm') !== 'yes') return sendPage(response, `Endpoint ${name}`, endpointConfirmPage(endpoint, csrf));
  const status = await setPaused(options.db, options.schema, name, action === 'pause');
  options.log.info({ endpoint: name, action, status }, `endpoint ${action} from the web page`);
  response.writeHead(303, { Location: '/', 'Cache-Control': 'no-store' });
  response.end();
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
    endpoint: endpointParam(params),
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
  const endpoint = endpointParam(params);
  return endpoint === undefined ? scopeOf(params) : { ...scopeOf(params), endpoint };
}

function scopeOf(params: URLSearchParams): ReplayScope {
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

async function readSummary(options: UiOptions): Promise<Summary> {
  const [status, observed, minutes, counts, breakers] = await Promise.all([
    outboxStatus(options.db, options.schema),
    observeInstall(options.db, { target: options.target, idlePollMs: options.idlePollMs }),
    attemptsPerMinute(options.db, options.schema, 60),
    endpointCounts(
      options.db,
      options.schema,
      options.endpoints.map((e) => e.name),
    ),
    readEndpointStates(
      options.db,
      options.schema,
      options.endpoints.map((e) => e.name),
    ),
  ]);
  // The health model's problems of the page's scope: set-up, capture and the running service.
  const problems = inScope('page', assess({ ...observed.facts, ...options.runtime(), now: Date.now() }));
  return {
    enabled: options.enabled,
    endpoints: endpointStates(options.endpoints, counts),
    captureHealthy: !problems.some((p) => p.level === 'error'),
    capture: problems.length === 0 ? 'trigger enabled, listener connected, claims working' : problems.map((p) => p.line).join('; '),
    problems,
    pending: status.counts.pending,
    failed: status.counts.failed,
    delivered: status.counts.delivered,
    deliveredEstimated: status.deliveredEstimated,
    lagSeconds: status.lagSeconds,
    deliveredPerMinute: Math.round((status.deliveredRecently / DELIVERED_WINDOW_MINUTES) * 10) / 10,
    minutes,
    breakers,
    at: new Date(),
  };
}
