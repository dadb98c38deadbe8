// npm run bench:overhead — what the proxy costs, against nginx, in one run on one machine.
//
// Three paths to the SAME upstream, loaded by wrk (C, cheap on CPU) at 100 and 1000 keep-alive
// connections for a bounded time each:
//   direct  wrk → upstream
//   tsmesh  wrk → tsmesh proxy (a child process: `tsmesh proxy --config`) → upstream
//   nginx   wrk → nginx (1 worker, upstream keepalive) → upstream
// Printed per run: requests/s, p50/p99 latency, socket errors, non-2xx answers, the proxy's CPU
// seconds per 1000 requests (utime+stime deltas from /proc/PID/stat; the stime share shown as
// "kernel %") and peak RSS; and the
// ratios tsmesh/direct and tsmesh/nginx. JSON lands in bench/results/ (gitignored) and a
// Markdown table on stdout. A benchmark, not a test: it prints and never asserts.
//
// Two upstreams, one after the other in the same run (each with its own direct/tsmesh/nginx):
//   node   an app-like upstream (a node:http server, bench/fixed-upstream.ts): the setup of
//          DESIGN.md's table, where the upstream itself takes a good part of the CPU
//   nginx  a second nginx (1 worker) answering the same small JSON from memory (`return 200`):
//          the cheapest HTTP server there is, so the proxy's own cost is all that differs
//          between direct and proxied; the worst case for a proxy
// Each (upstream, connections, path) runs --rounds times, interleaved (round 1 of every path,
// then round 2, ...) so that the machine's noise hits all paths alike; the tables show the
// median of the rounds, and the ratios are ratios of those medians.
//
// Targets (issue 2): tsmesh >= 0.75 x nginx throughput at 100 connections, zero socket errors
// at 1000 connections, CPU per 1000 requests <= 2 x nginx's.
//
// Options: --duration 3 (s per run) --warmup 2 (s) --connections 100,1000 --rounds 3
//          --threads 1 (wrk threads) --access-log (turn the proxy's access log on, to a temp file)
//          --upstream node,nginx (either or both, in that order)
//          --accept-descriptors 32 (the tsmesh listener's acceptDescriptors)
//          --floor (a fourth path: wrk → tcp-relay → upstream, tsmesh's socket layer relaying
//          bytes with no HTTP (bench/tcp-relay.ts); prints floor / nginx, what the runtime and
//          the socket layer cost, and tsmesh / floor, what the request path costs on top; both
//          read so against the static upstream, where the proxies' own cost is all that differs)
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitOnSignals, killGroup, killOnExit } from '../examples/demo/exit-hooks.js';
import { freePort, freePorts, portOpen } from '../proxy/src/net/ports.js';

// A Ctrl-C, SIGTERM or SIGHUP exits through the exit hooks that kill what this started.
exitOnSignals();

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : def;
};
const DURATION = Number(opt('duration', '3'));
const WARMUP = Number(opt('warmup', '2'));
const CONNECTIONS = opt('connections', '100,1000').split(',').map(Number);
const ROUNDS = Number(opt('rounds', '3'));
const THREADS = Number(opt('threads', '1'));
const ACCESS_LOG = args.includes('--access-log');
// Descriptors of tsmesh's listening socket (listener acceptDescriptors): nginx here runs with
// multi_accept on, which takes every pending connection at once; 32 descriptors are tsmesh's
// way to the same (the mesh's edge uses 32). With 1, its default, the first requests of a
// burst of 1000 new connections wait seconds to be accepted (docs/performance.md).
const ACCEPT_DESCRIPTORS = Number(opt('accept-descriptors', '32'));
const FLOOR = args.includes('--floor');
const UPSTREAMS = opt('upstream', 'node,nginx').split(',') as Array<'node' | 'nginx'>;
for (const u of UPSTREAMS) if (u !== 'node' && u !== 'nginx') throw new Error(`--upstream: node or nginx, not ${u}`);
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

const BODY = JSON.stringify({ status: 'ok', rows: [{ id: 1, title: 'test document', score: 0.75 }] });

