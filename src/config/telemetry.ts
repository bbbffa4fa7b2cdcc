// Tracing's settings: `telemetry.otlp` in the config file and the standard OpenTelemetry variables,
// which win over the file as DATABASE_URL does. Tracing is off unless one of them asks for it.
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { secret } from './secrets.ts';

/** The OpenTelemetry variables read here (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/). */
export const OTEL_ENV = {
  sdkDisabled: 'OTEL_SDK_DISABLED',
  tracesExporter: 'OTEL_TRACES_EXPORTER',
  endpoint: 'OTEL_EXPORTER_OTLP_ENDPOINT',
  tracesEndpoint: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  headers: 'OTEL_EXPORTER_OTLP_HEADERS',
  tracesHeaders: 'OTEL_EXPORTER_OTLP_TRACES_HEADERS',
  protocol: 'OTEL_EXPORTER_OTLP_PROTOCOL',
  tracesProtocol: 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
  serviceName: 'OTEL_SERVICE_NAME',
  resourceAttributes: 'OTEL_RESOURCE_ATTRIBUTES',
} as const;

/** The specification's default: a collector's OTLP/HTTP port on this host. */
export const DEFAULT_OTLP_ENDPOINT = 'http://localhost:4318';
export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

const isHttpUrl = (text: string) => {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
};

// An HTTP token (RFC 9110); the value has no control characters, which node would refuse at send time.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

export const otlpSchema = z.strictObject({
  /** The collector's base URL: spans go to `{endpoint}/v1/traces`. */
  endpoint: z.string().refine(isHttpUrl, 'expected an absolute http:// or https:// URL').default(DEFAULT_OTLP_ENDPOINT),
  protocol: z.enum(OTLP_PROTOCOLS).default('http/protobuf'),
  /** Sent with every export (an API key, say): secrets, never logged. */
  headers: z
    .record(
      z.string().regex(HEADER_NAME, 'expected HTTP header names'),
      secret().pipe(z.string().regex(HEADER_VALUE, 'expected a header value without control characters')),
    )
    .default({}),
  serviceName: z.string().min(1).default('order-webhooks'),
});

export const telemetrySchema = z.strictObject({ otlp: otlpSchema.optional() });

/** Tracing on: where and how spans are exported, and the resource they describe. */
export interface TracingConfig {
  /** The full OTLP/HTTP traces URL. */
  url: string;
  protocol: OtlpProtocol;
  /** Header values may be secrets: never log them. */
  headers: Record<string, string>;
  serviceName: string;
  resourceAttributes: Record<string, string>;
}

/** `…/v1/traces` below a base URL, as the specification appends it to OTEL_EXPORTER_OTLP_ENDPOINT. */
export function tracesUrl(base: string): string {
  return `${base}${base.endsWith('/') ? '' : '/'}v1/traces`;
}

/** What `telemetry.otlp` and the environment ask for: undefined when tracing is off. */
export function resolveTracing(otlp: z.output<typeof otlpSchema> | undefined, env: NodeJS.ProcessEnv): TracingConfig | undefined {
  const get = (name: string) => {
    const value = env[name]?.trim();
    return value ? value : undefined;
  };
  if (get(OTEL_ENV.sdkDisabled)?.toLowerCase() === 'true') return undefined;
  const exporters = get(OTEL_ENV.tracesExporter)
    ?.toLowerCase()
    .split(',')
    .map((s) => s.trim());
  if (exporters?.includes('none')) return undefined;
  if (exporters?.some((e) => e !== 'otlp')) {
    throw new ConfigError(`${OTEL_ENV.tracesExporter}: expected "otlp" or "none" (no other exporter is built in)`);
  }
  const tracesEndpoint = get(OTEL_ENV.tracesEndpoint);
  const endpoint = get(OTEL_ENV.endpoint);
  if (!otlp && !tracesEndpoint && !endpoint && !exporters) return undefined;

  for (const [name, value] of [
    [OTEL_ENV.tracesEndpoint, tracesEndpoint],
    [OTEL_ENV.endpoint, endpoint],
  ] as const) {
    if (value !== undefined && !isHttpUrl(value)) throw new ConfigError(`${name}: expected an absolute http:// or https:// URL`);
  }
  const url = tracesEndpoint ?? tracesUrl(endpoint ?? otlp?.endpoint ?? DEFAULT_OTLP_ENDPOINT);

  const protocolVariable = get(OTEL_ENV.tracesProtocol) ? OTEL_ENV.tracesProtocol : OTEL_ENV.protocol;
  const protocol = get(protocolVariable) ?? otlp?.protocol ?? 'http/protobuf';
  if (!(OTLP_PROTOCOLS as readonly string[]).includes(protocol)) {
    throw new ConfigError(
      `${protocolVariable}: expected http/protobuf or http/json (gRPC is not built in: use the collector's OTLP/HTTP port, 4318)`,
    );
  }

  // Later ones win; header names are case-insensitive.
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(otlp?.headers ?? {})) headers[name.toLowerCase()] = value;
  for (const variable of [OTEL_ENV.headers, OTEL_ENV.tracesHeaders]) {
    for (const [name, value] of Object.entries(parsePairs(variable, get(variable), true))) headers[name.toLowerCase()] = value;
  }

  const resourceAttributes = parsePairs(OTEL_ENV.resourceAttributes, get(OTEL_ENV.resourceAttributes), false);
  const serviceName = get(OTEL_ENV.serviceName) ?? resourceAttributes['service.name'] ?? otlp?.serviceName ?? 'order-webhooks';
  return { url, protocol: protocol as OtlpProtocol, headers, serviceName, resourceAttributes };
}

/**
 * `name=value,name2=value2` with URL-encoded values (OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES).
 * A malformed list is one line naming the variable, never its value (header values are secrets).
 */
function parsePairs(variable: string, text: string | undefined, headers: boolean): Record<string, string> {
  const pairs: Record<string, string> = {};
  if (!text) return pairs;
  for (const item of text.split(',')) {
    if (item.trim() === '') continue;
    const at = item.indexOf('=');
    const name = item.slice(0, at).trim();
    let value: string | undefined;
    try {
      value = at > 0 ? decodeURIComponent(item.slice(at + 1).trim()) : undefined;
    } catch {
      value = undefined;
    }
    if (!name || value === undefined || (headers && (!HEADER_NAME.test(name) || !HEADER_VALUE.test(value)))) {
      throw new ConfigError(`${variable}: expected name=value pairs separated by commas, values URL-encoded`);
    }
    pairs[name] = value;
  }
  return pairs;
}
