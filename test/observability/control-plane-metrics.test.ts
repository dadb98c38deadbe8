// The control plane's /metrics as a running control plane serves it (real PostgreSQL, a real
// proxy booted from it as `tsmesh proxy` boots): exact counts after a known sequence (a stored
// apply the proxy ACKs, an invalid apply, a refused token), promtool check metrics on it and on
// that proxy's /metrics, and `tsmesh stat --server` finding the proxy through the control
// plane's status (its adminAddress) and reporting its traffic.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pino } from 'pino';
import { ApiClient, ApiError } from '../../control-plane/src/api/client.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/src/control-plane.js';
import { runControlPlaneProxy, type RunningProxy } from '../../proxy/src/boot.js';
import { proxyConfig } from '../../proxy/src/config/schema.js';
import type { ProxyRuntime } from '../../proxy/src/runtime.js';
import { parsePromText, type Sample } from '../../proxy/src/telemetry/prom-text.js';
import type { StatOutput } from '../../cli/stat/render.js';
import { gatewayDoc } from '../support/documents.js';
import { checkMetrics } from '../support/prometheus.js';
import { httpGet } from '../support/proxy.js';
import { repoRoot } from '../support/repo.js';
import { startPostgres, waitFor, type RealServer } from '../support/servers.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';

const TOKEN = 'metrics-token';
const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

let postgres: RealServer;
let cp: RunningControlPlane;
let running: RunningProxy;
let proxy: ProxyRuntime;
let upstream: TestUpstream;
let storedVersion: string;

before(async () => {
  postgres = await startPostgres();
  cleanup.push(() => postgres.stop());
  cp = await startControlPlane({ grpc: '127.0.0.1:0', http: '127.0.0.1:0', token: TOKEN, databaseUrl: postgres.url, log: pino({ level: 'silent' }), replica: 'metrics' });
  cleanup.push(() => cp.stop());
  upstream = await startUpstream();
  cleanup.push(() => upstream.close());
  // A stored revision, then a real proxy booting from a bootstrap that names the control plane.
  const api = new ApiClient({ server: cp.httpAddress, token: TOKEN, author: 'test' });
  storedVersion = (await api.apply(gatewayDoc({ endpoints: [upstream.address] }), 'first')).version;
  const bootstrap = proxyConfig.parse({ admin: { address: '127.0.0.1:0' }, controlPlane: { address: cp.grpcAddress, node: 'gateway-1', token: TOKEN } });
  running = await runControlPlaneProxy(bootstrap);
  cleanup.push(() => running.close());
  proxy = running.runtime;
});

function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const keys = Object.keys(labels);
  const found = samples.filter((s) => s.name === name && Object.keys(s.labels).length === keys.length && keys.every((k) => s.labels[k] === labels[k]));
  assert.ok(found.length <= 1);
  return found[0]?.value;
}

async function cpMetrics(): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(`http://${cp.httpAddress}/metrics`);
  assert.equal(res.status, 200);
  const text = await res.text();
  return { text, samples: parsePromText(text).samples };
}

