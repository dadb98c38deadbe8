// Issue 4 end to end with REAL proxies (runControlPlaneProxy: what `tsmesh proxy` runs from a
// bootstrap) on a control plane with a real PostgreSQL, real gRPC streams, real upstreams,
// operated with the `tsmesh` CLI as a process:
//   1. apply -> proxies converge and serve it; history, diff, rollback; status and stat;
//   2. 100 applies in a row under load through two proxies: no failed request, both end on the
//      last revision, requests in flight finish on the snapshot they started with;
//   3. a bad document is refused by apply; a snapshot with a listener port another process
//      holds is NACKed, shown by status, and the proxies keep serving their previous config;
//   5. two control-plane replicas on one PostgreSQL: apply to one, a proxy on the other gets it.
// (4, the control plane killed, is test/control-plane-outage.test.ts; 6, global rate limits,
// test/global-rate-limit-proxies.test.ts.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ApiClient } from '../control-plane/src/api/client.js';
import { startControlPlane, type RunningControlPlane } from '../control-plane/src/control-plane.js';
import type { RunningProxy } from '../proxy/src/boot.js';
import { admin, cli, Load, metricIn, startMeshProxy, tally } from './support/mesh.js';
import { httpGet } from './support/proxy.js';
import { startPostgres, waitFor, type RealServer } from './support/servers.js';
import { startUpstream, type TestUpstream } from './support/upstream.js';

const TOKEN = 'e2e-token';
const silent = pino({ level: 'silent' });

/** The route splits between clusters a and b; /slow is answered after SLOW_MS by both. */
function doc(o: { selector?: string; timeout?: string; weights?: [number, number]; address?: string } = {}): string {
  const [wa, wb] = o.weights ?? [1, 1];
  return `selector: ${o.selector ?? 'gw-*'}
listeners:
  - name: edge
    address: ${o.address ?? '127.0.0.1:0'}
    routes:
      - name: api
        match: { path: { prefix: / } }
        clusters: [{ name: a, weight: ${wa} }, { name: b, weight: ${wb} }]
        timeout: ${o.timeout ?? '5s'}
drain: { delay: 0, timeout: 2s }
clusters:
  - { name: a, endpoints: [${upA.address}] }
  - { name: b, endpoints: [${upB.address}] }
`;
}

const SLOW_MS = 2500;
let upA: TestUpstream;
let upB: TestUpstream;

const versionOf = (p: RunningProxy) => p.runtime.current?.version;
const edgePort = (p: RunningProxy) => p.runtime.port('edge');
const revisionIn = (stdout: string) => /^revision (\d+) stored/m.exec(stdout)?.[1];

