// npm run bench:control-plane: 1,000 simulated proxy streams (in this process, each on its
// own gRPC connection) on one control plane (its own process, real PostgreSQL). Measures the
// time from `apply` to each proxy's ACK (p50, p99, last) and the control plane's memory per
// connected proxy. A baseline round with few streams runs first in the same script, so the
// figures can be read as ratios on this shared, noisy machine. Prints a table and writes JSON
// to bench/results/. It does not assert.
//
//   npm run bench:control-plane -- [--streams 1000] [--rounds 5] [--baseline-streams 10]
//
// The simulated proxies decode each snapshot and ACK at once (no validation, no apply): the
// figures are the control plane's fan-out, not a proxy's apply time.
import * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pLimit from 'p-limit';
import { AggregatedDiscoveryServiceClient, type DiscoveryRequest, type DiscoveryResponse } from '../proto/gen/tsmesh/discovery/v1/discovery.js';
import { ApiClient } from '../control-plane/src/api/client.js';
import { freePorts, startPostgres, waitFor } from '../test/support/servers.js';
import { exitOnSignals, killOnExit } from '../examples/demo/exit-hooks.js';

// A Ctrl-C, SIGTERM or SIGHUP exits through the exit hooks that kill what this started.
exitOnSignals();

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const STREAMS = Number(args.get('streams') ?? 1000);
const ROUNDS = Number(args.get('rounds') ?? 5);
const BASELINE = Number(args.get('baseline-streams') ?? 10);
const TOKEN = 'bench-token';
const TSMESH = fileURLToPath(new URL('../cli/tsmesh.js', import.meta.url));
const RESULTS = fileURLToPath(new URL('../../bench/results/', import.meta.url));

function document(timeoutMs: number): string {
  const routes = Array.from({ length: 10 }, (_, i) => `
      - name: route-${i}
        match: { path: { prefix: /api/${i}/ }, methods: [GET, POST] }
        cluster: backend-${i % 3}
        timeout: ${timeoutMs}ms
        retry: { attempts: 2, on: [connect-failure, reset, gateway-error] }
        rateLimit: { requestsPerSecond: 1000, burst: 200 }`).join('');
  const clusters = [0, 1, 2].map((i) => `
  - name: backend-${i}
    endpoints: [127.0.0.1:${9001 + i}, 127.0.0.1:${9101 + i}, 127.0.0.1:${9201 + i}]
    loadBalancer: peak-ewma
    circuitBreaker: { maxConnections: 1024, maxPending: 1024, maxRequests: 1024, maxRetries: 3 }
    outlierDetection: { consecutiveFailures: 5, baseEjectionTime: 30s, maxEjectionPercent: 50 }
    healthCheck: { path: /health, interval: 5s, timeout: 1s }`).join('');
  return `selector: bench-*\nlisteners:\n  - name: edge\n    address: 127.0.0.1:8080\n    routes:${routes}\nclusters:${clusters}\n`;
}

interface SimStream {
  version: string;
  acked: Map<string, number>;
  call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
  client: AggregatedDiscoveryServiceClient;
}

