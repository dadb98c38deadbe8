import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { ProxyMetrics } from '../../proxy/src/telemetry/metrics.js';
import { startMetricsServer, type MetricsServer } from '../../test/support/metrics-server.js';
import { repoRoot } from '../../test/support/repo.js';
import { histogramQuantile } from './compute.js';
import { renderText, type StatOutput } from './render.js';
import { runStat } from './run.js';
import { controlPlaneTargets, staticTargets, targetsFromStatus } from './sources.js';

const servers: MetricsServer[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

async function serve(m: ProxyMetrics, afterScrape?: (n: number) => void): Promise<MetricsServer> {
  const s = await startMetricsServer(m.registry, afterScrape);
  servers.push(s);
  return s;
}

const close = (actual: number | null, expected: number, what: string) => {
  assert.ok(actual !== null && Math.abs(actual - expected) < 1e-12, `${what}: ${actual} != ${expected}`);
};

function requests(m: ProxyMetrics, route: string, code: number, reason: string, n: number, cluster = 'gateway') {
  m.requests.labels('edge', route, cluster, String(code), reason).inc(n);
}

function observe(m: ProxyMetrics, route: string, seconds: number, n: number, cluster = 'gateway') {
  const h = m.requestDuration.labels(route, cluster);
  for (let i = 0; i < n; i++) h.observe(seconds);
}

/** Runs one stat report over two proxies with a clock under the test's control: the window is exactly 10 s. */
test('per route and per cluster over two proxies: exact success rate, rate, quantiles and rejections', async () => {
  const a = new ProxyMetrics();
  const b = new ProxyMetrics();
  // Before the window: must not count.
  requests(a, 'query', 200, 'none', 1000);
  observe(a, 'query', 5, 100);
  const sa = await serve(a);
  const sb = await serve(b);

  const nobody = '127.0.0.1:1'; // below the ephemeral range: nothing binds it, a connection is refused
  let clock = 1000;
  const reports: StatOutput[] = [];
  await runStat({
    source: staticTargets([sa.address, sb.address, nobody]),
    intervalMs: 10_000,
    timeoutMs: 2000,
    watch: false,
    now: () => clock,
    sleep: async (ms) => {
      clock += ms;
      requests(a, 'query', 200, 'none', 40);
      requests(a, 'query', 503, 'overloaded', 5);
      requests(a, 'query', 502, 'upstream_reset', 5);
      requests(a, 'health', 200, 'none', 10);
      requests(b, 'query', 200, 'none', 50);
      requests(b, 'query', 429, 'rate_limited', 10);
      observe(a, 'query', 0.003, 50);
      observe(b, 'query', 0.02, 40);
      observe(b, 'query', 0.2, 10);
      observe(a, 'health', 0.0007, 10);
    },
    report: (out) => {
      reports.push(out);
    },
  });
  assert.equal(reports.length, 1);
  const r = reports[0]!;
  assert.equal(r.proxies, 2);
  assert.equal(r.windowSeconds, 10);
  assert.deepEqual(r.problems, [`${nobody}: http://${nobody}/metrics: ECONNREFUSED`]);

  assert.deepEqual(r.routes.map((x) => `${x.route}/${x.cluster}`), ['health/gateway', 'query/gateway']);
  const [health, query] = r.routes;
  assert.equal(query!.requests, 110);
  close(query!.successRate, 100 / 110, 'query success');
  close(query!.requestsPerSecond, 11, 'query rps');
  close(query!.p50, 0.005, 'query p50');
  close(query!.p95, 0.175, 'query p95');
  close(query!.p99, 0.235, 'query p99');
  assert.deepEqual(query!.rejections, { overloaded: 5, rate_limited: 10, upstream_reset: 5 });

  assert.equal(health!.requests, 10);
  assert.equal(health!.successRate, 1);
  close(health!.requestsPerSecond, 1, 'health rps');
  close(health!.p50, 0.00075, 'health p50');
  close(health!.p95, 0.000975, 'health p95');
  close(health!.p99, 0.000995, 'health p99');
  assert.deepEqual(health!.rejections, {});

  assert.equal(r.clusters.length, 1);
  const gw = r.clusters[0]!;
  assert.equal(gw.route, '');
  assert.equal(gw.cluster, 'gateway');
  assert.equal(gw.requests, 120);
  close(gw.successRate, 110 / 120, 'cluster success');
  close(gw.requestsPerSecond, 12, 'cluster rps');
  close(gw.p50, 0.00475, 'cluster p50');
  close(gw.p95, 0.1675, 'cluster p95');
  close(gw.p99, 0.2335, 'cluster p99');
  assert.deepEqual(gw.rejections, { overloaded: 5, rate_limited: 10, upstream_reset: 5 });

  const text = renderText(r);
  assert.match(text, /^ROUTE +CLUSTER +SUCCESS +RPS +LATENCY_P50 +LATENCY_P95 +LATENCY_P99 +REJECTIONS$/m);
  assert.match(text, /^query +gateway +90\.91% +11\.0 +5\.0ms +175ms +235ms +overloaded=5 rate_limited=10 upstream_reset=5$/m);
  assert.match(text, /^health +gateway +100\.00% +1\.0 +0\.75ms +0\.97ms +0\.99ms +-$/m);
  assert.match(text, /^gateway +91\.67% +12\.0 +4\.8ms +168ms +234ms +overloaded=5/m);
  assert.match(text, /^! 127\.0\.0\.1:\d+: .*ECONNREFUSED$/m);
});

test('a proxy that restarted between scrapes counts from zero; a quiet window has no rates', async () => {
  const before = new ProxyMetrics();
  requests(before, 'query', 200, 'none', 500);
  const s = await serve(before);
  const restarted = new ProxyMetrics();
  let clock = 0;
  let report: StatOutput | undefined;
  await runStat({
    source: staticTargets([s.address]),
    intervalMs: 5000,
    timeoutMs: 2000,
    watch: false,
    now: () => clock,
    sleep: async (ms) => {
      clock += ms;
      requests(restarted, 'query', 200, 'none', 20);
      requests(restarted, 'quiet', 200, 'none', 0);
      s.setRegistry(restarted.registry);
    },
    report: (out) => {
      report = out;
    },
  });
  const [query, quiet] = report!.routes;
  assert.equal(query!.route, 'query');
  assert.equal(query!.requests, 20);
  close(query!.requestsPerSecond, 4, 'rps after reset');
  assert.equal(quiet!.route, 'quiet');
  assert.equal(quiet!.requests, 0);
  assert.equal(quiet!.successRate, null);
  assert.equal(quiet!.p50, null);
  assert.match(renderText(report!), /^quiet +gateway +- +0\.0 +- +- +- +-$/m);
});

test('watch: each report covers the interval since the previous scrape', async () => {
  const m = new ProxyMetrics();
  const s = await serve(m);
  let clock = 0;
  let round = 0;
  const seen: number[] = [];
  await runStat({
    source: staticTargets([s.address]),
    intervalMs: 1000,
    timeoutMs: 2000,
    watch: true,
    now: () => clock,
    sleep: async (ms) => {
      clock += ms;
      round++;
      requests(m, 'query', 200, 'none', round * 10);
    },
    report: (out) => {
      seen.push(out.routes[0]!.requestsPerSecond);
      return seen.length < 3;
    },
  });
  assert.deepEqual(seen, [10, 20, 30]);
});

test('control plane source: bearer token, proxies with and without an admin address', async () => {
  const cp = createServer((req, res) => {
    if (req.headers.authorization !== 'Bearer s3cret') return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"unauthorized"}');
    if (req.url !== '/v1/status') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({ proxies: [{ node: 'gw-1', adminAddress: '127.0.0.1:15000' }, { node: 'gw-2', admin: { address: 'http://127.0.0.1:15001' } }, { node: 'gw-3' }] }),
    );
  });
  await new Promise<void>((r) => cp.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(cp.address() as { port: number }).port}`;
  try {
    const list = await controlPlaneTargets(url, 's3cret')();
    assert.deepEqual(list.targets, [
      { name: 'gw-1', adminAddress: '127.0.0.1:15000' },
      { name: 'gw-2', adminAddress: 'http://127.0.0.1:15001' },
    ]);
    assert.deepEqual(list.problems, ["gw-3: no adminAddress in the control plane's status"]);
    await assert.rejects(controlPlaneTargets(url, 'wrong')(), /HTTP 401: \{"error":"unauthorized"\}/);
    await assert.rejects(controlPlaneTargets(url, 's3cret', '/nope')(), /nope: HTTP 404/);
  } finally {
    await new Promise<void>((r) => cp.close(() => r()));
  }
  assert.deepEqual(targetsFromStatus([{ name: 'a', admin: '1.2.3.4:5' }]).targets, [{ name: 'a', adminAddress: '1.2.3.4:5' }]);
  assert.throws(() => targetsFromStatus({ something: 1 }), /expected a list of proxies/);
});

test('histogramQuantile follows PromQL histogram_quantile', () => {
  const b = (pairs: Array<[number, number]>) => pairs.map(([upperBound, count]) => ({ upperBound, count }));
  const h = b([[0.1, 10], [0.5, 30], [1, 40], [Infinity, 40]]);
  close(histogramQuantile(0.5, h), 0.1 + 0.4 * (10 / 20), 'p50');
  close(histogramQuantile(0, h), 0, 'q=0');
  close(histogramQuantile(1, h), 1, 'q=1 is the top finite bound holding the last rank');
  assert.equal(histogramQuantile(0.99, b([[1, 0], [Infinity, 10]])), 1, 'rank in +Inf: highest finite bound');
  assert.ok(Number.isNaN(histogramQuantile(0.5, b([[1, 0], [Infinity, 0]]))), 'no observations');
  assert.ok(Number.isNaN(histogramQuantile(0.5, b([[1, 3], [2, 5]]))), 'no +Inf bucket');
  assert.equal(histogramQuantile(-1, h), -Infinity);
  assert.equal(histogramQuantile(2, h), Infinity);
  assert.equal(histogramQuantile(0.5, b([[-1, 5], [Infinity, 10]])), -1, 'first bucket with a bound <= 0');
});

// --- the command, as a real process -----------------------------------------------------------

function runCli(args: string[], onLine?: (line: string, stop: () => void) => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot(), 'dist/cli/tsmesh.js'), 'stat', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let pending = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      pending += d;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        onLine?.(line, () => child.kill('SIGTERM'));
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A proxy-like admin server whose counters move by a known amount after every scrape. */
async function movingProxy(): Promise<MetricsServer> {
  const m = new ProxyMetrics();
  return serve(m, () => {
    requests(m, 'query', 200, 'none', 9);
    requests(m, 'query', 503, 'overloaded', 1);
    observe(m, 'query', 0.003, 10);
  });
}

test('tsmesh stat --json: one report between two scrapes', async () => {
  const p1 = await movingProxy();
  const p2 = await movingProxy();
  const { code, stdout, stderr } = await runCli(['--admin', p1.address, p2.address, '--json', '--interval', '200ms']);
  assert.equal(code, 0, stderr);
  const out = JSON.parse(stdout) as StatOutput;
  assert.equal(out.proxies, 2);
  assert.deepEqual(out.problems, []);
  const q = out.routes.find((r) => r.route === 'query')!;
  assert.equal(q.requests, 20);
  assert.equal(q.successRate, 0.9);
  assert.deepEqual(q.rejections, { overloaded: 2 });
  close(q.p50, 0.0025 + 0.0025 * 0.5, 'p50');
  assert.ok(q.requestsPerSecond > 0);
});

test('tsmesh stat: the table; --watch keeps reporting; nothing readable exits 1', async () => {
  const p = await movingProxy();
  const text = await runCli(['--admin', p.address, '-i', '100ms']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^query +gateway +90\.00% +\S+ +3\.8ms/m);
  assert.match(text.stdout, /^CLUSTER +SUCCESS/m);

  const lines: StatOutput[] = [];
  const watch = await runCli(['--admin', p.address, '--watch', '--json', '-i', '100ms'], (line, stop) => {
    lines.push(JSON.parse(line) as StatOutput);
    if (lines.length === 3) stop();
  });
  assert.equal(lines.length, 3);
  for (const l of lines) assert.equal(l.routes.find((r) => r.route === 'query')!.requests, 10);
  assert.equal(watch.code, null);

  const nobody = '127.0.0.1:1'; // below the ephemeral range: nothing binds it, a connection is refused
  const none = await runCli(['--admin', nobody, '-i', '50ms']);
  assert.equal(none.code, 1);
  assert.match(none.stdout, new RegExp(`! ${nobody}: .*ECONNREFUSED`));
  assert.match(none.stderr, /no proxy could be read/);

  const noSource = await runCli([]);
  assert.equal(noSource.code, 1);
  assert.match(noSource.stderr, /give proxies with --admin/);
});
