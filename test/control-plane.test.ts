// The control plane end to end, in process: real PostgreSQL, real gRPC streams, real HTTP
// API, and proxy-side clients applying to a real (listener-binding) ConfigTarget.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { pino } from 'pino';
import pg from 'pg';
import Pool from 'pg-pool';
import { migrate, MIGRATIONS } from '../control-plane/src/store/migrations.js';
import { startControlPlane, type RunningControlPlane } from '../control-plane/src/control-plane.js';
import { ApiClient, ApiError } from '../control-plane/src/api/client.js';
import { ControlPlaneClient } from '../proxy/src/config/control-plane-client.js';
import { ProxyMetrics } from '../proxy/src/telemetry/metrics.js';
import { RecordingTarget } from './support/recording-target.js';
import { startPostgres, waitFor, type RealServer } from './support/servers.js';
import { gatewayDoc } from './support/documents.js';

const TOKEN = 'test-token';
const silent = pino({ level: 'silent' });

interface Proxy {
  target: RecordingTarget;
  client: ControlPlaneClient;
  metrics: ProxyMetrics;
}

const proxies: Proxy[] = [];

function proxy(node: string, grpcAddress: string, token = TOKEN): Proxy {
  const target = new RecordingTarget();
  const metrics = new ProxyMetrics();
  const client = new ControlPlaneClient({
    target,
    metrics,
    bootstrap: { admin: { address: '127.0.0.1:0' }, controlPlane: { address: grpcAddress, node, token } },
    backoff: { baseMs: 50, maxMs: 500 },
  });
  client.start();
  const p = { target, client, metrics };
  proxies.push(p);
  return p;
}

const versionOf = (p: Proxy) => p.target.current?.version;