// Killed (with their process groups: nginx's workers) at the end of a run and, through
// killOnExit, whenever this process exits, also on SIGINT/SIGTERM/SIGHUP.
const children: ChildProcess[] = [];
function own(child: ChildProcess): ChildProcess {
  children.push(child);
  killOnExit(child);
  return child;
}
function cleanup(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) killGroup(c);
}

async function waitPort(port: number, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await portOpen(port)) return;
    if (Date.now() > end) throw new Error(`${what} did not start on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function startNginx(dir: string, conf: string, what: string): ChildProcess {
  mkdirSync(join(dir, 'logs'), { recursive: true });
  writeFileSync(join(dir, 'nginx.conf'), conf);
  // Detached: the master leads a process group, so killGroup takes its workers too (a
  // SIGKILLed master leaves them running).
  const child = own(spawn('nginx', ['-p', dir, '-c', 'nginx.conf', '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true }));
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.once('exit', (code) => {
    if (code !== 0 && code !== null) console.error(`${what} exited ${code}: ${err}`);
  });
  return child;
}

const commonNginx = (dir: string) => `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 8192; multi_accept on; }
`;
const httpCommon = (dir: string) => `
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
`;

function upstreamConf(dir: string, port: number): string {
  return `${commonNginx(dir)}
http {
  ${httpCommon(dir)}
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / { default_type application/json; return 200 '${BODY}'; }
  }
}`;
}

function proxyConf(dir: string, port: number, upstreamPort: number): string {
  return `${commonNginx(dir)}
http {
  ${httpCommon(dir)}
  upstream backend { server 127.0.0.1:${upstreamPort}; keepalive 1024; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_buffering on;
    }
  }
}`;
}

function tsmeshConf(port: number, adminPort: number, upstreamPort: number, logPath: string): string {
  return `admin:
  address: 127.0.0.1:${adminPort}
listeners:
  - name: bench
    address: 127.0.0.1:${port}
    maxConnections: 20000
    acceptDescriptors: ${ACCEPT_DESCRIPTORS}
    routes:
      - name: all
        match: { path: { prefix: / } }
        cluster: upstream
        timeout: 10s
clusters:
  - name: upstream
    endpoints: [127.0.0.1:${upstreamPort}]
    loadBalancer: peak-ewma
    pool: { maxConnectionsPerEndpoint: 1024, idleTimeout: 30s }
accessLog:
  enabled: ${ACCESS_LOG}
  path: ${logPath}
drain:
  delay: 0ms
  timeout: 1s
`;
}

/** CPU seconds of processes so far, in user space and in the kernel (system). */
function cpuTimes(pids: number[]): { user: number; system: number } {
  let [user, system] = [0, 0];
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      user += Number(fields[11]);
      system += Number(fields[12]);
    } catch {
      // process gone
    }
  }
  return { user: user / CLK_TCK, system: system / CLK_TCK };
}

/** CPU seconds (user + system) of processes so far. */
function cpuSeconds(pids: number[]): number {
  const t = cpuTimes(pids);
  return t.user + t.system;
}

/** Peak resident set (VmHWM) in MiB, summed over processes. */
function peakRssMiB(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      // gone
    }
  }
  return Math.round((kb / 1024) * 10) / 10;
}

function childPids(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)]).toString().trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

interface WrkResult {
  rps: number;
  requests: number;
  p50ms: number;
  p99ms: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  non2xx: number;
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

function runWrk(port: number, connections: number, seconds: number): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    const threads = Math.min(THREADS, connections);
    const child = spawn('wrk', ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--latency', '--timeout', '10s', `http://127.0.0.1:${port}/query`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    killOnExit(child);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', () => {
      const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? 0);
      const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      resolve({
        rps: num(/Requests\/sec:\s+([\d.]+)/),
        requests: num(/(\d+) requests in/),
        p50ms: toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? ''),
        p99ms: toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? ''),
        socketErrors: se ? { connect: +se[1]!, read: +se[2]!, write: +se[3]!, timeout: +se[4]! } : { connect: 0, read: 0, write: 0, timeout: 0 },
        non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
      });
    });
  });
}

