// A real OTLP/HTTP traces receiver on 127.0.0.1 and a free port: takes POST /v1/traces in either
// encoding (protobuf or JSON, gzipped or not), decodes every span and keeps the raw bodies.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export type AttributeValue = string | number | boolean;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP's enum: 3 is CLIENT. */
  kind: number;
  attributes: Record<string, AttributeValue>;
  /** OTLP's enum: 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string };
  resource: Record<string, AttributeValue>;
}

export interface OtlpExport {
  headers: IncomingHttpHeaders;
  /** The body as received (after gunzip): for searching it for what must not be there. */
  body: Buffer;
}

export interface OtlpReceiver {
  /** The base URL (what OTEL_EXPORTER_OTLP_ENDPOINT takes). */
  url: string;
  exports: OtlpExport[];
  spans: ReceivedSpan[];
  /** What to answer; anything but 200 refuses the export (the spans are not kept, the export is). */
  status: number;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const receiver: OtlpReceiver = { url: '', exports: [], spans: [], status: 200, close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      if (receiver.status !== 200) {
        receiver.exports.push({ headers: req.headers, body });
        res.writeHead(receiver.status, { 'content-type': 'text/plain' }).end('refused');
        return;
      }
      const json = req.headers['content-type']?.startsWith('application/json');
      try {
        receiver.spans.push(...(json ? spansFromJson(JSON.parse(body.toString('utf8'))) : spansFromProtobuf(body)));
      } catch (error) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(String(error));
        return;
      }
      receiver.exports.push({ headers: req.headers, body });
      // An empty ExportTraceServiceResponse: all accepted.
      if (json) res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  receiver.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}

// ---- OTLP JSON (the protobuf JSON mapping; ids as hex) ----

type JsonKeyValue = { key: string; value: Record<string, unknown> };

function jsonAttributes(list: JsonKeyValue[] | undefined): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const { key, value } of list ?? []) {
    if ('stringValue' in value) out[key] = value.stringValue as string;
    else if ('intValue' in value) out[key] = Number(value.intValue);
    else if ('boolValue' in value) out[key] = value.boolValue as boolean;
    else if ('doubleValue' in value) out[key] = value.doubleValue as number;
  }
  return out;
}

function spansFromJson(request: any): ReceivedSpan[] {
  return (request.resourceSpans ?? []).flatMap((rs: any) => {
    const resource = jsonAttributes(rs.resource?.attributes);
    return (rs.scopeSpans ?? []).flatMap((ss: any) =>
      (ss.spans ?? []).map(
        (span: any): ReceivedSpan => ({
          traceId: span.traceId,
          spanId: span.spanId,
          parentSpanId: span.parentSpanId ?? '',
          name: span.name,
          kind: span.kind,
          attributes: jsonAttributes(span.attributes),
          status: { code: span.status?.code ?? 0, message: span.status?.message ?? '' },
          resource,
        }),
      ),
    );
  });
}

// ---- OTLP protobuf (opentelemetry/proto/collector/trace/v1), only the fields we read ----

type Field = { wire: number; varint?: bigint; bytes?: Buffer; fixed?: Buffer };

/** A message's fields by number, in order. */
function fields(buf: Buffer): Map<number, Field[]> {
  const out = new Map<number, Field[]>();
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const byte = buf[at++];
      if (byte === undefined) throw new Error('truncated varint');
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
    }
  };
  while (at < buf.length) {
    const tag = varint();
    const number = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    const take = (length: number) => {
      if (at + length > buf.length) throw new Error('truncated message');
      at += length;
      return buf.subarray(at - length, at);
    };
    let field: Field;
    if (wire === 0) field = { wire, varint: varint() };
    else if (wire === 1) field = { wire, fixed: take(8) };
    else if (wire === 5) field = { wire, fixed: take(4) };
    else if (wire === 2) field = { wire, bytes: take(Number(varint())) };
    else throw new Error(`unexpected wire type ${wire}`);
    out.set(number, [...(out.get(number) ?? []), field]);
  }
  return out;
}

const all = (message: Map<number, Field[]>, n: number) => (message.get(n) ?? []).map((f) => f.bytes!);
const one = (message: Map<number, Field[]>, n: number) => message.get(n)?.[0];

function protobufAttributes(list: Buffer[]): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const kv of list.map(fields)) {
    const key = one(kv, 1)!.bytes!.toString('utf8');
    const value = fields(one(kv, 2)?.bytes ?? Buffer.alloc(0));
    if (value.has(1)) out[key] = one(value, 1)!.bytes!.toString('utf8');
    else if (value.has(2)) out[key] = one(value, 2)!.varint === 1n;
    else if (value.has(3)) out[key] = Number(BigInt.asIntN(64, one(value, 3)!.varint!));
    else if (value.has(4)) out[key] = one(value, 4)!.fixed!.readDoubleLE(0);
  }
  return out;
}

function spansFromProtobuf(body: Buffer): ReceivedSpan[] {
  return all(fields(body), 1).flatMap((rsBytes) => {
    const rs = fields(rsBytes);
    const resource = protobufAttributes(all(fields(one(rs, 1)?.bytes ?? Buffer.alloc(0)), 1));
    return all(rs, 2).flatMap((ssBytes) =>
      all(fields(ssBytes), 2).map((spanBytes): ReceivedSpan => {
        const span = fields(spanBytes);
        const status = fields(one(span, 15)?.bytes ?? Buffer.alloc(0));
        return {
          traceId: one(span, 1)!.bytes!.toString('hex'),
          spanId: one(span, 2)!.bytes!.toString('hex'),
          parentSpanId: one(span, 4)?.bytes?.toString('hex') ?? '',
          name: one(span, 5)!.bytes!.toString('utf8'),
          kind: Number(one(span, 6)?.varint ?? 0n),
          attributes: protobufAttributes(all(span, 9)),
          status: { code: Number(one(status, 3)?.varint ?? 0n), message: one(status, 2)?.bytes?.toString('utf8') ?? '' },
          resource,
        };
      }),
    );
  });
}
