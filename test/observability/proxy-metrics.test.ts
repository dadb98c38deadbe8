// Metrics and access log of a RUNNING proxy, read as their users read them: exact counts on its
// admin /metrics after a known sequence of requests, the access-log lines of rejected requests
// with their reason, `promtool check metrics` on that /metrics, a real Prometheus scraping the
// proxy and answering a request-rate query, and `tsmesh stat --admin` against real proxies.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProxyRuntime } from '../../proxy/src/runtime.js';
import { parsePromText, select, type Sample } from '../../proxy/src/telemetry/prom-text.js';
import type { StatOutput } from '../../cli/stat/render.js';
import { checkMetrics, startPrometheus } from '../support/prometheus.js';
import { httpGet, startTestProxy } from '../support/proxy.js';
import { repoRoot } from '../support/repo.js';
import { waitFor } from '../support/servers.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';

const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

let upstream: TestUpstream;
let deadAddress: string;
let dir: string;

before(async () => {
  upstream = await startUpstream((_req, res) => res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' }).end('ok'));
  cleanup.push(() => upstream.close());
  deadAddress = '127.0.0.1:1'; // below the ephemeral range: nothing binds it, a connection is refused
  dir = mkdtempSync(join(tmpdir(), 'tsmesh-metrics-'));
  cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
});

/** A proxy with a working route (app), a route to a closed port (down) and no route for anything else. */
async function proxy(name: string, extra: Record<string, unknown> = {}): Promise<ProxyRuntime> {
  const p = await startTestProxy({
    listeners: [
      {
        name: 'edge',
        routes: [
          { name: 'app', match: { path: { prefix: '/app' } }, cluster: 'app' },
          { name: 'down', match: { path: { prefix: '/down' } }, cluster: 'down' },
        ],
      },
    ],
    clusters: [
      { name: 'app', endpoints: [upstream.address] },
      { name: 'down', endpoints: [deadAddress], connectTimeout: '500ms' },
    ],
    accessLog: { enabled: true, path: join(dir, `${name}.log`) },
    ...extra,
  });
  cleanup.push(() => p.close());
  return p;
}

async function scrape(p: ProxyRuntime): Promise<{ text: string; samples: Sample[] }> {
  const r = await httpGet(p.adminPort, '/metrics');
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return { text: r.body, samples: parsePromText(r.body).samples };
}

/** The value of the one sample with exactly these labels (undefined when there is none). */
function exact(samples: readonly Sample[], name: string, labels: Record<string, string>): number | undefined {
  const found = samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(Object.entries(labels).sort()));
  assert.ok(found.length <= 1, `${name}: ${found.length} samples with the same labels`);
  return found[0]?.value;
}

/** Every sample of a metric as "labels value" lines, sorted: the whole metric, to compare exactly. */
function series(samples: readonly Sample[], name: string): string[] {
  return select(samples, name)
    .map((s) => `${Object.entries(s.labels).sort().map(([k, v]) => `${k}=${v}`).join(',')} ${s.value}`)
    .sort();
}

/** 7 x 200 (POST, 5-byte body), 3 x 404 no_route, 2 x 503 upstream_connect_failure, each on a new connection. */
async function knownSequence(port: number): Promise<{ notFoundBodies: string[]; failedBodies: string[] }> {
  for (let i = 0; i < 7; i++) {
    const r = await httpGet(port, `/app/${i}`, { method: 'POST', body: 'hello' });
    assert.equal(r.status, 200);
  }
  const notFoundBodies: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await httpGet(port, `/missing/${i}`);
    assert.equal(r.status, 404);
    assert.equal(r.headers['x-tsmesh-reason'], 'no_route');
    notFoundBodies.push(r.body);
  }
  const failedBodies: string[] = [];
  for (let i = 0; i < 2; i++) {
    const r = await httpGet(port, '/down');
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-tsmesh-reason'], 'upstream_connect_failure');
    failedBodies.push(r.body);
  }
  return { notFoundBodies, failedBodies };
}