interface Row extends WrkResult {
  upstream: string;
  target: string;
  connections: number;
  round: number;
  cpuSecondsPer1k: number | null;
  /** Share of that CPU spent in the kernel (system time): sockets, epoll, wake-ups. */
  kernelShare: number | null;
  peakRssMiB: number | null;
}

interface PathSummary {
  rps: number;
  p50ms: number;
  p99ms: number;
  socketErrors: number;
  non2xx: number;
  cpuSecondsPer1k: number | null;
  kernelShare: number | null;
  peakRssMiB: number | null;
}

interface Summary {
  upstream: string;
  connections: number;
  direct: PathSummary;
  tsmesh: PathSummary;
  nginx: PathSummary;
  /** With --floor: the socket layer relaying bytes (bench/tcp-relay.ts). */
  floor?: PathSummary;
  ratios: {
    tsmeshOverDirect: number;
    tsmeshOverNginx: number;
    nginxOverDirect: number;
    cpuTsmeshOverNginx: number | null;
    floorOverNginx?: number;
    tsmeshOverFloor?: number;
    cpuTsmeshOverFloor?: number | null;
  };
}

/** The middle value (the mean of the two middle ones for an even count). */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs direct / tsmesh / nginx against one kind of upstream; returns every run and the medians. */
async function benchUpstream(upstream: 'node' | 'nginx', dir: string): Promise<{ rows: Row[]; summary: Summary[] }> {
  const [upPort, nginxPort, tsPort, tsAdmin, floorPort = 0] = (await freePorts(FLOOR ? 5 : 4)) as [number, number, number, number, number?];
  let up: ChildProcess;
  if (upstream === 'node') {
    up = own(spawn(process.execPath, [join(root, 'dist', 'bench', 'fixed-upstream.js'), String(upPort)], { stdio: 'ignore' }));
  } else up = startNginx(join(dir, 'upstream'), upstreamConf(join(dir, 'upstream'), upPort), 'upstream nginx');
  const ngx = startNginx(join(dir, 'proxy'), proxyConf(join(dir, 'proxy'), nginxPort, upPort), 'proxy nginx');
  writeFileSync(join(dir, 'tsmesh.yaml'), tsmeshConf(tsPort, tsAdmin, upPort, join(dir, 'access.log')));
  const ts = own(spawn(process.execPath, [join(root, 'dist', 'cli', 'tsmesh.js'), 'proxy', '--config', join(dir, 'tsmesh.yaml')], { stdio: ['ignore', 'pipe', 'inherit'] }));
  // The relay listens on as many descriptors as tsmesh, so that both accept a burst alike.
  const floorArgs = [join(root, 'dist', 'bench', 'tcp-relay.js'), String(floorPort), String(upPort), String(ACCEPT_DESCRIPTORS)];
  const floor = FLOOR ? own(spawn(process.execPath, floorArgs, { stdio: ['ignore', 'ignore', 'inherit'] })) : undefined;
  await Promise.all([
    waitPort(upPort, `${upstream} upstream`),
    waitPort(nginxPort, 'proxy nginx'),
    waitPort(tsPort, 'tsmesh'),
    ...(floor ? [waitPort(floorPort, 'tcp-relay')] : []),
  ]);
  const ngxPids = () => [ngx.pid!, ...childPids(ngx.pid!)];
  const targets: Array<{ name: string; port: number; pids: () => number[] }> = [
    { name: 'direct', port: upPort, pids: () => [] },
    { name: 'tsmesh', port: tsPort, pids: () => [ts.pid!] },
    { name: 'nginx', port: nginxPort, pids: ngxPids },
  ];
  if (floor) targets.push({ name: 'floor', port: floorPort, pids: () => [floor.pid!] });

  console.error(`${upstream} upstream:`);
  const rows: Row[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const connections of CONNECTIONS) {
      for (const t of targets) {
        // Warm-up at the same connection count: JIT, upstream pools. (Each wrk run opens its
        // connections anew, so the burst of new connections is part of every measured run.)
        if (round === 1) await runWrk(t.port, connections, WARMUP);
        const pids = t.pids();
        const cpu0 = cpuTimes(pids);
        const r = await runWrk(t.port, connections, DURATION);
        const cpu1 = cpuTimes(pids);
        const [user, system] = [cpu1.user - cpu0.user, cpu1.system - cpu0.system];
        const row: Row = {
          upstream,
          target: t.name,
          connections,
          round,
          ...r,
          cpuSecondsPer1k: pids.length > 0 && r.requests > 0 ? ((user + system) / r.requests) * 1000 : null,
          kernelShare: pids.length > 0 && user + system > 0 ? system / (user + system) : null,
          peakRssMiB: pids.length > 0 ? peakRssMiB(pids) : null,
        };
        rows.push(row);
        const se = r.socketErrors;
        console.error(
          `  round ${round} ${t.name.padEnd(6)} c=${String(connections).padEnd(4)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50ms.toFixed(2)}ms  p99 ${r.p99ms.toFixed(2)}ms  ` +
            `errors ${se.connect + se.read + se.write + se.timeout}  non-2xx ${r.non2xx}` +
            (row.cpuSecondsPer1k !== null ? `  cpu/1k ${row.cpuSecondsPer1k.toFixed(4)}s` : '') +
            (row.kernelShare !== null ? ` (kernel ${Math.round(row.kernelShare * 100)} %)` : ''),
        );
      }
    }
  }

  const pick = (target: string, c: number) => rows.filter((r) => r.target === target && r.connections === c);
  const summary = CONNECTIONS.map((c): Summary => {
    const get = (t: string): PathSummary => {
      const rs = pick(t, c);
      return {
        rps: median(rs.map((r) => r.rps)),
        p50ms: median(rs.map((r) => r.p50ms)),
        p99ms: median(rs.map((r) => r.p99ms)),
        // Errors are summed over the rounds: the target is zero, in any round.
        socketErrors: rs.reduce((n, r) => n + r.socketErrors.connect + r.socketErrors.read + r.socketErrors.write + r.socketErrors.timeout, 0),
        non2xx: rs.reduce((n, r) => n + r.non2xx, 0),
        cpuSecondsPer1k: rs[0]!.cpuSecondsPer1k === null ? null : median(rs.map((r) => r.cpuSecondsPer1k!)),
        kernelShare: rs[0]!.kernelShare === null ? null : median(rs.map((r) => r.kernelShare!)),
        peakRssMiB: rs[0]!.peakRssMiB === null ? null : Math.max(...rs.map((r) => r.peakRssMiB!)),
      };
    };
    const direct = get('direct');
    const tsmesh = get('tsmesh');
    const nginx = get('nginx');
    const cpuRatio = (a: PathSummary, b: PathSummary) => (a.cpuSecondsPer1k !== null && b.cpuSecondsPer1k ? a.cpuSecondsPer1k / b.cpuSecondsPer1k : null);
    const s: Summary = {
      upstream,
      connections: c,
      direct,
      tsmesh,
      nginx,
      ratios: {
        tsmeshOverDirect: tsmesh.rps / direct.rps,
        tsmeshOverNginx: tsmesh.rps / nginx.rps,
        nginxOverDirect: nginx.rps / direct.rps,
        cpuTsmeshOverNginx: cpuRatio(tsmesh, nginx),
      },
    };
    if (floor) {
      const f = get('floor');
      s.floor = f;
      s.ratios.floorOverNginx = f.rps / nginx.rps;
      s.ratios.tsmeshOverFloor = tsmesh.rps / f.rps;
      s.ratios.cpuTsmeshOverFloor = cpuRatio(tsmesh, f);
    }
    return s;
  });

  ts.kill('SIGTERM');
  floor?.kill('SIGTERM');
  up.kill(upstream === 'node' ? 'SIGTERM' : 'SIGQUIT');
  ngx.kill('SIGQUIT');
  await new Promise((r) => setTimeout(r, 300));
  for (const c of [ts, up, ngx, ...(floor ? [floor] : [])]) if (c.exitCode === null && c.signalCode === null) killGroup(c);
  return { rows, summary };
}