function openStream(address: string, node: string, onAck: () => void): SimStream {
  // A connection of its own, as separate proxies would have (no shared subchannel).
  const client = new AggregatedDiscoveryServiceClient(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${TOKEN}`);
  const call = client.streamConfig(md);
  const s: SimStream = { version: '', acked: new Map(), call, client };
  call.on('data', (res: DiscoveryResponse) => {
    call.write({ node: undefined, versionInfo: res.versionInfo, responseNonce: res.nonce, errorDetail: undefined });
    s.version = res.versionInfo;
    s.acked.set(res.versionInfo, performance.now());
    onAck();
  });
  call.on('error', () => {});
  // Like a real proxy, it reports its admin address (kept per stream in the status).
  call.write({ node: { id: node, metadata: { adminAddress: `127.0.0.1:${15000 + (Number(node.slice(node.lastIndexOf('-') + 1)) % 50000)}` } }, versionInfo: '', responseNonce: '', errorDetail: undefined });
  return s;
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

async function heapBytes(http: string): Promise<number> {
  const text = await (await fetch(`http://${http}/metrics`)).text();
  const m = /^tsmesh_cp_nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
const ms = (v: number) => `${v.toFixed(1)} ms`;
const mib = (v: number) => `${(v / 1024 / 1024).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const pg = process.env.DATABASE_URL ? undefined : await startPostgres();
  const [grpcPort, httpPort] = (await freePorts(2)) as [number, number];
  const http = `127.0.0.1:${httpPort}`;
  const cp: ChildProcess = spawn(process.execPath, [TSMESH, 'control-plane', '--grpc', `127.0.0.1:${grpcPort}`, '--http', http, '--log-level', 'warn'], {
    env: { ...process.env, DATABASE_URL: process.env.DATABASE_URL ?? pg!.url, TSMESH_TOKEN: TOKEN },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  killOnExit(cp);
  const stopCp = () => new Promise<void>((resolve) => (cp.exitCode !== null || cp.signalCode !== null ? resolve() : (cp.once('exit', () => resolve()), cp.kill('SIGTERM'))));
  const streams: SimStream[] = [];
  try {
    {
      await waitFor('control plane ready', async () => (await fetch(`http://${http}/ready`)).ok, 60_000);
      const api = new ApiClient({ server: http, token: TOKEN, author: 'bench' });
      let timeout = 1000;
      await api.apply(document(timeout), 'bench: initial');
      const grpcAddress = `127.0.0.1:${grpcPort}`;

      await new Promise((r) => setTimeout(r, 1000));
      const idle = { rss: rssBytes(cp.pid!), heap: await heapBytes(http) };

      const rounds: Array<{ streams: number; round: number; p50: number; p99: number; last: number; applyCall: number }> = [];
      const runRounds = async (count: number, n: number) => {
        for (let r = 1; r <= count; r++) {
          timeout += 1;
          const t0 = performance.now();
          const answer = await api.apply(document(timeout), `bench round ${r}`);
          const applyCall = performance.now() - t0;
          await waitFor(`${n} ACKs of ${answer.version}`, async () => streams.every((s) => s.acked.has(answer.version)), 60_000);
          const lat = streams.map((s) => s.acked.get(answer.version)! - t0).sort((a, b) => a - b);
          rounds.push({ streams: n, round: r, p50: pct(lat, 50), p99: pct(lat, 99), last: lat[lat.length - 1]!, applyCall });
          await new Promise((res) => setTimeout(res, 300));
        }
      };

      const open = async (upTo: number) => {
        const limit = pLimit(50);
        const first = streams.length;
        await Promise.all(
          Array.from({ length: upTo - first }, (_, i) =>
            limit(async () => {
              streams.push(openStream(grpcAddress, `bench-${first + i}`, () => {}));
            }),
          ),
        );
        const current = String((await api.history({ selector: 'bench-*', limit: 1 })).revisions[0]!.revision);
        await waitFor(`${upTo} streams on ${current}`, async () => streams.every((s) => s.acked.has(current)), 120_000);
      };

      await open(BASELINE);
      await runRounds(Math.min(3, ROUNDS), BASELINE);
      const tOpen1 = performance.now();
      await open(STREAMS);
      const connectAll = performance.now() - tOpen1;
      await new Promise((r) => setTimeout(r, 1000));
      const loaded = { rss: rssBytes(cp.pid!), heap: await heapBytes(http) };
      await runRounds(ROUNDS, STREAMS);

      const summarize = (n: number) => {
        const rs = rounds.filter((r) => r.streams === n);
        const med = (k: 'p50' | 'p99' | 'last' | 'applyCall') => rs.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(rs.length / 2)]!;
        return { streams: n, rounds: rs.length, p50: med('p50'), p99: med('p99'), last: med('last'), worstP99: Math.max(...rs.map((r) => r.p99)), applyCall: med('applyCall') };
      };
      const base = summarize(BASELINE);
      const full = summarize(STREAMS);
      const perProxy = { rss: (loaded.rss - idle.rss) / (STREAMS - 0), heap: (loaded.heap - idle.heap) / STREAMS };

      console.log(`\ncontrol plane: apply -> ACK (time from the apply call to each simulated proxy's ACK; median over rounds)`);
      console.log('| streams | rounds | apply call | ACK p50 | ACK p99 | last ACK | worst p99 |');
      console.log('|---:|---:|---:|---:|---:|---:|---:|');
      for (const s of [base, full]) console.log(`| ${s.streams} | ${s.rounds} | ${ms(s.applyCall)} | ${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.last)} | ${ms(s.worstP99)} |`);
      console.log(`\nratio ${STREAMS} vs ${BASELINE} streams: p99 x${(full.p99 / base.p99).toFixed(1)}; target p99 < 2000 ms: ${full.worstP99 < 2000 ? 'met' : 'NOT met'} (worst round ${ms(full.worstP99)})`);
      console.log(`connecting ${STREAMS - BASELINE} streams and serving each its first snapshot: ${ms(connectAll)}`);
      console.log(`\ncontrol plane memory: idle RSS ${mib(idle.rss)}, heap ${mib(idle.heap)}; with ${STREAMS} proxies RSS ${mib(loaded.rss)}, heap ${mib(loaded.heap)}`);
      console.log(`per connected proxy: RSS ${(perProxy.rss / 1024).toFixed(1)} KiB, heap ${(perProxy.heap / 1024).toFixed(1)} KiB`);

      mkdirSync(RESULTS, { recursive: true });
      const file = `${RESULTS}control-plane-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
      writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), streams: STREAMS, baselineStreams: BASELINE, rounds, summary: { baseline: base, full }, memory: { idle, loaded, perProxy }, connectAllMs: connectAll }, null, 2) + '\n');
      console.log(`\nwritten: ${file}`);
    }
  } finally {
    for (const s of streams) {
      s.call.cancel();
      s.client.close();
    }
    await stopCp();
    await pg?.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