describe('control plane', () => {
  let postgres: RealServer;
  let cp: RunningControlPlane;
  let api: ApiClient;

  const pgServer = () => postgres;

  before(async () => {
    postgres = await startPostgres();
    cp = await startControlPlane({ grpc: '127.0.0.1:0', http: '127.0.0.1:0', token: TOKEN, databaseUrl: postgres.url, log: silent, replica: 'one' });
    api = new ApiClient({ server: cp.httpAddress, token: TOKEN, author: 'tester' });
  });

  after(async () => {
    for (const p of proxies.splice(0)) {
      await p.client.stop();
      p.target.close();
    }
    await cp?.stop();
    await postgres?.stop();
  });

  test('apply: matching proxies converge; history, diff and rollback', async () => {
    const g1 = proxy('gateway-1', cp.grpcAddress);
    const g2 = proxy('gateway-2', cp.grpcAddress);
    const other = proxy('orders-1', cp.grpcAddress);
    await waitFor('streams connected', async () => [g1, g2, other].every((p) => p.client.status.state === 'connected'));

    const r1 = await api.apply(gatewayDoc(), 'first');
    assert.equal(r1.selector, 'gateway-*');
    await waitFor('gateways on r1', async () => versionOf(g1) === r1.version && versionOf(g2) === r1.version);
    assert.equal(g1.target.current!.source, 'control-plane');
    assert.equal(g1.target.current!.config.listeners[0]!.routes[0]!.timeout, 2000);
    // Bootstrap values win: admin comes from the proxy, never from the document.
    assert.equal(g1.target.current!.config.admin.address, '127.0.0.1:0');
    assert.equal(g1.target.current!.config.controlPlane?.node, 'gateway-1');
    assert.equal(versionOf(other), undefined, 'orders-1 is not selected by gateway-*');

    const r2 = await api.apply(gatewayDoc({ timeout: '3s', endpoints: ['127.0.0.1:9001', '127.0.0.1:9002'] }), 'slower');
    assert.deepEqual(r2.nodes.sort(), ['gateway-1', 'gateway-2']);
    await waitFor('gateways on r2', async () => versionOf(g1) === r2.version && versionOf(g2) === r2.version);
    assert.equal(g2.target.current!.config.listeners[0]!.routes[0]!.timeout, 3000);

    const history = await api.history({ selector: 'gateway-*' });
    assert.deepEqual(history.revisions.slice(0, 2).map((r) => [r.revision, r.comment, r.author]), [[r2.revision, 'slower', 'tester'], [r1.revision, 'first', 'tester']]);

    const d = await api.diff(r1.revision, r2.revision);
    assert.deepEqual(d.lines, [
      '~ listeners.edge.routes.query.timeout: 2s -> 3s',
      '~ clusters.gateway.endpoints: ["127.0.0.1:9001"] -> ["127.0.0.1:9001","127.0.0.1:9002"]',
    ]);
    assert.deepEqual((await api.diff(r2.revision)).lines, d.lines, 'one revision: what it changed in its service');

    const rb = await api.rollback(r1.revision);
    assert.equal(rb.rollbackOf, r1.revision);
    assert.ok(rb.revision > r2.revision, 'a rollback is a new revision');
    await waitFor('gateways rolled back', async () => versionOf(g1) === rb.version && versionOf(g2) === rb.version);
    assert.equal(g1.target.current!.config.listeners[0]!.routes[0]!.timeout, 2000);
    assert.deepEqual((await api.diff(r1.revision, rb.revision)).lines, []);

    await waitFor('status shows both ACKed', async () => {
      const st = await api.status();
      const rows = st.proxies.filter((p) => p.node.startsWith('gateway-'));
      return rows.length === 2 && rows.every((p) => p.state === 'acked' && p.version === rb.version && p.replica === 'one' && p.selector === 'gateway-*');
    });
    const st = await api.status();
    assert.equal(st.proxies.find((p) => p.node === 'orders-1')?.state, 'no-config');
    assert.equal(g1.metrics.controlPlaneConnected.get !== undefined, true);
    assert.match(await g1.metrics.registry.metrics(), /tsmesh_control_plane_connected 1/);
    const cpMetrics = await cp.metrics.registry.metrics();
    assert.match(cpMetrics, /tsmesh_cp_connected_proxies 3/);
    assert.match(cpMetrics, /tsmesh_cp_apply_to_ack_seconds_count [1-9]/);
  });

  test('the most specific selector wins, and a more specific document moves its node', async () => {
    const eu = proxy('gateway-eu-1', cp.grpcAddress);
    await waitFor('eu on gateway-*', async () => eu.target.current !== undefined);
    const r = await api.apply(gatewayDoc({ selector: 'gateway-eu-*', timeout: '7s' }));
    assert.deepEqual(r.nodes, ['gateway-eu-1']);
    await waitFor('eu moved', async () => versionOf(eu) === r.version);
    assert.equal(eu.target.current!.config.listeners[0]!.routes[0]!.timeout, 7000);
    const g1 = proxies[0]!;
    assert.notEqual(versionOf(g1), r.version, 'gateway-1 stays with gateway-*');
  });

  test('a bad document is refused with every problem, and nothing is stored', async () => {
    const before = (await api.history()).revisions.length;
    const err = await api.apply(`
selector: gateway-*
listeners:
  - name: edge
    address: 127.0.0.1:0
    routes: [{ name: q, cluster: nowhere, timeout: soon, retry: { attempts: -1 } }]
clusters: [{ name: gateway, endpoints: [], loadBalancer: random }]
`).then(
      () => assert.fail('accepted'),
      (e: unknown) => e as ApiError,
    );
    assert.ok(err instanceof ApiError);
    assert.equal(err.status, 400);
    assert.deepEqual(err.errors.sort(), [
      'clusters.gateway.endpoints: must list at least one endpoint',
      'clusters.gateway.loadBalancer: must be one of round-robin, least-request, peak-ewma',
      'listeners.edge.routes.q.cluster: unknown cluster "nowhere"',
      'listeners.edge.routes.q.retry.attempts: must be an integer from 0 to 10',
      'listeners.edge.routes.q.timeout: must be a duration like 250ms, 2s or 1m (got "soon")',
    ]);
    assert.equal((await api.history()).revisions.length, before);
    const noSelector = await api.apply({ listeners: [] }).catch((e: ApiError) => e);
    assert.ok(noSelector instanceof ApiError && noSelector.errors.includes('selector: is required'));
  });

  test('a snapshot the proxy cannot apply is NACKed with its reason, shown in status; the old config stays', async () => {
    const p = proxy('edge-1', cp.grpcAddress);
    const good = await api.apply(gatewayDoc({ selector: 'edge-*' }));
    await waitFor('edge-1 on good', async () => versionOf(p) === good.version);

    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as { port: number }).port;
    try {
      const bad = await api.apply(gatewayDoc({ selector: 'edge-*', address: `127.0.0.1:${port}` }), 'port in use');
      await waitFor('NACK in status', async () => {
        const row = (await api.status()).proxies.find((r) => r.node === 'edge-1');
        return row?.state === 'nacked' && row.nackedVersion === bad.version;
      });
      const row = (await api.status()).proxies.find((r) => r.node === 'edge-1')!;
      assert.equal(row.version, good.version, 'the proxy still runs the good version');
      assert.match(row.lastError!, new RegExp(`version ${bad.version} cannot be applied: listeners.edge.address: cannot bind 127.0.0.1:${port}`));
      assert.equal(versionOf(p), good.version);
      assert.equal(p.client.status.lastNackedVersion, bad.version);
      assert.match(await cp.metrics.registry.metrics(), /tsmesh_cp_nacks_total [1-9]/);
      assert.match(await p.metrics.registry.metrics(), /tsmesh_control_plane_updates_total\{result="nacked"\} 1/);
    } finally {
      taken.close();
    }
    const fixed = await api.apply(gatewayDoc({ selector: 'edge-*', timeout: '1s' }));
    await waitFor('edge-1 on the fix', async () => versionOf(p) === fixed.version);
    await waitFor('ACK in status', async () => (await api.status()).proxies.find((r) => r.node === 'edge-1')?.state === 'acked');
  });

  test('a wrong or missing token is refused at once, on gRPC and on HTTP', async () => {
    const wrong = proxy('gateway-9', cp.grpcAddress, 'nope');
    await waitFor('refusal', async () => wrong.client.status.lastError !== undefined, 5000);
    assert.match(wrong.client.status.lastError!, /^UNAUTHENTICATED: wrong token/);
    assert.equal(wrong.target.current, undefined);
    await wrong.client.stop();
    const missing = proxy('gateway-10', cp.grpcAddress, '');
    await waitFor('refusal', async () => missing.client.status.lastError !== undefined, 5000);
    assert.match(missing.client.status.lastError!, /^UNAUTHENTICATED: missing token: send metadata "authorization: Bearer <token>"/);
    await missing.client.stop();

    for (const token of [undefined, 'nope']) {
      const res = await fetch(`http://${cp.httpAddress}/v1/apply`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ document: gatewayDoc() }),
      });
      assert.equal(res.status, 401);
      const body = (await res.json()) as { error: string; message: string };
      assert.equal(body.error, 'unauthorized');
      assert.match(body.message, token ? /wrong token/ : /missing token: send "Authorization: Bearer <token>"/);
    }
    assert.equal((await fetch(`http://${cp.httpAddress}/ready`)).status, 200);
    assert.match(await (await fetch(`http://${cp.httpAddress}/metrics`)).text(), /tsmesh_cp_auth_failures_total\{api="http"\} 2/);
  });

  test('migrations run once: a second run (as another replica starting) applies nothing', async () => {
    const pool = new Pool({ connectionString: pgServer().url, max: 2 }, pg.Client);
    try {
      assert.deepEqual(await migrate(pool), []);
      const { rows } = await pool.query<{ version: number }>('SELECT version FROM tsmesh_schema_migrations ORDER BY version');
      assert.deepEqual(rows.map((r) => r.version), MIGRATIONS.map((m) => m.version));
    } finally {
      await pool.end();
    }
  });

  test('two replicas on one PostgreSQL: apply to one, a proxy on the other gets it', async () => {
    const cp2 = await startControlPlane({ grpc: '127.0.0.1:0', http: '127.0.0.1:0', token: TOKEN, databaseUrl: postgres.url, log: silent, replica: 'two' });
    try {
      const p = proxy('replica-test-1', cp2.grpcAddress);
      await waitFor('connected to two', async () => p.client.status.state === 'connected');
      const r = await api.apply(gatewayDoc({ selector: 'replica-test-*', timeout: '4s' }));
      await waitFor('proxy on replica two converged', async () => versionOf(p) === r.version);
      assert.equal(p.target.current!.config.listeners[0]!.routes[0]!.timeout, 4000);
      await waitFor('status on replica one shows it on two', async () => {
        const row = (await api.status()).proxies.find((x) => x.node === 'replica-test-1');
        return row?.replica === 'two' && row.state === 'acked' && row.version === r.version;
      });
      // Replica two was started after older revisions existed: it loaded them at start.
      const g = proxy('gateway-5', cp2.grpcAddress);
      await waitFor('gateway-5 served by two', async () => versionOf(g) !== undefined);
      assert.equal(versionOf(g), versionOf(proxies[0]!));
      await g.client.stop();
      await p.client.stop();
    } finally {
      await cp2.stop();
    }
  });

  test('PostgreSQL restarted under two replicas: LISTEN reconnects and an apply on one still reaches proxies on the other', async () => {
    const cp2 = await startControlPlane({ grpc: '127.0.0.1:0', http: '127.0.0.1:0', token: TOKEN, databaseUrl: postgres.url, log: silent, replica: 'three' });
    try {
      const p = proxy('restart-1', cp2.grpcAddress);
      const first = await api.apply(gatewayDoc({ selector: 'restart-*' }));
      await waitFor('restart-1 on first', async () => versionOf(p) === first.version);
      await postgres.stop();
      await postgres.start();
      // The pool drops its broken connections on first use; the API answers again once it has.
      let second: Awaited<ReturnType<typeof api.apply>> | undefined;
      await waitFor('apply accepted after the restart', async () => {
        second = await api.apply(gatewayDoc({ selector: 'restart-*', timeout: '9s' })).catch(() => undefined);
        return second !== undefined;
      });
      await waitFor('restart-1 on the apply made after the restart', async () => versionOf(p) === second!.version, 20_000);
      assert.equal(p.target.current!.config.listeners[0]!.routes[0]!.timeout, 9000);
      await p.client.stop();
    } finally {
      await cp2.stop();
    }
  });
});
