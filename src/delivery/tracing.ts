// Tracing (OpenTelemetry): a span per delivery attempt, exported over OTLP/HTTP, and the span's
// context sent to the receiver as a W3C `traceparent` header. The SDK and exporter are imported only
// when tracing is configured: with it off, they are not loaded and the dispatcher has no tracer.
import { createRequire } from 'node:module';
import type { Span } from '@opentelemetry/api';
import type { TracingConfig } from '../config/telemetry.ts';
import type { Logger } from '../log.ts';
import { endpointUrl, redactUrl } from './endpoint.ts';
import type { Outcome } from './sender.ts';

/** How long a stop waits for the last spans to be exported. */
export const TRACING_SHUTDOWN_MS = 5000;
/** Export problems are logged at most this often (a collector that is away would fill the log). */
const WARN_EVERY_MS = 60_000;

export interface Attempt {
  /** The endpoint it goes to (its URL is on the span). */
  endpoint?: string;
  eventId: string;
  eventType: string;
  orderId: string;
  attempt: number;
}

export interface AttemptSpan {
  /** The span's context for the receiver: `traceparent` (and `tracestate` when there is one). */
  readonly headers: Record<string, string>;
  end(outcome: Outcome): void;
}

export interface AttemptTracer {
  start(attempt: Attempt): AttemptSpan;
}

/**
 * A tracer whose faults never cost a delivery: one of its own is logged and the attempt goes on
 * without a span (start) or with its span left open (end).
 */
export function faultTolerant(tracer: AttemptTracer, log: Logger): { start(attempt: Attempt): AttemptSpan | undefined } {
  const warn = (what: string, error: unknown) => log.warn({ error: (error as Error).message }, `tracing: ${what} a span failed`);
  return {
    start(attempt) {
      let span: AttemptSpan;
      try {
        span = tracer.start(attempt);
      } catch (error) {
        warn('starting', error);
        return undefined;
      }
      return {
        headers: span.headers,
        end(outcome) {
          try {
            span.end(outcome);
          } catch (error) {
            warn('ending', error);
          }
        },
      };
    },
  };
}

export interface Tracing {
  tracer: AttemptTracer;
  /** Exports what is buffered (for at most TRACING_SHUTDOWN_MS), then stops. */
  shutdown(): Promise<void>;
}

/** The trace id of an event's attempts: its id's 32 hex digits, so that every attempt, from any instance, is one trace. */
export function traceIdOf(eventId: string): string | undefined {
  const hex = eventId.replaceAll('-', '').toLowerCase();
  return /^[0-9a-f]{32}$/.test(hex) && !/^0+$/.test(hex) ? hex : undefined;
}

export async function startTracing(
  config: TracingConfig,
  /** Every endpoint attempts go to, by name. */
  hooks: readonly { name: string; endpoint?: string | undefined; key?: string | undefined }[],
  log: Logger,
): Promise<Tracing> {
  const [api, core, resources, sdk, exporters] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/core'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-trace-base'),
    config.protocol === 'http/json'
      ? import('@opentelemetry/exporter-trace-otlp-http')
      : import('@opentelemetry/exporter-trace-otlp-proto'),
  ]);
  const version = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
  const warn = throttledWarning(log, config);
  api.diag.setLogger(
    { error: warn, warn, info: () => undefined, debug: () => undefined, verbose: () => undefined },
    { logLevel: api.DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  core.setGlobalErrorHandler((error) => warn(error instanceof Error ? error.message : String(error)));

  // The trace id comes from the event id when there is one to take (set just before each span starts).
  const random = new sdk.RandomIdGenerator();
  let nextTraceId: string | undefined;
  const provider = new sdk.BasicTracerProvider({
    resource: resources
      .defaultResource()
      .merge(
        resources.resourceFromAttributes({ ...config.resourceAttributes, 'service.name': config.serviceName, 'service.version': version }),
      ),
    idGenerator: { generateTraceId: () => nextTraceId ?? random.generateTraceId(), generateSpanId: () => random.generateSpanId() },
    spanProcessors: [new sdk.BatchSpanProcessor(new exporters.OTLPTraceExporter({ url: config.url, headers: config.headers }))],
  });
  api.trace.setGlobalTracerProvider(provider);
  api.propagation.setGlobalPropagator(new core.W3CTraceContextPropagator());
  const tracer = provider.getTracer('order-webhooks', version);

  // Without the key's value (and any credentials): the semantic conventions' redaction of url.full.
  const attributesOf = (hook: (typeof hooks)[number]) => {
    const url = hook.endpoint ? new URL(endpointUrl(hook.endpoint, hook.key)) : undefined;
    return {
      'http.request.method': 'POST',
      'webhook.endpoint': hook.name,
      ...(url && {
        'url.full': redactUrl(url.toString()),
        'server.address': url.hostname,
        'server.port': Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
      }),
    };
  };
  const byEndpoint = new Map(hooks.map((hook) => [hook.name, attributesOf(hook)]));
  const fallback = { 'http.request.method': 'POST' };

  return {
    tracer: {
      start(attempt: Attempt): AttemptSpan {
        nextTraceId = traceIdOf(attempt.eventId);
        let span: Span;
        try {
          span = tracer.startSpan(
            `webhook ${attempt.eventType}`,
            {
              kind: api.SpanKind.CLIENT,
              attributes: {
                ...(byEndpoint.get(attempt.endpoint ?? 'default') ?? fallback),
                'webhook.event.id': attempt.eventId,
                'webhook.event.type': attempt.eventType,
                'webhook.order.id': attempt.orderId,
                'webhook.attempt': attempt.attempt,
              },
            },
            api.ROOT_CONTEXT,
          );
        } finally {
          nextTraceId = undefined;
        }
        const headers: Record<string, string> = {};
        api.propagation.inject(api.trace.setSpan(api.ROOT_CONTEXT, span), headers);
        return {
          headers,
          end(outcome: Outcome) {
            if (outcome.httpStatus !== null) span.setAttribute('http.response.status_code', outcome.httpStatus);
            if (!outcome.ok) {
              const kind = outcome.errorKind ?? 'internal';
              span.setAttribute('error.type', kind);
              // The reason is the outbox's last_error: already cleared of every secret by the Sender.
              span.setStatus({ code: api.SpanStatusCode.ERROR, message: outcome.error ?? kind });
            }
            span.end();
          },
        };
      },
    },
    async shutdown() {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        provider.shutdown().then(
          () => false,
          (error: unknown) => {
            warn(`exporting the last spans failed: ${error instanceof Error ? error.message : String(error)}`);
            return false;
          },
        ),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), TRACING_SHUTDOWN_MS);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) log.warn(`tracing: the last spans were not exported within ${TRACING_SHUTDOWN_MS} ms; they are dropped`);
      api.trace.disable();
      api.propagation.disable();
      api.diag.disable();
    },
  };
}

/** One warning now, then at most one a minute with a count of those left out; header values never appear. */
function throttledWarning(log: Logger, config: TracingConfig): (message: unknown) => void {
  const secrets = Object.values(config.headers).filter((v) => v.length >= 4);
  let last = -Infinity;
  let suppressed = 0;
  return (message) => {
    const now = Date.now();
    if (now - last < WARN_EVERY_MS) {
      suppressed++;
      return;
    }
    let text = String(message);
    for (const secret of secrets) text = text.split(secret).join('[redacted]');
    log.warn({ ...(suppressed > 0 && { suppressed }), collector: redactUrl(config.url) }, `tracing: ${text}`);
    last = now;
    suppressed = 0;
  };
}
