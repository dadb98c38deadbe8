// What tracing costs the request path, per request, measured through the API the core calls
// (startRequest → setRoute → startAttempt → attempt.end → end) in one process, one run:
//
//   off                  tracing disabled: `tracer?.startRequest(...)` with tracer undefined
//   on, caller unsampled a caller's traceparent says "not sampled": passes through, no span
//   on, ratio 0          new traces, none sampled: ids generated, the decision propagated
//   on, sampled          every request recorded and exported over OTLP/HTTP (protobuf) to a
//                        local sink in this process (serialising and sending counted as CPU)
//
// and, for scale, what a global AsyncLocalStorage context manager (NodeSDK's default, which
// this design avoids) adds to a request that awaits 10 promises, in Node 20 where it rides on
// async_hooks. Figures are ns of CPU per request (process.cpuUsage), median of interleaved rounds;
// the machine is shared, so compare ratios within one run. A benchmark: it prints, it does not assert.
//
//   npm run bench:tracing [-- --requests 20000 --rounds 5]
import { AsyncLocalStorage } from 'node:async_hooks';
import { createServer } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tracing as tracingSchema } from '../proxy/src/config/schema.js';
import { createTracer, type Tracer, type TracedRequest } from '../proxy/src/telemetry/tracing.js';
import { repoRoot } from '../test/support/repo.js';

const args = process.argv.slice(2);
const flag = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const REQUESTS = flag('requests', 20_000);
const ROUNDS = flag('rounds', 5);
const BATCH = 500;

const plain: TracedRequest = { method: 'POST', target: '/query', header: (n) => (n === 'host' ? 'gateway:8080' : undefined) };
const unsampledCaller: TracedRequest = {
  method: 'POST',
  target: '/query',
  header: (n) => (n === 'traceparent' ? '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00' : n === 'host' ? 'gateway:8080' : undefined),
};

let sink = 0;
function oneRequest(tracer: Tracer | undefined, req: TracedRequest): void {
  const span = tracer?.startRequest(req);
  span?.setRoute('query', 'gateway');
  const attempt = span?.startAttempt(1, '127.0.0.1:9001');
  if (attempt) sink += attempt.headers.length;
  attempt?.end(200);
  span?.end(200, 'none');
}

async function cpuPerRequest(run: () => void | Promise<void>, isAsync: boolean, finish?: () => Promise<void>): Promise<number> {
  const start = process.cpuUsage();
  for (let done = 0; done < REQUESTS; done += BATCH) {
    if (isAsync) for (let i = 0; i < BATCH; i++) await run();
    else for (let i = 0; i < BATCH; i++) run();
    // Let timers and sockets run (span export happens here), as between requests in a proxy.
    await new Promise((r) => setImmediate(r));
  }
  // Export everything this mode queued, inside its own measurement.
  if (finish) await finish();
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / REQUESTS;
}

async function awaits10(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve(i);
}

async function main(): Promise<void> {
  let received = 0;
  const sinkServer = createServer((req, res) => {
    req.on('data', (c: Buffer) => (received += c.length));
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  await new Promise<void>((r) => sinkServer.listen(0, '127.0.0.1', () => r()));
  const endpoint = `http://127.0.0.1:${(sinkServer.address() as { port: number }).port}/v1/traces`;

  const off = await createTracer(tracingSchema.parse({}));
  const ratio0 = await createTracer(tracingSchema.parse({ enabled: true, endpoint, samplingRatio: 0 }));
  const sampled = await createTracer(tracingSchema.parse({ enabled: true, endpoint, samplingRatio: 1, exportInterval: '200ms' }));

  const modes: Array<[string, () => void | Promise<void>]> = [
    ['off', () => oneRequest(off, plain)],
    ['on, caller unsampled', () => oneRequest(ratio0, unsampledCaller)],
    ['on, ratio 0', () => oneRequest(ratio0, plain)],
    ['on, sampled + OTLP export', () => oneRequest(sampled, plain)],
  ];
  const alsModes: Array<[string, () => void | Promise<void>]> = [
    ['10 awaits, no AsyncLocalStorage', () => awaits10()],
    ['10 awaits, AsyncLocalStorage active', () => awaits10()],
  ];
  const als = new AsyncLocalStorage<object>();

  // Warm up every path (JIT) before measuring.
  for (const [, run] of modes) for (let i = 0; i < 2000; i++) await run();
  await sampled!.forceFlush();
  als.disable();

  const results = new Map<string, number[]>([...modes, ...alsModes].map(([m]) => [m, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [mode, run] of modes) results.get(mode)!.push(await cpuPerRequest(run, false, mode.includes('sampled') ? () => sampled!.forceFlush(10_000) : undefined));
  }
  await sampled!.shutdown(5000);
  await ratio0!.shutdown();
  sinkServer.close();

  // Apart from the rest: the tracers' garbage and the sink's sockets would blur a ~1 µs figure.
  for (const [, run] of alsModes) for (let i = 0; i < 2000; i++) await run();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [mode, run] of alsModes) {
      const measure = () => cpuPerRequest(run, true);
      let ns: number;
      if (mode.includes('AsyncLocalStorage active')) {
        ns = await als.run({ request: round }, measure);
        // Once enabled, its promise hook slows every later promise too; off again for the other modes.
        als.disable();
      } else {
        ns = await measure();
      }
      results.get(mode)!.push(ns);
    }
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const base = median(results.get('off')!);
  const awaitBase = median(results.get('10 awaits, no AsyncLocalStorage')!);
  const rows = [...modes, ...alsModes].map(([mode]) => {
    const ns = median(results.get(mode)!);
    const vs = mode.startsWith('10 awaits') ? ns - awaitBase : ns - base;
    return { mode, nsPerRequest: Math.round(ns), addedNs: Math.round(vs) };
  });

  console.log(`# tracing cost per request (${REQUESTS} requests x ${ROUNDS} rounds, median; CPU ns of this process)\n`);
  console.log('| mode | CPU ns/request | added vs baseline |');
  console.log('|---|---:|---:|');
  for (const r of rows) console.log(`| ${r.mode} | ${r.nsPerRequest} | ${r.mode === 'off' || r.mode.endsWith('no AsyncLocalStorage') ? '(baseline)' : `+${r.addedNs}`} |`);
  console.log(`\nOTLP bytes received by the sink: ${received} (${sink > 0 ? 'headers built' : ''})`);

  const dir = join(repoRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `tracing-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ node: process.version, requests: REQUESTS, rounds: ROUNDS, rows, raw: Object.fromEntries(results) }, null, 2));
  console.log(`results: ${file}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
