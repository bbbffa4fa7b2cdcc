// Who may use the operator's page: a token (http.token) given once as `/?token=…` opens a session
// (an HttpOnly cookie), or is sent as `Authorization: Bearer`; without a token the page is open
// (loopback only) and a session still binds the CSRF token. Forms carry a CSRF token that is the
// HMAC of the session, so a cross-site page can neither read nor forge it.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

const COOKIE = 'order_webhooks_session';

/** What a request may do: `login` and `refused` are answered by the caller as they say. */
export type Access =
  | { kind: 'login'; cookie: string }
  | { kind: 'refused'; status: 401; message: string }
  | { kind: 'allowed'; session: string | undefined; cookieSent: boolean; byBearer: boolean; csrf: string; newCookie?: string };

export class PageAuth {
  private readonly csrfKey = randomBytes(32);
  /** Sessions opened with the token (only kept when a token is configured). */
  private readonly sessions = new Set<string>();

  constructor(private readonly token: string | undefined) {}

  access(request: IncomingMessage, url: URL): Access {
    const cookie = readCookie(request, COOKIE);
    let session = cookie && (!this.token || this.sessions.has(cookie)) ? cookie : undefined;
    const byBearer = this.token !== undefined && sameSecret(bearer(request) ?? '', this.token);
    // Logging in: `/?token=…` opens a session and drops the token from the address bar.
    const given = url.searchParams.get('token');
    if (this.token !== undefined && given !== null && request.method === 'GET') {
      if (!sameSecret(given, this.token)) return { kind: 'refused', status: 401, message: 'wrong token' };
      session = randomBytes(24).toString('base64url');
      this.sessions.add(session);
      return { kind: 'login', cookie: sessionCookie(session) };
    }
    if (this.token !== undefined && !session && !byBearer) {
      return {
        kind: 'refused',
        status: 401,
        message: 'a token is required: open /?token=<http.token> once, or send "Authorization: Bearer <http.token>"',
      };
    }
    let newCookie: string | undefined;
    if (!session && !this.token) {
      session = randomBytes(24).toString('base64url');
      newCookie = sessionCookie(session);
    }
    return {
      kind: 'allowed',
      session,
      cookieSent: cookie !== undefined && cookie === session,
      byBearer,
      csrf: session ? this.csrfFor(session) : '',
      newCookie,
    };
  }

  /** Whether a form post may act: a bearer header (never sent by a browser on its own), or the session's cookie with its CSRF token. */
  mayPost(access: Extract<Access, { kind: 'allowed' }>, formCsrf: string): boolean {
    return access.byBearer || (access.session !== undefined && access.cookieSent && sameSecret(formCsrf, access.csrf));
  }

  private csrfFor(session: string): string {
    return createHmac('sha256', this.csrfKey).update(session).digest('hex');
  }
}

/** Why a POST looks cross-site, or undefined. Browsers send these headers; a foreign page cannot forge them. */
export function crossSite(request: IncomingMessage): string | undefined {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site is ${site}`;
  const origin = request.headers.origin;
  const host = request.headers.host;
  if (origin !== undefined && origin !== `http://${host}` && origin !== `https://${host}`) return 'request from another origin';
  return undefined;
}

/** Sends a login's answer: the session cookie, and the address without the token. */
export function completeLogin(response: ServerResponse, cookie: string): void {
  response.setHeader('Set-Cookie', cookie);
  response.writeHead(303, { Location: '/', 'Cache-Control': 'no-store' });
  response.end();
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function bearer(request: IncomingMessage): string | undefined {
  const header = request.headers.authorization ?? '';
  return header.startsWith('Bearer ') ? header.slice(7) : undefined;
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