test('a running control plane: exact counts after an ACKed apply, an invalid apply and a refused token; promtool accepts its /metrics and its proxy\'s', async () => {
  const api = new ApiClient({ server: cp.httpAddress, token: TOKEN, author: 'test' });
  await waitFor('the proxy running the revision', async () => proxy.current?.version === storedVersion, 10_000);
  await assert.rejects(api.apply('listeners: [{ name: edge }]', 'broken'), (err: unknown) => err instanceof ApiError && err.status === 400);
  const refused = await fetch(`http://${cp.httpAddress}/v1/status`, { headers: { authorization: 'Bearer wrong' } });
  assert.equal(refused.status, 401);
  // The proxy serves traffic on the pushed config.
  assert.equal((await httpGet(proxy.port('edge'), '/q')).status, 200);

  // The ACK is counted when it arrives, just after the proxy applied.
  await waitFor('the ACK counted', async () => value((await cpMetrics()).samples, 'tsmesh_cp_acks_total') === 1, 5000);
  const { text, samples } = await cpMetrics();
  assert.equal(value(samples, 'tsmesh_cp_connected_proxies'), 1);
  assert.equal(value(samples, 'tsmesh_cp_pushes_total'), 1, 'one snapshot pushed: the stored revision, when the proxy subscribed');
  assert.equal(value(samples, 'tsmesh_cp_acks_total'), 1);
  assert.equal(value(samples, 'tsmesh_cp_nacks_total'), 0);
  assert.equal(value(samples, 'tsmesh_cp_applies_total', { result: 'stored' }), 1);
  assert.equal(value(samples, 'tsmesh_cp_applies_total', { result: 'invalid' }), 1);
  assert.equal(value(samples, 'tsmesh_cp_auth_failures_total', { api: 'http' }), 1);
  assert.equal(value(samples, 'tsmesh_cp_apply_to_ack_seconds_count'), 1);
  assert.ok((value(samples, 'tsmesh_cp_process_resident_memory_bytes') ?? 0) > 0, 'runtime metrics with the tsmesh_cp_ prefix');
  assert.equal(samples.filter((s) => /^tsmesh_cp_nodejs_active_\w+_total$/.test(s.name)).length, 0);

  const lint = await checkMetrics(text);
  assert.deepEqual(lint.problems, []);
  assert.ok(lint.ok);

  // The proxy's side of the same stream, also through promtool.
  const proxyText = (await httpGet(proxy.adminPort, '/metrics')).body;
  const proxySamples = parsePromText(proxyText).samples;
  assert.equal(value(proxySamples, 'tsmesh_config_info', { version: storedVersion, source: 'control-plane' }), 1);
  assert.equal(value(proxySamples, 'tsmesh_control_plane_connected'), 1);
  assert.equal(value(proxySamples, 'tsmesh_control_plane_updates_total', { result: 'acked' }), 1);
  const proxyLint = await checkMetrics(proxyText);
  assert.deepEqual(proxyLint.problems, []);
});

test("tsmesh stat --server finds the proxy through the control plane's status and reports its window", async () => {
  // Status rows are written behind a short batching delay (100 ms), so the proxy that just
  // connected appears in the shared status shortly after, not at once.
  const client = new ApiClient({ server: cp.httpAddress, token: TOKEN });
  let entry: Record<string, unknown> | undefined;
  await waitFor('the proxy in the control plane\'s status', async () => {
    const status = await client.status();
    entry = status.proxies.find((p) => p.node === 'gateway-1') as unknown as Record<string, unknown> | undefined;
    return entry !== undefined;
  }, 5000);
  assert.equal(entry?.adminAddress, proxy.addresses.admin);

  let scrapes = 0;
  proxy.stats.addGauge(() => scrapes++);
  const child = spawn(process.execPath, [join(repoRoot(), 'dist', 'cli', 'tsmesh.js'), 'stat', '--server', `http://${cp.httpAddress}`, '--json', '--interval', '3s'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TSMESH_TOKEN: TOKEN },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  cleanup.push(async () => void child.kill('SIGKILL'));
  await waitFor('the first scrape', async () => scrapes > 0, 10_000);
  for (let i = 0; i < 3; i++) assert.equal((await httpGet(proxy.port('edge'), `/q${i}`)).status, 200);
  assert.equal(await exited, 0, stderr);
  const out = JSON.parse(stdout) as StatOutput;
  assert.equal(out.proxies, 1);
  assert.deepEqual(out.problems, []);
  const row = out.routes.find((r) => r.route === 'query')!;
  assert.equal(row.cluster, 'gateway');
  assert.equal(row.requests, 3);
  assert.equal(row.successRate, 1);

  const run = (args: string[]) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const c = spawn(process.execPath, [join(repoRoot(), 'dist', 'cli', 'tsmesh.js'), 'stat', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      c.stdout.on('data', (d: Buffer) => (text += d));
      c.stderr.on('data', (d: Buffer) => (text += d));
      c.once('exit', (code) => resolve({ code, out: text }));
    });
  const wrongToken = await run(['--server', `http://${cp.httpAddress}`, '--token', 'nope', '--interval', '100ms']);
  assert.equal(wrongToken.code, 1);
  assert.match(wrongToken.out, /401/);
});