async function main(): Promise<void> {
  console.error(
    `bench:overhead: ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; upstreams ${UPSTREAMS.join(', ')}; ` +
      `${ROUNDS} round(s) of ${DURATION}s per path, median shown`,
  );
  const rows: Row[] = [];
  const summary: Summary[] = [];
  for (const upstream of UPSTREAMS) {
    const dir = mkdtempSync(join(tmpdir(), 'tsmesh-bench-'));
    try {
      const r = await benchUpstream(upstream, dir);
      rows.push(...r.rows);
      summary.push(...r.summary);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const fmt = (n: number | null, d = 0) => (n === null || Number.isNaN(n) ? '-' : n.toFixed(d));
  const lines: string[] = [];
  lines.push(`Median of ${ROUNDS} round(s) of ${DURATION}s; socket errors and non-2xx summed over the rounds.`);
  lines.push('');
  lines.push(`| upstream | conns | path | req/s | p50 ms | p99 ms | socket errors | non-2xx | proxy CPU s / 1k req | of which kernel % | proxy peak RSS MiB |`);
  lines.push(`|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|`);
  for (const s of summary) {
    const paths: Array<[string, PathSummary]> = [['direct', s.direct], ['tsmesh', s.tsmesh], ['nginx', s.nginx]];
    if (s.floor) paths.push(['floor', s.floor]);
    for (const [name, r] of paths) {
      lines.push(
        `| ${s.upstream} | ${s.connections} | ${name} | ${fmt(r.rps)} | ${fmt(r.p50ms, 2)} | ${fmt(r.p99ms, 2)} | ${r.socketErrors} | ${r.non2xx} | ${fmt(r.cpuSecondsPer1k, 4)} | ${r.kernelShare === null ? '-' : fmt(r.kernelShare * 100)} | ${fmt(r.peakRssMiB, 1)} |`,
      );
    }
  }
  lines.push('');
  lines.push(`| upstream | conns | tsmesh / direct | nginx / direct | tsmesh / nginx (target >= 0.75 at 100) | CPU per req tsmesh / nginx (target <= 2) |`);
  lines.push(`|---|---:|---:|---:|---:|---:|`);
  for (const s of summary) {
    lines.push(
      `| ${s.upstream} | ${s.connections} | ${fmt(s.ratios.tsmeshOverDirect, 2)} | ${fmt(s.ratios.nginxOverDirect, 2)} | ${fmt(s.ratios.tsmeshOverNginx, 2)} | ${fmt(s.ratios.cpuTsmeshOverNginx, 2)} |`,
    );
  }
  if (FLOOR) {
    lines.push('');
    lines.push(`| upstream | conns | floor / nginx (runtime + socket layer) | tsmesh / floor (request path) | CPU per req tsmesh / floor |`);
    lines.push(`|---|---:|---:|---:|---:|`);
    for (const s of summary) {
      lines.push(`| ${s.upstream} | ${s.connections} | ${fmt(s.ratios.floorOverNginx ?? null, 2)} | ${fmt(s.ratios.tsmeshOverFloor ?? null, 2)} | ${fmt(s.ratios.cpuTsmeshOverFloor ?? null, 2)} |`);
    }
  }
  console.log(lines.join('\n'));

  const resultsDir = join(root, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `overhead-${UPSTREAMS.join('-')}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      { when: new Date().toISOString(), cpus: cpus().length, loadavgAtStart: loadavg(), node: process.version, upstreams: UPSTREAMS, durationSeconds: DURATION, rounds: ROUNDS, accessLog: ACCESS_LOG, rows, summary },
      null,
      2,
    ),
  );
  console.error(`results: ${file}`);
  cleanup();
}

(args.includes('--tracing') ? tsmeshTracingComparison : main)().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});

// --- --tracing: what tracing costs the proxy, instead of the comparison above ---
//
// `npm run bench:overhead -- --tracing`: identical tsmesh processes against one upstream
// (--upstream nginx (default) or node), loaded by wrk in interleaved rounds (default 3): tracing
// off, off again (a second identical proxy: the noise floor of the machine), on with
// samplingRatio 0, on with samplingRatio 1 exporting to a local OTLP receiver (bench/otlp-sink.ts,
// which counts the spans it receives). Prints each one's medians and its ratios to "off".
// --baseline-cli PATH adds a tsmesh CLI built from another commit (e.g. before tracing was
// wired into the request path), run with tracing off. Uses --duration, --warmup, --connections
// (default 100 here) and --rounds.

interface TracingRow extends WrkResult {
  variant: string;
  connections: number;
  round: number;
  cpuSecondsPer1k: number | null;
  peakRssMiB: number | null;
}

interface TracingVariant {
  readonly name: string;
  readonly port: number;
  readonly adminPort: number;
  readonly proc: ChildProcess;
  /** Requests wrk completed through it, warm-up included. */
  sent: number;
}

async function tsmeshTracingComparison(): Promise<void> {
  const { startOtlpSink } = await import('./otlp-sink.js');
  const rounds = args.includes('--rounds') ? ROUNDS : 3;
  const connections = args.includes('--connections') ? CONNECTIONS : [100];
  const baselineCli = opt('baseline-cli', '');
  const upstream = opt('upstream', 'nginx').split(',')[0] === 'node' ? 'node' : 'nginx';
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-bench-tracing-'));
  const sink = await startOtlpSink();
  const upPort = await freePort();
  const up =
    upstream === 'node'
      ? own(spawn(process.execPath, [join(root, 'dist', 'bench', 'fixed-upstream.js'), String(upPort)], { stdio: 'ignore' }))
      : startNginx(join(dir, 'upstream'), upstreamConf(join(dir, 'upstream'), upPort), 'upstream nginx');

  const tracingYaml = (ratio: number) => `tracing:
  enabled: true
  endpoint: ${sink.tracesUrl}
  samplingRatio: ${ratio}
  serviceName: bench
  exportInterval: 1s
`;
  const setups: Array<{ name: string; cli: string; tracing: string }> = [
    { name: 'off', cli: join(root, 'dist', 'cli', 'tsmesh.js'), tracing: '' },
    { name: 'off again', cli: join(root, 'dist', 'cli', 'tsmesh.js'), tracing: '' },
    { name: 'on, ratio 0', cli: join(root, 'dist', 'cli', 'tsmesh.js'), tracing: tracingYaml(0) },
    { name: 'on, ratio 1', cli: join(root, 'dist', 'cli', 'tsmesh.js'), tracing: tracingYaml(1) },
  ];
  if (baselineCli) setups.unshift({ name: 'baseline build', cli: baselineCli, tracing: '' });
  const variants: TracingVariant[] = [];
  for (const [i, v] of setups.entries()) {
    const [port, admin] = (await freePorts(2)) as [number, number];
    const file = join(dir, `tsmesh-${i}.yaml`);
    writeFileSync(file, tsmeshConf(port, admin, upPort, join(dir, `access-${i}.log`)) + v.tracing);
    const proc = own(spawn(process.execPath, [v.cli, 'proxy', '--config', file], { stdio: ['ignore', 'ignore', 'inherit'] }));
    variants.push({ name: v.name, port, adminPort: admin, proc, sent: 0 });
  }
  await Promise.all([waitPort(upPort, 'upstream'), ...variants.map((v) => waitPort(v.port, `tsmesh (${v.name})`))]);
  console.error(
    `bench:overhead --tracing: ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${upstream} upstream; ` +
      `${DURATION}s per run, ${rounds} interleaved rounds, ${connections.join(',')} connections`,
  );

  const rows: TracingRow[] = [];
  for (const c of connections) {
    for (const v of variants) v.sent += (await runWrk(v.port, c, WARMUP)).requests;
    for (let round = 1; round <= rounds; round++) {
      // A different order each round, so that drift of the shared machine does not favour one variant.
      const order = variants.map((_, i) => variants[(i + round - 1) % variants.length]!);
      for (const v of order) {
        const pids = [v.proc.pid!];
        const cpu0 = cpuSeconds(pids);
        const r = await runWrk(v.port, c, DURATION);
        const cpu = cpuSeconds(pids) - cpu0;
        v.sent += r.requests;
        const row: TracingRow = { variant: v.name, connections: c, round, ...r, cpuSecondsPer1k: r.requests > 0 ? (cpu / r.requests) * 1000 : null, peakRssMiB: peakRssMiB(pids) };
        rows.push(row);
        const se = r.socketErrors;
        console.error(
          `  ${v.name.padEnd(14)} c=${String(c).padEnd(4)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50ms.toFixed(2)}ms  p99 ${r.p99ms.toFixed(2)}ms  ` +
            `errors ${se.connect + se.read + se.write + se.timeout}  non-2xx ${r.non2xx}  cpu/1k ${row.cpuSecondsPer1k?.toFixed(4) ?? '-'}s`,
        );
      }
    }
  }
  // Spans still queued leave within the export interval (1 s).
  await new Promise((r) => setTimeout(r, 2500));

  const middle = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const fmt = (n: number | null | undefined, d = 0) => (n === null || n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d));
  const lines: string[] = [];
  lines.push('| conns | tracing | req/s (median) | p50 ms | p99 ms | proxy CPU s / 1k req | req/s vs off | CPU per req vs off |');
  lines.push('|---:|---|---:|---:|---:|---:|---:|---:|');
  const summary: Array<Record<string, unknown>> = [];
  for (const c of connections) {
    const get = (name: string) => {
      const rs = rows.filter((r) => r.variant === name && r.connections === c);
      return { rps: middle(rs.map((r) => r.rps)), p50ms: middle(rs.map((r) => r.p50ms)), p99ms: middle(rs.map((r) => r.p99ms)), cpu: middle(rs.map((r) => r.cpuSecondsPer1k ?? NaN)) };
    };
    const off = get('off');
    for (const v of variants) {
      const m = get(v.name);
      const s = { connections: c, variant: v.name, ...m, rpsVsOff: m.rps / off.rps, cpuVsOff: m.cpu / off.cpu };
      summary.push(s);
      lines.push(`| ${c} | ${v.name} | ${fmt(m.rps)} | ${fmt(m.p50ms, 2)} | ${fmt(m.p99ms, 2)} | ${fmt(m.cpu, 4)} | ${fmt(s.rpsVsOff, 3)} | ${fmt(s.cpuVsOff, 3)} |`);
    }
  }
  // What the ratio-1 proxy answered, by its own count (wrk does not count the requests in flight when a run ends).
  const on1 = variants.find((v) => v.name === 'on, ratio 1')!;
  const { parsePromText, sumOf } = await import('../proxy/src/telemetry/prom-text.js');
  const served = sumOf(parsePromText(await (await fetch(`http://127.0.0.1:${on1.adminPort}/metrics`)).text()).samples, 'tsmesh_requests_total');
  lines.push('');
  lines.push(
    `Spans received by the local OTLP receiver: ${sink.counts.spans} in ${sink.counts.exports} exports (${(sink.counts.bytes / 1e6).toFixed(1)} MB); ` +
      `the ratio-1 proxy answered ${served} requests, each a server and an attempt span: ${2 * served} spans, ` +
      `${fmt((100 * sink.counts.spans) / (2 * served), 1)} % received (spans the bounded export queue, 4096, had to drop are missing).`,
  );
  lines.push(
    '"off again" is a second, identical proxy with tracing off: the difference between the two off rows is the noise of this machine, ' +
      'the bound on anything tracing-off could cost.',
  );
  console.log(lines.join('\n'));

  const resultsDir = join(root, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `overhead-tracing-${upstream}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify({ when: new Date().toISOString(), cpus: cpus().length, node: process.version, upstream, durationSeconds: DURATION, rounds, rows, summary, spans: sink.counts, ratio1Requests: served }, null, 2),
  );
  console.error(`results: ${file}`);

  for (const v of variants) v.proc.kill('SIGTERM');
  up.kill(upstream === 'node' ? 'SIGTERM' : 'SIGQUIT');
  await new Promise((r) => setTimeout(r, 300));
  cleanup();
  await sink.close();
  rmSync(dir, { recursive: true, force: true });
}
