// The bench's OTLP/HTTP collector stand-in, in its own process like the receiver: takes POST
// /v1/traces (protobuf, the service's default encoding), counts the spans and answers 200.
// Driven by its parent over IPC: 'reset' zeroes the count, 'count' returns it.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export type SinkRequest = { type: 'reset' } | { type: 'count' };
export type SinkMessage = { type: 'listening'; port: number } | { type: 'reset' } | { type: 'count'; spans: number; exports: number };

let spans = 0;
let exports = 0;

/** The length-delimited fields numbered `n` of a protobuf message (other fields skipped). */
function fieldsNumbered(buf: Buffer, n: number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  const varint = () => {
    let value = 0;
    for (let factor = 1; ; factor *= 128) {
      const byte = buf[at++]!;
      value += (byte & 0x7f) * factor;
      if (byte < 0x80) return value;
    }
  };
  while (at < buf.length) {
    const tag = varint();
    const wire = tag & 7;
    if (wire === 0) varint();
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const length = varint();
      if (tag >>> 3 === n) out.push(buf.subarray(at, at + length));
      at += length;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  return out;
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    // ExportTraceServiceRequest → ResourceSpans (1) → ScopeSpans (2) → Span (2).
    for (const resourceSpans of fieldsNumbered(Buffer.concat(chunks), 1)) {
      for (const scopeSpans of fieldsNumbered(resourceSpans, 2)) spans += fieldsNumbered(scopeSpans, 2).length;
    }
    exports++;
    res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.send!({ type: 'listening', port: (server.address() as AddressInfo).port } satisfies SinkMessage);
});

process.on('message', (message: SinkRequest) => {
  if (message.type === 'reset') {
    spans = 0;
    exports = 0;
    process.send!({ type: 'reset' } satisfies SinkMessage);
  } else if (message.type === 'count') {
    process.send!({ type: 'count', spans, exports } satisfies SinkMessage);
  }
});
process.on('disconnect', () => {
  server.closeAllConnections();
  server.close();
  process.exit(0);
});
