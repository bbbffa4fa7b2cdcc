// Sends one webhook with got: the spec's body, X-Signature, key in the URL, timeouts, and a
// readable reason for every failure. No retries here: the outbox schedules them durably.
import http from 'node:http';
import https from 'node:https';
import { got, type Got, type Response } from 'got';
import type { WebHookConfig } from '../config/config.ts';
import { endpointUrl } from './endpoint.ts';
import { classifyRequestError, type Failure, type FailureKind, statusFailure } from './failure.ts';
import { parseRetryAfter } from './retryPolicy.ts';
import { signBody } from './sign.ts';

/** A 2xx answer is read up to this many bytes; the rest is not waited for. */
export const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * A got `beforeRequest` hook that empties `cacheOptions` (we never pass `cache`, so they are unused).
 * got 14 builds node's request options by spreading them (four keys, all undefined) into an object
 * literal of 35 more keys, which V8 turns into a slow dictionary-mode object on every request; with
 * the object empty it stays a fast one (docs/performance.md has the measurement).
 */
export function emptyCacheOptions(options: { cacheOptions: object }): void {
  options.cacheOptions = {};
}

export interface Outgoing {
  eventId: string;
  attempt: number;
  body: string;
  /** Headers beyond the usual ones (`order-webhooks check --send` marks its test request). */
  extraHeaders?: Record<string, string>;
}

export interface Outcome {
  ok: boolean;
  startedAt: Date;
  durationMs: number;
  httpStatus: number | null;
  /** Why it failed (null when ok). */
  error: string | null;
  errorKind: FailureKind | null;
  retryAfterMs: number | null;
}

export interface TlsAgentOptions {
  ca?: string[];
  cert?: string;
  key?: string;
  pfx?: Buffer;
  passphrase?: string;
}

export class Sender {
  private readonly url: string;
  private readonly client: Got;
  private readonly agents: { http: http.Agent; https: https.Agent };
  private readonly secrets: string[];

  constructor(
    private readonly hook: WebHookConfig,
    tls: TlsAgentOptions = {},
  ) {
    if (!hook.endpoint) throw new Error('webHook.endpoint is required to send');
    this.url = endpointUrl(hook.endpoint, hook.key);
    const sockets = { keepAlive: true, maxSockets: hook.concurrency, maxFreeSockets: hook.concurrency };
    // One Sender, one TLS set-up, its own agents: pooled sockets never cross client identities.
    this.agents = {
      http: new http.Agent(sockets),
      https: new https.Agent({ ...sockets, ...tls, rejectUnauthorized: !hook.useSslTrustAll }),
    };
    this.secrets = [hook.secret, hook.key, hook.key && encodeURIComponent(hook.key), hook.sslKeyPassword].filter(
      // Too short a value would match ordinary words; such a value is not a real secret anyway.
      (s): s is string => typeof s === 'string' && s.length >= 4,
    );
    const connect = hook.connectionTimeout;
    this.client = got.extend({
      method: 'POST',
      agent: this.agents,
      retry: { limit: 0 },
      followRedirect: false,
      throwHttpErrors: false,
      decompress: false,
      responseType: 'buffer',
      timeout: { lookup: connect, connect, secureConnect: connect, request: hook.requestTimeout },
      https: { rejectUnauthorized: !hook.useSslTrustAll },
      hooks: { beforeRequest: [emptyCacheOptions] },
    });
  }

  async send(outgoing: Outgoing): Promise<Outcome> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'order-webhooks',
      'x-event-id': outgoing.eventId,
      'x-event-attempt': String(outgoing.attempt),
    };
    if (outgoing.extraHeaders) Object.assign(headers, outgoing.extraHeaders);
    if (this.hook.secret) headers['x-signature'] = signBody(this.hook.secret, outgoing.body);
    const startedAt = new Date();
    const started = performance.now();
    // The status line is known before the body: keep it, since a 2xx with a large body is cut short.
    let early: { statusCode: number } | undefined;
    const request = this.client(this.url, { body: outgoing.body, headers });
    request.on('request', (req: http.ClientRequest) => {
      req.once('response', (res: http.IncomingMessage) => {
        early = { statusCode: res.statusCode ?? 0 };
      });
    });
    // A receiver may answer 2xx with a large body: the status is what counts, so stop reading.
    request.on('downloadProgress', (progress) => {
      if (progress.transferred > MAX_RESPONSE_BYTES && early && isSuccess(early.statusCode)) request.cancel();
    });
    let response: Response | undefined;
    let failure: Failure | undefined;
    try {
      response = (await request) as Response;
    } catch (e) {
      if ((e as Error).name === 'CancelError' && early && isSuccess(early.statusCode)) {
        const durationMs = Math.round(performance.now() - started);
        return { ok: true, startedAt, durationMs, httpStatus: early.statusCode, error: null, errorKind: null, retryAfterMs: null };
      }
      failure = classifyRequestError(e, this.hook);
    }
    const durationMs = Math.round(performance.now() - started);
    if (failure || !response) {
      const { kind, reason } = failure ?? { kind: 'internal', reason: 'internal: no response and no error' };
      return { ok: false, startedAt, durationMs, httpStatus: null, error: this.scrub(reason), errorKind: kind, retryAfterMs: null };
    }
    const status = response.statusCode;
    if (isSuccess(status)) {
      return { ok: true, startedAt, durationMs, httpStatus: status, error: null, errorKind: null, retryAfterMs: null };
    }
    const retryAfterMs = status === 429 || status === 503 ? parseRetryAfter(response.headers['retry-after'], Date.now()) : null;
    const { kind, reason } = statusFailure(status, response.statusMessage);
    return { ok: false, startedAt, durationMs, httpStatus: status, error: reason, errorKind: kind, retryAfterMs };
  }

  /**
   * A HEAD request to the endpoint through the same agent, TLS set-up and timeouts as every webhook
   * (`order-webhooks check`): any answer, whatever its status, proves connection, handshake and
   * client certificate. Nothing is posted, so the receiver records no event.
   */
  async probe(): Promise<{ ok: boolean; httpStatus: number | null; error: string | null; errorKind: FailureKind | null }> {
    try {
      const response = (await this.client(this.url, { method: 'HEAD', headers: { 'user-agent': 'order-webhooks' } })) as Response;
      return { ok: true, httpStatus: response.statusCode, error: null, errorKind: null };
    } catch (e) {
      const { kind, reason } = classifyRequestError(e, this.hook);
      return { ok: false, httpStatus: null, error: this.scrub(reason), errorKind: kind };
    }
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  // Belt and braces: no secret may reach the outbox or the logs, even inside a library's message.
  private scrub(text: string): string {
    let out = text;
    for (const secret of this.secrets) out = out.split(secret).join('[redacted]');
    return out;
  }
}

function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}
