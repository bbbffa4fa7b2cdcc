// Tracing (OpenTelemetry): off unless configured; when on, a span per delivery attempt reaches a
// real OTLP/HTTP receiver with the attempt's facts and no secret, and each webhook carries the span's
// context in a W3C traceparent header.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { parseConfig } from '../src/config/config.ts';
import { ConfigError } from '../src/errors.ts';
import { insertOrder } from './helpers/db.ts';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from './helpers/otlpReceiver.ts';
import { waitFor } from './helpers/poll.ts';
import type { Received } from './helpers/receiver.ts';
import { outbox, stacksClosedAfter } from './helpers/stack.ts';

const db = { url: 'postgres://svc@127.0.0.1:1/none' };
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;
const SPAN_KIND_CLIENT = 3;
const STATUS_ERROR = 2;

describe('tracing config', () => {
  const tracing = (raw: object, env: NodeJS.ProcessEnv = {}) => parseConfig({ database: db, ...raw }, env).tracing;

  it('is off without telemetry.otlp or an OpenTelemetry endpoint variable', () => {
    assert.equal(tracing({}), undefined);
    assert.equal(tracing({}, { OTEL_SERVICE_NAME: 'a name alone turns nothing on', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }), undefined);
  });

  it('telemetry.otlp: the traces path below the endpoint, protobuf, and the service name by default', () => {
    assert.deepEqual(tracing({ telemetry: { otlp: { endpoint: 'http://collector:4318', headers: { 'X-Api-Key': 'k3y-value' } } } }), {
      url: 'http://collector:4318/v1/traces',
      protocol: 'http/protobuf',
      headers: { 'x-api-key': 'k3y-value' },
      serviceName: 'order-webhooks',
      resourceAttributes: {},
    });
    assert.equal(tracing({ telemetry: { otlp: {} } })?.url, 'http://localhost:4318/v1/traces');
    assert.equal(tracing({ telemetry: { otlp: { endpoint: 'https://c.example/otlp/' } } })?.url, 'https://c.example/otlp/v1/traces');
  });

  it('the standard variables turn it on and win over the file; OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none turn it off', () => {
    assert.equal(tracing({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })?.url, 'http://c:4318/v1/traces');
    assert.equal(tracing({}, { OTEL_TRACES_EXPORTER: 'otlp' })?.url, 'http://localhost:4318/v1/traces');
    const file = { telemetry: { otlp: { endpoint: 'http://file:4318', serviceName: 'from-file', headers: { a: 'file', b: 'file' } } } };
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://general:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4318/exact/path',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_HEADERS: 'B=general%20value,c=general',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'c=traces',
      OTEL_SERVICE_NAME: 'from-env',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,service.name=ignored',
    };
    assert.deepEqual(tracing(file, env), {
      url: 'http://traces:4318/exact/path',
      protocol: 'http/json',
      headers: { a: 'file', b: 'general value', c: 'traces' },
      serviceName: 'from-env',
      resourceAttributes: { 'deployment.environment': 'prod', 'service.name': 'ignored' },
    });
    assert.equal(tracing(file, { OTEL_SDK_DISABLED: 'true' }), undefined);
    assert.equal(tracing(file, { OTEL_TRACES_EXPORTER: 'none' }), undefined);
  });

  it('a header value may come from the environment or a file, like any secret', () => {
    const config = tracing({ telemetry: { otlp: { headers: { authorization: { env: 'OTLP_TOKEN' } } } } }, { OTLP_TOKEN: 'Bearer t0ken' });
    assert.deepEqual(config?.headers, { authorization: 'Bearer t0ken' });
  });

  const errors: [string, object, NodeJS.ProcessEnv, RegExp][] = [
    [
      'gRPC',
      {},
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
      /^OTEL_EXPORTER_OTLP_PROTOCOL: expected/,
    ],
    ['another exporter', {}, { OTEL_TRACES_EXPORTER: 'zipkin' }, /^OTEL_TRACES_EXPORTER: expected "otlp" or "none"/],
    ['a relative endpoint', {}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, /^OTEL_EXPORTER_OTLP_ENDPOINT: expected an absolute/],
    [
      'a malformed header list',
      {},
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_HEADERS: 'Authorization: Bearer s3cret-v4lue' },
      /^OTEL_EXPORTER_OTLP_HEADERS: expected name=value pairs/,
    ],
    ['an unknown key', { telemetry: { otlp: { endpiont: 'http://c' } } }, {}, /^telemetry\.otlp\.endpiont: unknown key$/],
    ['a bad endpoint', { telemetry: { otlp: { endpoint: 'collector:4318' } } }, {}, /^telemetry\.otlp\.endpoint: expected an absolute/],
    ['a bad protocol', { telemetry: { otlp: { protocol: 'grpc' } } }, {}, /^telemetry\.otlp\.protocol: expected one of/],
    [
      'a header value with a line break',
      { telemetry: { otlp: { headers: { authorization: 's3cret-v4lue\r\nx: y' } } } },
      {},
      /^telemetry\.otlp\.headers\.authorization: expected a header value without control characters$/,
    ],
    ['a missing secret', { telemetry: { otlp: { headers: { a: { env: 'UNSET_OTLP_TOKEN' } } } } }, {}, /^telemetry\.otlp\.headers\.a: /],
  ];
  for (const [name, raw, env, message] of errors) {
    it(`rejects ${name} in one line naming the key or variable, never the value`, () => {
      assert.throws(
        () => tracing(raw, env),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, String(error));
          assert.match(error.message, message);
          assert.doesNotMatch(error.message, /s3cret-v4lue|\n/);
          return true;
        },
      );
    });
  }
});

