// Sends one webhook with got: the spec's body, X-Signature, key in the URL, timeouts, and a
// readable reason for every failure. No retries here: the outbox schedules them durably.
import http from 'node:http';
import https from 'node:https';
import { got, type Got, type Response } from 'got';
import type { WebHookConfig } from '../config/config.ts';
import { ConfigError } from '../errors.ts';
import { endpointUrl } from './endpoint.ts';
import { classifyRequestError, type Failure, type FailureKind, statusFailure } from './failure.ts';
import { parseRetryAfter } from './retryPolicy.ts';
import { signBody, standardWebhookHeaders } from './sign.ts';

/** An answer's body is read up to this many bytes, whatever its status; the rest is not waited for. */
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

/** What a Sender needs of an endpoint's config (webHook, a webHooks entry, or alerts made to look like one). */
export type SenderSettings = Pick<
  WebHookConfig,
  | 'endpoint'
  | 'key'
  | 'concurrency'
  | 'useSslTrustAll'
  | 'secret'
  | 'sslKeyPassword'
  | 'standardWebhooks'
  | 'connectionTimeout'
  | 'requestTimeout'
  | 'signatureEncoding'
>;

export class Sender {
  private readonly url: string;
  private readonly client: Got;
  private readonly agents: { http: http.Agent; https: https.Agent };
  private readonly secrets: string[];

  constructor(
    private readonly hook: SenderSettings,
    tls: TlsAgentOptions = {},
  ) {
    if (!hook.endpoint) throw new ConfigError('webHook.endpoint: expected an endpoint URL to send to');
    this.url = endpointUrl(hook.endpoint, hook.key);
    const sockets = { keepAlive: true, maxSockets: hook.concurrency, maxFreeSockets: hook.concurrency };
    // One Sender, one TLS set-up, its own agents: pooled sockets never cross client identities.
    this.agents = {
      http: new http.Agent(sockets),
      https: new https.Agent({ ...sockets, ...tls, rejectUnauthorized: !hook.useSslTrustAll }),
    };
    this.secrets = [
      hook.secret,
      hook.key,
      hook.key && encodeURIComponent(hook.key),
      hook.sslKeyPassword,
      ...(hook.standardWebhooks?.secrets ?? []).flatMap((secret) => [secret, secret.slice('whsec_'.length)]),
    ].filter(
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
    if (this.hook.secret) headers['x-signature'] = signBody(this.hook.secret, outgoing.body, this.hook.signatureEncoding);
    const startedAt = new Date();
    if (this.hook.standardWebhooks) {
      const timestamp = Math.floor(startedAt.getTime() / 1000);
      Object.assign(headers, standardWebhookHeaders(this.hook.standardWebhooks.secrets, outgoing.eventId, timestamp, outgoing.body));
    }
    const started = performance.now();
    // The status line is known before the body: keep it, since a large body is cut short.
    let early: http.IncomingMessage | undefined;
    const request = this.client(this.url, { body: outgoing.body, headers });
    request.on('request', (req: http.ClientRequest) => {
      req.once('response', (res: http.IncomingMessage) => {
        early = res;
      });
    });
    // The status is what counts, whatever the body: a receiver that streams gigabytes (on any
    // status) must not fill our memory or hold the request until requestTimeout.
    request.on('downloadProgress', (progress) => {
      if (progress.transferred > MAX_RESPONSE_BYTES && early) request.cancel();
    });
    let response: Response | undefined;
    let failure: Failure | undefined;
    try {
      response = (await request) as Response;
    } catch (e) {
      if ((e as Error).name === 'CancelError' && early) {
        const durationMs = Math.round(performance.now() - started);
        const status = early.statusCode ?? 0;
        if (isSuccess(status)) {
          return { ok: true, startedAt, durationMs, httpStatus: status, error: null, errorKind: null, retryAfterMs: null };
        }
        const { kind, reason } = statusFailure(status, early.statusMessage);
        const cut = this.scrub(`${reason} (body not read past ${MAX_RESPONSE_BYTES / 1024} KiB)`);
        return {
          ok: false,
          startedAt,
          durationMs,
          httpStatus: status,
          error: cut,
          errorKind: kind,
          retryAfterMs: this.retryAfter(status, early.headers),
        };
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
    // The reason phrase is the receiver's text: it may echo our URL, key included.
    const { kind, reason } = statusFailure(status, response.statusMessage);
    return {
      ok: false,
      startedAt,
      durationMs,
      httpStatus: status,
      error: this.scrub(reason),
      errorKind: kind,
      retryAfterMs: this.retryAfter(status, response.headers),
    };
  }

  private retryAfter(status: number, headers: http.IncomingHttpHeaders): number | null {
    return status === 429 || status === 503 ? parseRetryAfter(headers['retry-after'], Date.now()) : null;
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