test('exact metrics after 7 x 200, 3 x 404 no_route, 2 x 503 upstream_connect_failure; promtool accepts the /metrics; the access log gives every rejection its reason', async () => {
  const p = await proxy('exact');
  const up = upstream.address;
  const { notFoundBodies, failedBodies } = await knownSequence(p.port('edge'));
  const { text, samples } = await scrape(p);

  // Requests: by route, cluster, code and reason, and nothing else.
  assert.deepEqual(series(samples, 'tsmesh_requests_total'), [
    'cluster=,code=404,listener=edge,reason=no_route,route= 3',
    'cluster=app,code=200,listener=edge,reason=none,route=app 7',
    'cluster=down,code=503,listener=edge,reason=upstream_connect_failure,route=down 2',
  ]);
  // Durations: one observation per response, in the same (route, cluster) series.
  for (const [route, cluster, n] of [['app', 'app', 7], ['', '', 3], ['down', 'down', 2]] as const) {
    assert.equal(exact(samples, 'tsmesh_request_duration_seconds_count', { route, cluster }), n, `duration count of ${route || '(unrouted)'}`);
    assert.equal(exact(samples, 'tsmesh_request_duration_seconds_bucket', { route, cluster, le: '+Inf' }), n);
    const buckets = select(samples, 'tsmesh_request_duration_seconds_bucket', { route, cluster }).map((s) => s.value);
    assert.deepEqual(buckets, [...buckets].sort((a, b) => a - b), 'buckets are cumulative');
  }
  // Attempts: one per routed request, by endpoint and result (status, or the failure reason).
  assert.deepEqual(series(samples, 'tsmesh_upstream_attempts_total'), [
    `cluster=app,code=200,endpoint=${up} 7`,
    `cluster=down,code=upstream_connect_failure,endpoint=${deadAddress} 2`,
  ]);
  assert.equal(exact(samples, 'tsmesh_upstream_attempt_duration_seconds_count', { cluster: 'app' }), 7, 'attempts with a response head are timed');
  assert.equal(exact(samples, 'tsmesh_upstream_attempt_duration_seconds_count', { cluster: 'down' }) ?? 0, 0);
  assert.equal(exact(samples, 'tsmesh_upstream_connect_failures_total', { cluster: 'down', endpoint: deadAddress }), 2);
  assert.equal(exact(samples, 'tsmesh_upstream_connections_opened_total', { cluster: 'app' }), 1, 'sequential requests reuse one upstream connection');
  // Bytes and connections.
  assert.equal(exact(samples, 'tsmesh_request_body_bytes_total', { route: 'app', cluster: 'app' }), 7 * 5);
  assert.equal(exact(samples, 'tsmesh_response_body_bytes_total', { route: 'app', cluster: 'app' }), 7 * 2);
  const rejectionBytes = (bodies: string[]) => bodies.reduce((n, b) => n + Buffer.byteLength(b), 0);
  assert.equal(exact(samples, 'tsmesh_response_body_bytes_total', { route: '', cluster: '' }), rejectionBytes(notFoundBodies));
  assert.equal(exact(samples, 'tsmesh_response_body_bytes_total', { route: 'down', cluster: 'down' }), rejectionBytes(failedBodies));
  assert.equal(exact(samples, 'tsmesh_downstream_connections_total', { listener: 'edge' }), 12);
  assert.equal(exact(samples, 'tsmesh_active_requests', { listener: 'edge' }), 0);
  assert.equal(exact(samples, 'tsmesh_config_applies_total', { result: 'applied' }), 1);
  assert.equal(exact(samples, 'tsmesh_config_info', { version: '1', source: 'file' }), 1);
  assert.ok((exact(samples, 'tsmesh_process_resident_memory_bytes', {}) ?? 0) > 0);

  // Prometheus's own linter on the real exposition of a proxy that served and rejected traffic.
  const lint = await checkMetrics(text);
  assert.deepEqual(lint.problems, []);
  assert.ok(lint.ok);

  // The access log: one line per request; each rejection with its reason and the documented fields.
  const logPath = join(dir, 'exact.log');
  await waitFor('12 access-log lines', async () => existsSync(logPath) && readFileSync(logPath, 'utf8').trim().split('\n').length >= 12, 5000);
  const lines = readFileSync(logPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 12);
  const notFound = lines.filter((l) => l.status === 404);
  assert.equal(notFound.length, 3);
  for (const [i, l] of notFound.entries()) {
    assert.equal(l.reason, 'no_route');
    assert.equal(l.path, `/missing/${i}`);
    assert.equal(l.method, 'GET');
    assert.equal(l.listener, 'edge');
    assert.equal(l.attempts, 0);
    assert.equal(l.route, undefined);
    assert.equal(l.endpoint, undefined);
    assert.equal(l.response_bytes, Buffer.byteLength(notFoundBodies[i]!));
    assert.equal(typeof l.duration_ms, 'number');
    assert.match(String(l.client), /^127\.0\.0\.1:\d+$/);
  }
  const failed = lines.filter((l) => l.status === 503);
  assert.deepEqual(
    failed.map((l) => [l.reason, l.route, l.cluster, l.endpoint, l.attempts, l.upstream_ms]),
    [
      ['upstream_connect_failure', 'down', 'down', deadAddress, 1, undefined],
      ['upstream_connect_failure', 'down', 'down', deadAddress, 1, undefined],
    ],
  );
  for (const l of failed) assert.match(String(l.request_id), /\d+$/, 'a routed request gets a request id');
  const ok = lines.filter((l) => l.status === 200);
  assert.equal(ok.length, 7);
  for (const l of ok) {
    assert.deepEqual([l.reason, l.route, l.cluster, l.endpoint, l.attempts, l.request_bytes, l.response_bytes], ['none', 'app', 'app', up, 1, 5, 2]);
    assert.equal(typeof l.upstream_ms, 'number');
    assert.equal(l.trace_id, undefined, 'tracing off, no traceparent: no trace id');
  }
  assert.equal(new Set(lines.map((l) => l.request_id).filter(Boolean)).size, 9, 'request ids are unique');
});