describe('control plane with real proxies', () => {
  let postgres: RealServer;
  let cp: RunningControlPlane;
  let api: ApiClient;
  let dir: string;
  let env: Record<string, string>;
  const proxies: RunningProxy[] = [];
  let gw1: RunningProxy;
  let gw2: RunningProxy;

  before(async () => {
    const slowOr = (name: string) => (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
      const answer = () => {
        res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': name });
        res.end(name);
      };
      if (req.url === '/slow') setTimeout(answer, SLOW_MS);
      else answer();
    };
    [postgres, upA, upB] = await Promise.all([startPostgres(), startUpstream(slowOr('a')), startUpstream(slowOr('b'))]);
    cp = await startControlPlane({ grpc: '127.0.0.1:0', http: '127.0.0.1:0', token: TOKEN, databaseUrl: postgres.url, log: silent, replica: 'one' });
    api = new ApiClient({ server: cp.httpAddress, token: TOKEN, author: 'e2e' });
    dir = mkdtempSync(join(tmpdir(), 'tsmesh-e2e-'));
    env = { TSMESH_SERVER: `http://${cp.httpAddress}`, TSMESH_TOKEN: TOKEN };
    // Nothing is stored for gw-* yet: the proxies wait (initialFetchTimeoutMs) and find no cache either.
    [gw1, gw2] = await Promise.all(['gw-1', 'gw-2'].map((node) => startMeshProxy(node, cp.grpcAddress, { token: TOKEN, cacheDir: join(dir, node), initialFetchTimeoutMs: 300 })));
    proxies.push(gw1, gw2);
  });

  after(async () => {
    await Promise.all(proxies.map((p) => p.close()));
    await cp?.stop();
    await Promise.all([postgres?.stop(), upA?.close(), upB?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('1. apply: proxies converge and serve it; history, diff and rollback through the CLI; status and stat show the proxies', async () => {
    // Connected and waiting: not ready, nothing to serve. The proxies stopped waiting for a
    // first config after initialFetchTimeoutMs, so their streams may still be opening.
    assert.equal(gw1.controlPlane!.bootedFrom, 'none');
    type WaitingDump = { version: null; controlPlane: { state: string; node: string } };
    const dumpOf = async (p: RunningProxy) => JSON.parse((await admin(p, '/config_dump')).text) as WaitingDump;
    await waitFor('both proxies connected', async () => (await Promise.all([gw1, gw2].map(dumpOf))).every((d) => d.controlPlane.state === 'connected'));
    // ...and known to the control plane (it registers a stream at its first request), so that
    // the apply below pushes to both.
    await waitFor('the control plane to list both proxies', async () => {
      const nodes = (await api.status()).proxies.map((p) => p.node);
      return nodes.includes('gw-1') && nodes.includes('gw-2');
    });
    assert.equal((await admin(gw1, '/ready')).status, 503);
    const waiting = await dumpOf(gw1);
    assert.equal(waiting.version, null);
    assert.equal(waiting.controlPlane.node, 'gw-1');
    assert.equal(waiting.controlPlane.state, 'connected');

    const file = join(dir, 'gw.yaml');
    writeFileSync(file, doc({ timeout: '5s' }));
    const a1 = await cli(['apply', '-f', file, '--comment', 'first'], env);
    assert.equal(a1.code, 0, a1.stderr);
    const r1 = revisionIn(a1.stdout)!;
    assert.match(a1.stdout, /pushing to 2 connected proxies: (gw-1, gw-2|gw-2, gw-1)$/m);
    await waitFor('both on r1', async () => versionOf(gw1) === r1 && versionOf(gw2) === r1);
    for (const p of [gw1, gw2]) {
      assert.equal((await httpGet(edgePort(p), '/hello')).status, 200);
      assert.equal((await admin(p, '/ready')).status, 200);
    }
    const dump = JSON.parse((await admin(gw1, '/config_dump')).text) as Record<string, unknown> & { controlPlane: Record<string, unknown> };
    assert.equal(dump.version, r1);
    assert.equal(dump.source, 'control-plane');
    assert.ok(!Number.isNaN(Date.parse(dump.appliedAt as string)));
    assert.equal(dump.controlPlane.state, 'connected');
    assert.equal(dump.controlPlane.lastAckedVersion, r1);
    assert.equal(dump.controlPlane.lastError, null);
    assert.equal(dump.controlPlane.lastNackedVersion, null);
    const metrics = (await admin(gw1, '/metrics')).text;
    assert.equal(metricIn(metrics, 'tsmesh_config_info', { version: r1, source: 'control-plane' }), 1);
    assert.equal(metricIn(metrics, 'tsmesh_config_applies_total', { result: 'applied' }), 1);
    assert.equal(metricIn(metrics, 'tsmesh_control_plane_connected'), 1);
    assert.equal(metricIn(metrics, 'tsmesh_control_plane_updates_total', { result: 'acked' }), 1);

    const r2 = (await api.apply(doc({ timeout: '4s' }), 'faster')).version;
    await waitFor('both on r2', async () => versionOf(gw1) === r2 && versionOf(gw2) === r2);
    assert.equal(gw2.runtime.current!.config.listeners[0]!.routes[0]!.timeout, 4000);

    const [history, diff] = await Promise.all([cli(['history', '--selector', 'gw-*'], env), cli(['diff', r1, r2], env)]);
    assert.equal(history.code, 0, history.stderr);
    assert.match(history.stdout, new RegExp(`^${r2} .* gw-\\* +faster\\n${r1} .* gw-\\* +first$`, 'm'));
    assert.equal(diff.code, 0, diff.stderr);
    assert.equal(diff.stdout, `revision ${r1} -> ${r2}: 1 change\n~ listeners.edge.routes.api.timeout: 5s -> 4s\n`);

    const rb = await cli(['rollback', r1], env);
    assert.equal(rb.code, 0, rb.stderr);
    const r3 = revisionIn(rb.stdout)!;
    await waitFor('both rolled back', async () => versionOf(gw1) === r3 && versionOf(gw2) === r3);
    assert.equal(gw1.runtime.current!.config.listeners[0]!.routes[0]!.timeout, 5000);
    assert.equal((await httpGet(edgePort(gw1), '/after-rollback')).status, 200);

    // status: both ACKed on r3, with the admin address each proxy sent in its node metadata.
    await waitFor('status: both acked on r3', async () => (await api.status()).proxies.filter((p) => p.version === r3 && p.state === 'acked').length === 2);
    // stat --server: finds the proxies through the control plane's status and reads their /metrics.
    const [status, stat] = await Promise.all([cli(['status'], env), cli(['stat', '--server', env.TSMESH_SERVER!, '--interval', '200ms', '--json'], env)]);
    for (const [i, p] of [gw1, gw2].entries()) {
      assert.match(status.stdout, new RegExp(`^gw-${i + 1} +gw-\\* +${r3} +acked +\\d+s +one +${p.runtime.addresses.admin!.replace(/\./g, '\\.')} +-$`, 'm'));
    }
    assert.equal(stat.code, 0, stat.stderr);
    const report = JSON.parse(stat.stdout) as { proxies: number; problems: string[] };
    assert.deepEqual([report.proxies, report.problems], [2, []]);
  });

  test('2. 100 applies in a row under load through two proxies: no failed request, both end on the last one, in-flight requests keep their snapshot', async () => {
    const base = await api.apply(doc({ timeout: '5s' }), 'before the burst');
    await waitFor('both on the base', async () => versionOf(gw1) === base.version && versionOf(gw2) === base.version);

    // Which versions each proxy ACKed, and when.
    const acked: Array<{ proxy: string; version: string; at: number }> = [];
    for (const p of [gw1, gw2]) {
      p.controlPlane!.client.onStatus((s) => {
        const last = acked.findLast((a) => a.proxy === s.node);
        if (s.lastAckedVersion !== undefined && s.lastAckedVersion !== last?.version) acked.push({ proxy: s.node, version: s.lastAckedVersion, at: performance.now() });
      });
    }
    const loads = [gw1, gw2].map((p) => new Load(edgePort(p), { users: 3, path: '/fast' }));
    // Requests that take longer than the short timeout, started on a snapshot with 5 s.
    const slowStart = performance.now();
    const slow = [gw1, gw2, gw1, gw2].map((p) => httpGet(edgePort(p), '/slow', { timeoutMs: 10_000 }));
    await waitFor('slow requests at the upstreams', async () => [...upA.received, ...upB.received].filter((r) => r.url === '/slow').length >= 4);

    const timeouts = new Map<string, number>();
    let last = base;
    for (let i = 0; i < 100; i++) {
      const short = i % 2 === 0;
      last = await api.apply(doc({ timeout: short ? '1500ms' : '5s', weights: short ? [1, 0] : [1, 1] }), `burst ${i}`);
      timeouts.set(last.version, short ? 1500 : 5000);
    }
    await waitFor('both on the last revision', async () => versionOf(gw1) === last.version && versionOf(gw2) === last.version, 20_000);
    const slowAnswers = await Promise.all(slow);
    const slowEnd = performance.now();
    await new Promise((r) => setTimeout(r, 200));
    const answers = await Promise.all(loads.map((l) => l.stop()));

    for (const [i, a] of answers.entries()) {
      const t = tally(a);
      assert.ok(t.total > 50, `proxy ${i + 1} served ${t.total} requests during the applies`);
      assert.deepEqual(t.failures, [], `proxy ${i + 1}: failed requests`);
      assert.deepEqual(Object.keys(t.byStatus), ['200'], `proxy ${i + 1}: answers by status ${JSON.stringify(t.byStatus)}`);
    }
    assert.deepEqual(slowAnswers.map((r) => r.status), [200, 200, 200, 200], 'in-flight requests finished on the 5 s snapshot they started with');
    // ...while each proxy had applied a 1.5 s snapshot that would have cut them off.
    for (const node of ['gw-1', 'gw-2']) {
      const during = acked.filter((a) => a.proxy === node && a.at > slowStart && a.at < slowEnd);
      assert.ok(during.some((a) => timeouts.get(a.version) === 1500), `${node} ACKed ${during.map((a) => a.version).join(',')} during the slow requests`);
    }
    assert.equal(gw1.runtime.current!.config.listeners[0]!.routes[0]!.timeout, timeouts.get(last.version));
    await waitFor('status: both acked on the last revision', async () => {
      const rows = (await api.status()).proxies.filter((p) => p.node.startsWith('gw-'));
      return rows.length === 2 && rows.every((r) => r.state === 'acked' && r.version === last.version);
    });
  });

  test('3. a bad document is refused by apply; a snapshot with a port another process holds is NACKed, shown in status, and the proxies keep serving', async () => {
    const good = await api.apply(doc({ timeout: '3s' }), 'good');
    await waitFor('both on good', async () => versionOf(gw1) === good.version && versionOf(gw2) === good.version);
    const latestBefore = (await api.history({ limit: 1 })).revisions[0]!.revision;

    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, doc({ timeout: 'soon' }).replace('weight: 1 }]', 'weight: 1 }, { name: c, weight: 1 }]'));
    // PostgreSQL (another process) holds this port: a valid document no proxy can bind.
    const taken = join(dir, 'taken.yaml');
    writeFileSync(taken, doc({ timeout: '3s', address: `127.0.0.1:${postgres.port}` }));
    const [refused, a] = await Promise.all([cli(['apply', '-f', bad], env), cli(['apply', '-f', taken, '--comment', 'port in use'], env)]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /the document has 2 problems; nothing was stored/);
    assert.match(refused.stderr, /^ {2}listeners\.edge\.routes\.api\.timeout: must be a duration like 250ms, 2s or 1m \(got "soon"\)$/m);
    assert.match(refused.stderr, /^ {2}listeners\.edge\.routes\.api\.clusters\[2\]\.name: unknown cluster "c"$/m);
    assert.equal(a.code, 0, a.stderr);
    const latest = (await api.history({ limit: 2 })).revisions;
    assert.deepEqual(latest.map((r) => [r.revision, r.comment]), [[latestBefore + 1, 'port in use'], [latestBefore, 'good']], 'only the valid document was stored');
    const nacked = revisionIn(a.stdout)!;
    const load = new Load(edgePort(gw1), { users: 2 });
    await waitFor('both NACKs in status', async () => (await api.status()).proxies.filter((r) => r.node.startsWith('gw-') && r.state === 'nacked' && r.nackedVersion === nacked).length === 2);
    const status = (await cli(['status'], env)).stdout;
    for (const n of ['gw-1', 'gw-2']) {
      assert.match(status, new RegExp(`^${n} +gw-\\* +${good.version} +nacked .*version ${nacked}: version ${nacked} cannot be applied: listeners\\.edge\\.address: cannot listen on 127\\.0\\.0\\.1:${postgres.port}: EADDRINUSE$`, 'm'));
    }
    for (const p of [gw1, gw2]) {
      assert.equal(versionOf(p), good.version, 'the previous config keeps running');
      assert.equal((await httpGet(edgePort(p), '/still-here')).status, 200);
      const dump = JSON.parse((await admin(p, '/config_dump')).text) as { version: string; controlPlane: { lastAckedVersion: string; lastNackedVersion: string; lastNackError: string } };
      assert.equal(dump.version, good.version);
      assert.equal(dump.controlPlane.lastNackedVersion, nacked);
      assert.match(dump.controlPlane.lastNackError, /EADDRINUSE/);
      const m = (await admin(p, '/metrics')).text;
      assert.ok(metricIn(m, 'tsmesh_control_plane_updates_total', { result: 'nacked' })! >= 1);
      assert.ok(metricIn(m, 'tsmesh_config_applies_total', { result: 'rejected' })! >= 1);
    }
    const during = tally(await load.stop());
    assert.deepEqual([during.failures, Object.keys(during.byStatus)], [[], ['200']]);

    const fixed = await api.apply(doc({ timeout: '2s' }), 'fixed');
    await waitFor('both on the fix', async () => versionOf(gw1) === fixed.version && versionOf(gw2) === fixed.version);
    await waitFor('status: acked again', async () => (await api.status()).proxies.filter((r) => r.node.startsWith('gw-')).every((r) => r.state === 'acked'));
  });

  test('5. two replicas on one PostgreSQL: apply to one, a proxy on the other gets it and serves it', async () => {
    const two = await startControlPlane({ grpc: '127.0.0.1:0', http: '127.0.0.1:0', token: TOKEN, databaseUrl: postgres.url, log: silent, replica: 'two' });
    try {
      const p = await startMeshProxy('rep-1', two.grpcAddress, { token: TOKEN, initialFetchTimeoutMs: 300 });
      proxies.push(p);
      const file = join(dir, 'rep.yaml');
      writeFileSync(file, doc({ selector: 'rep-*', timeout: '7s' }));
      const a = await cli(['apply', '-f', file], env); // to replica one
      assert.equal(a.code, 0, a.stderr);
      const r = revisionIn(a.stdout)!;
      await waitFor('rep-1 (on replica two) on the revision', async () => versionOf(p) === r);
      assert.equal(p.runtime.current!.config.listeners[0]!.routes[0]!.timeout, 7000);
      assert.equal((await httpGet(edgePort(p), '/via-two')).status, 200);
      // Either replica answers status for all proxies.
      const st = await cli(['status', '--server', `http://${two.httpAddress}`], env);
      assert.match(st.stdout, new RegExp(`^rep-1 +rep-\\* +${r} +acked +\\d+s +two +`, 'm'));
      assert.match(st.stdout, /^gw-1 .* one /m);

      // A proxy shutting down (SIGTERM in tsmesh proxy) closes its stream: it leaves status.
      await p.shutdown();
      await waitFor('rep-1 gone from status', async () => !(await api.status()).proxies.some((x) => x.node === 'rep-1'));
    } finally {
      await two.stop();
    }
  });
});
