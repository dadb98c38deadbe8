// A local OTLP/HTTP trace receiver for benchmarks: accepts POST /v1/traces (protobuf, as the
// proxy's default exporter sends), decodes each export with the code generated from the OTLP
// protos (test/support/otlp) only to count its spans, and keeps nothing else. The test
// receiver (test/support/otlp-receiver.ts) keeps every span for queries, which under load would
// grow without bound; this one costs little CPU and no memory on the shared machine.
import { createServer, type Server } from 'node:http';
import { ExportTraceServiceRequest, ExportTraceServiceResponse } from '../test/support/otlp/gen/opentelemetry/proto/collector/trace/v1/trace_service.js';

export interface OtlpSink {
  readonly tracesUrl: string;
  /** Spans, export requests and body bytes received so far. */
  readonly counts: { spans: number; exports: number; bytes: number; errors: number };
  close(): Promise<void>;
}

const OK = Buffer.from(ExportTraceServiceResponse.encode({}).finish());

export async function startOtlpSink(): Promise<OtlpSink> {
  const counts = { spans: 0, exports: 0, bytes: 0, errors: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      try {
        if (req.method !== 'POST' || req.url !== '/v1/traces') throw new Error(`${req.method} ${req.url}`);
        const decoded = ExportTraceServiceRequest.decode(body);
        for (const rs of decoded.resourceSpans) for (const ss of rs.scopeSpans) counts.spans += ss.spans.length;
        counts.exports++;
        counts.bytes += body.length;
        res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': OK.length }).end(OK);
      } catch {
        counts.errors++;
        res.writeHead(400).end();
      }
    });
  });
  server.keepAliveTimeout = 75_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    tracesUrl: `http://127.0.0.1:${port}/v1/traces`,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