test('a real Prometheus scrapes a running proxy and answers the request-rate query', async () => {
  const p = await proxy('prom');
  const admin = p.addresses.admin!;
  const prom = await startPrometheus({ targets: [admin], scrapeInterval: '250ms' });
  cleanup.push(() => prom.stop());

  // Traffic while Prometheus scrapes: 3 requests (2 routed, 1 rejected) every 50 ms.
  let stop = false;
  let sent = 0;
  const traffic = (async () => {
    while (!stop) {
      await httpGet(p.port('edge'), '/app/x');
      await httpGet(p.port('edge'), '/app/y');
      await httpGet(p.port('edge'), '/nowhere');
      sent++;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    await prom.waitForScrapes(8, 30_000);
  } finally {
    stop = true;
    await traffic;
  }
  const [target] = await prom.targets();
  assert.equal(target!.health, 'up', target!.lastError);

  const selector = 'tsmesh_requests_total{route="app"}';
  const [raw] = await prom.querySamples(`${selector}[1m]`);
  assert.ok(raw, `no samples of ${selector}: ${prom.log()}`);
  const points = raw.values.map(([t, v]) => ({ ms: Math.round(t * 1000), value: Number(v) }));
  const first = points[0]!;
  const last = points[points.length - 1]!;
  assert.ok(points.length >= 5 && last.value > first.value, JSON.stringify(points));

  // The documented request-rate query over a range from the first to the last sample: no
  // extrapolation, so it is exactly the counter's increase over the elapsed time.
  const rangeMs = last.ms - first.ms;
  const [rate] = await prom.query(`sum by (route, cluster) (rate(tsmesh_requests_total{route="app"}[${rangeMs}ms]))`, last.ms / 1000);
  assert.ok(rate, 'rate() returned nothing');
  assert.deepEqual(rate.metric, { route: 'app', cluster: 'app' });
  const expected = (last.value - first.value) / (rangeMs / 1000);
  assert.ok(Math.abs(Number(rate.value[1]) - expected) < 1e-9 * expected, `rate ${rate.value[1]} != ${expected}`);
  assert.ok(expected > 0);

  // Once traffic stopped, what Prometheus holds is what the proxy served.
  await prom.waitForScrapes(2);
  const [total] = await prom.query('sum(tsmesh_requests_total{route="app"})');
  assert.equal(Number(total!.value[1]), 2 * sent);
  const [rejected] = await prom.query('sum by (reason) (tsmesh_requests_total{reason!="none"})');
  assert.deepEqual(rejected!.metric, { reason: 'no_route' });
  assert.equal(Number(rejected!.value[1]), sent);
});

test('tsmesh stat --admin against two running proxies: exact counts and rejections of the window', async () => {
  const p1 = await proxy('stat1');
  const p2 = await proxy('stat2');
  // The first scrape of each proxy is seen by its registry's collect hooks.
  let scrapes1 = 0;
  let scrapes2 = 0;
  p1.stats.addGauge(() => scrapes1++);
  p2.stats.addGauge(() => scrapes2++);
  const cli = spawn(process.execPath, [join(repoRoot(), 'dist', 'cli', 'tsmesh.js'), 'stat', '--admin', p1.addresses.admin!, p2.addresses.admin!, '--json', '--interval', '3s'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  cli.stdout.on('data', (d: Buffer) => (stdout += d));
  cli.stderr.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => cli.once('exit', (code) => resolve(code)));
  cleanup.push(async () => void cli.kill('SIGKILL'));
  await waitFor('the first scrapes', async () => scrapes1 > 0 && scrapes2 > 0, 10_000);

  // Inside the window: p1 4 x 200 and 1 x 404, p2 3 x 200 and 2 x 503.
  for (let i = 0; i < 4; i++) assert.equal((await httpGet(p1.port('edge'), '/app/s')).status, 200);
  assert.equal((await httpGet(p1.port('edge'), '/nowhere')).status, 404);
  for (let i = 0; i < 3; i++) assert.equal((await httpGet(p2.port('edge'), '/app/s')).status, 200);
  for (let i = 0; i < 2; i++) assert.equal((await httpGet(p2.port('edge'), '/down')).status, 503);

  assert.equal(await exited, 0, stderr);
  const out = JSON.parse(stdout) as StatOutput;
  assert.equal(out.proxies, 2);
  assert.deepEqual(out.problems, []);
  const row = (route: string) => out.routes.find((r) => r.route === route)!;
  assert.equal(row('app').requests, 7);
  assert.equal(row('app').successRate, 1);
  assert.deepEqual(row('app').rejections, {});
  assert.ok(row('app').requestsPerSecond > 0);
  assert.ok(row('app').p50 !== null && row('app').p99! >= row('app').p50!);
  assert.equal(row('down').requests, 2);
  assert.equal(row('down').successRate, 0);
  assert.deepEqual(row('down').rejections, { upstream_connect_failure: 2 });
  assert.equal(row('').requests, 1);
  assert.deepEqual(row('').rejections, { no_route: 1 });
  const cluster = out.clusters.find((c) => c.cluster === 'app')!;
  assert.equal(cluster.requests, 7);
});