/** The spans whose trace and span id a webhook's traceparent names. */
function spanOf(request: Received, spans: ReceivedSpan[]): ReceivedSpan | undefined {
  const match = TRACEPARENT.exec(String(request.headers.traceparent));
  return match ? spans.find((s) => s.traceId === match[1] && s.spanId === match[2]) : undefined;
}

/** Nothing secret in what reached the collector. */
function assertNoSecrets(otlp: OtlpReceiver, secrets: string[]): void {
  for (const { body } of otlp.exports) {
    for (const secret of secrets) assert.equal(body.includes(secret), false, `an export holds ${secret}`);
  }
}

describe('tracing', () => {
  const stack = stacksClosedAfter();
  const collectors: OtlpReceiver[] = [];
  after(async () => {
    for (const c of collectors) await c.close();
  });
  const collector = async () => {
    const c = await startOtlpReceiver();
    collectors.push(c);
    return c;
  };

  it('telemetry.otlp (JSON): a span per attempt with its facts, failures marked, no secret; traceparent names the span', async () => {
    const otlp = await collector();
    const headerSecret = 'Bearer otlp-h3ader-secret';
    const s = await stack('tracing-json', {
      webHook: { key: 'Url Key 1', secret: 'SpanSecret-1' },
      sections: {
        telemetry: {
          otlp: { endpoint: otlp.url, protocol: 'http/json', headers: { Authorization: headerSecret }, serviceName: 'ow-test' },
        },
      },
      startNow: false,
    });
    const { db, receiver } = s;
    // Every webhook for the second order fails: three attempts (two retries), then the event is given up.
    let failing = '';
    receiver.respond = (request, response) => {
      if (JSON.parse(request.body).orderId === failing) response.writeHead(500).end();
      else response.end('ok');
    };
    // The batch goes out after a short delay: the test need not wait the default 5 s.
    await s.start({ OTEL_BSP_SCHEDULE_DELAY: '200' });
    const ok = await insertOrder(db);
    failing = await insertOrder(db);
    const requests = await receiver.waitForCount(4);
    await waitFor(async () => (await outbox(db)).find((r) => r.order_id === failing)?.status === 'failed', {
      what: 'the failing event given up',
    });
    const spans = await waitFor(() => otlp.spans.length >= 4 && otlp.spans, { what: 'four spans at the collector' });
    assert.equal(spans.length, 4);

    // The receiver saw our context: its trace is the event's, its parent the attempt's span.
    for (const request of requests) {
      const match = TRACEPARENT.exec(String(request.headers.traceparent));
      assert.ok(match, `traceparent ${request.headers.traceparent}`);
      assert.equal(match[1], String(request.headers['x-event-id']).replaceAll('-', ''), 'the trace id is the event id');
      const span = spanOf(request, spans);
      assert.ok(span, 'a span has the traceparent’s trace and span id');
      assert.equal(span.attributes['webhook.attempt'], Number(request.headers['x-event-attempt']));
    }

    const port = new URL(receiver.url).port;
    const common = {
      'http.request.method': 'POST',
      'url.full': `http://127.0.0.1:${port}/automation/?key=REDACTED`,
      'server.address': '127.0.0.1',
      'server.port': Number(port),
      'webhook.event.type': 'OrderCreated',
      'webhook.endpoint': 'default',
    };
    const delivered = spans.filter((span) => span.attributes['webhook.order.id'] === ok);
    assert.equal(delivered.length, 1);
    assert.deepEqual(delivered[0]!.attributes, {
      ...common,
      'webhook.event.id': requests.find((r) => JSON.parse(r.body).orderId === ok)!.headers['x-event-id'],
      'webhook.order.id': ok,
      'webhook.attempt': 1,
      'http.response.status_code': 200,
    });
    assert.equal(delivered[0]!.name, 'webhook OrderCreated');
    assert.equal(delivered[0]!.kind, SPAN_KIND_CLIENT);
    assert.notEqual(delivered[0]!.status.code, STATUS_ERROR);
    assert.equal(delivered[0]!.parentSpanId, '', 'an attempt starts its own span tree');

    const failed = spans.filter((span) => span.attributes['webhook.order.id'] === failing);
    assert.deepEqual(failed.map((span) => span.attributes['webhook.attempt']).sort(), [1, 2, 3]);
    const eventId = requests.find((r) => JSON.parse(r.body).orderId === failing)!.headers['x-event-id'];
    for (const span of failed) {
      assert.deepEqual(span.attributes, {
        ...common,
        'webhook.event.id': eventId,
        'webhook.order.id': failing,
        'webhook.attempt': span.attributes['webhook.attempt'],
        'http.response.status_code': 500,
        'error.type': 'http_status',
      });
      assert.deepEqual(span.status, { code: STATUS_ERROR, message: 'http: 500 Internal Server Error' });
    }
    assert.equal(new Set(failed.map((span) => span.traceId)).size, 1, 'the attempts of one event are one trace');

    for (const span of spans) assert.equal(span.resource['service.name'], 'ow-test');
    for (const { headers } of otlp.exports) {
      assert.equal(headers['content-type'], 'application/json');
      assert.equal(headers.authorization, headerSecret, 'the configured headers go with every export');
    }
    assertNoSecrets(otlp, ['SpanSecret-1', 'Url Key 1', 'Url%20Key%201', 'Url+Key+1', headerSecret]);
    assert.doesNotMatch(s.service!.output(), /h3ader-secret/);
    // Written in the file, the header is a secret others may read: the start warns, naming the key.
    assert.match(s.service!.output(), /holds secrets \([^)]*telemetry\.otlp\.headers\)/);
    assert.match(s.service!.output(), /"tracing":"http\/json to http:\/\/127\.0\.0\.1:\d+\/v1\/traces"/);
  });

  it('the OpenTelemetry variables (protobuf): spans held in the batch are exported when the service stops', async () => {
    const otlp = await collector();
    const s = await stack('tracing-env', { webHook: { key: 'EnvKey-99' }, startNow: false });
    await s.start({
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key=env%20h3ader%20secret',
      OTEL_SERVICE_NAME: 'ow-env',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test',
      // Nothing leaves the batch before the stop: what arrives, the shutdown sent.
      OTEL_BSP_SCHEDULE_DELAY: '600000',
    });
    const id = await insertOrder(s.db);
    const [request] = await s.receiver.waitForCount(1);
    await waitFor(async () => (await outbox(s.db))[0]?.status === 'delivered', { what: 'the event delivered' });
    assert.equal(otlp.spans.length, 0, 'the span waits in the batch');
    assert.equal((await s.service!.stop()).code, 0);

    assert.equal(otlp.spans.length, 1, 'the stop exported it');
    const [span] = otlp.spans;
    assert.equal(spanOf(request!, otlp.spans), span);
    assert.equal(span!.attributes['webhook.order.id'], id);
    assert.equal(span!.attributes['http.response.status_code'], 200);
    assert.equal(span!.attributes['url.full'], `${s.receiver.url}/?key=REDACTED`);
    assert.equal(span!.resource['service.name'], 'ow-env');
    assert.equal(span!.resource['deployment.environment'], 'test');
    assert.equal(otlp.exports[0]!.headers['content-type'], 'application/x-protobuf');
    assert.equal(otlp.exports[0]!.headers['x-api-key'], 'env h3ader secret');
    assertNoSecrets(otlp, ['EnvKey-99', 'h3ader']);
    assert.doesNotMatch(s.service!.output(), /h3ader/);
  });

  it('a collector that refuses every export costs no delivery: webhooks go out, one warning in the log', async () => {
    const otlp = await collector();
    otlp.status = 400; // not retried by the exporter: each export fails at once
    const s = await stack('tracing-refused', {
      sections: { telemetry: { otlp: { endpoint: otlp.url, headers: { 'x-api-key': 'refu5ed-secret' } } } },
      startNow: false,
    });
    await s.start({ OTEL_BSP_SCHEDULE_DELAY: '50' });
    for (let i = 1; i <= 3; i++) {
      await insertOrder(s.db);
      await s.receiver.waitForCount(i);
      // This event's span is exported, and refused, before the next event.
      await waitFor(() => otlp.exports.length >= i, { what: `export ${i}` });
    }
    assert.ok(s.receiver.requests.every((r) => TRACEPARENT.test(String(r.headers.traceparent))));
    await waitFor(async () => (await outbox(s.db)).filter((r) => r.status === 'delivered').length === 3, { what: 'three delivered' });
    await s.service!.waitForLog('"msg":"tracing: ');
    const warnings = s.service!.output().match(/"msg":"tracing: [^"]*"/g) ?? [];
    assert.equal(warnings.length, 1, `one warning a minute at most, for ${otlp.exports.length} refused exports: ${warnings.join(', ')}`);
    assert.doesNotMatch(s.service!.output(), /refu5ed-secret/);
    assert.equal((await s.service!.stop()).code, 0);
  });

  it('off: no traceparent on the webhook, and the start says tracing is off', async () => {
    const s = await stack('tracing-off');
    await insertOrder(s.db);
    const [request] = await s.receiver.waitForCount(1);
    assert.equal(request!.headers.traceparent, undefined);
    assert.equal(request!.headers.tracestate, undefined);
    assert.match(s.service!.output(), /"tracing":"off"/);
  });
});
