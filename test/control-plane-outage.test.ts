// Issue 4, scenario 4, where the process boundary matters: `tsmesh control-plane` on a real
// PostgreSQL is killed (SIGKILL) under two real proxies, one `tsmesh proxy` process booted
// from a bootstrap file without a node name (--node, token from TSMESH_TOKEN, as the
// Kubernetes examples run it) and one in this process. They keep serving; the process is
// restarted while the control plane is down and boots from its disk copy; the control plane
// comes back on its address and both converge on the next apply.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../control-plane/src/api/client.js';
import type { RunningProxy } from '../proxy/src/boot.js';
import { admin, Load, metricIn, startControlPlaneProcess, startMeshProxy, tally, TsmeshProcess } from './support/mesh.js';
import { httpGet } from './support/proxy.js';
import { holdPort } from '../proxy/src/net/ports.js';
import { freePort, startPostgres, waitFor, type RealServer } from './support/servers.js';
import { startUpstream, type TestUpstream } from './support/upstream.js';

const TOKEN = 'outage-token';

interface Dump {
  version: string | null;
  source: string | null;
  addresses: Record<string, string>;
  controlPlane: { state: string; node: string; lastAckedVersion: string | null; lastError: string | null };
}

let postgres: RealServer;
let up: TestUpstream;
let dir: string;
let grpcPort: number;
const stops: Array<() => Promise<unknown>> = [];

before(async () => {
  [postgres, up, grpcPort] = await Promise.all([startPostgres(), startUpstream(), freePort()]);
  dir = mkdtempSync(join(tmpdir(), 'tsmesh-outage-'));
});

after(async () => {
  for (const stop of stops.splice(0).reverse()) await stop().catch(() => undefined);
  await Promise.all([postgres?.stop(), up?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const doc = (timeout: string) => `selector: out-*
drain: { delay: 0, timeout: 2s }
listeners:
  - name: edge
    address: 127.0.0.1:0
    routes: [{ name: api, match: { path: { prefix: / } }, cluster: app, timeout: ${timeout} }]
clusters:
  - { name: app, endpoints: [${up.address}] }
`;

test('4. control plane killed: proxies keep serving, a restarted proxy boots from its disk copy, all converge when it returns', async () => {
  let cp = await startControlPlaneProcess(postgres.url, grpcPort, TOKEN);
  stops.push(() => cp.proc.kill('SIGKILL'));
  const api = () => new ApiClient({ server: cp.http, token: TOKEN, author: 'outage' });

  // The k8s shape: no node in the file, the pod's name on the command line, the token from the environment.
  const bootFile = join(dir, 'bootstrap.yaml');
  writeFileSync(bootFile, `admin: { address: 127.0.0.1:0 }\ncontrolPlane:\n  address: 127.0.0.1:${grpcPort}\n  cacheDir: ${join(dir, 'cache-2')}\n`);
  const startProcess = () => {
    const p = TsmeshProcess.spawn(['proxy', '--config', bootFile, '--node', 'out-2'], { TSMESH_TOKEN: TOKEN });
    stops.push(() => p.kill('SIGKILL'));
    return p;
  };
  let p2 = startProcess();
  const admin2 = (await p2.waitForLine(/^admin http:\/\/(\S+)$/m))[1]!;
  const dump2 = async () => JSON.parse((await admin(admin2, '/config_dump')).text) as Dump;
  // Connected, nothing for out-* stored yet: waiting, not ready.
  await waitFor('out-2 connected', async () => (await dump2()).controlPlane.state === 'connected');
  assert.equal((await admin(admin2, '/ready')).status, 503);
  assert.equal((await dump2()).version, null);

  const v1 = (await api().apply(doc('3s'), 'v1')).version;
  const edge2 = (await p2.waitForLine(/^listener edge http:\/\/(\S+)$/m))[1]!;
  assert.equal((await admin(admin2, '/ready')).status, 200);
  assert.deepEqual(await dump2().then((d) => [d.version, d.source, d.controlPlane.node, d.controlPlane.lastAckedVersion]), [v1, 'control-plane', 'out-2', v1]);
  const p1: RunningProxy = await startMeshProxy('out-1', `127.0.0.1:${grpcPort}`, { token: TOKEN, cacheDir: join(dir, 'cache-1') });
  stops.push(() => p1.close());
  assert.equal(p1.controlPlane!.bootedFrom, 'control-plane');
  assert.equal(p1.runtime.current?.version, v1);
  await waitFor('status lists out-2 with its admin address', async () => (await api().status()).proxies.some((p) => p.node === 'out-2' && p.adminAddress === admin2 && p.state === 'acked'));

  const portOf = (address: string) => Number(address.slice(address.lastIndexOf(':') + 1));
  const load1 = new Load(p1.runtime.port('edge'), { users: 2 });
  let load2 = new Load(portOf(edge2), { users: 2 });

  await cp.proc.kill('SIGKILL');
  await waitFor('both see the control plane gone', async () => p1.controlPlane!.client.status.state !== 'connected' && (await dump2()).controlPlane.state !== 'connected');
  const m1 = (await admin(p1, '/metrics')).text;
  assert.equal(metricIn(m1, 'tsmesh_control_plane_connected'), 0);
  assert.match((await dump2()).controlPlane.lastError ?? '', /UNAVAILABLE/);
  // Held while the control plane is down: the proxy started below binds port 0 twice, and
  // could otherwise be given this port (a connection to the holder is closed at once).
  const grpcHeld = await holdPort('127.0.0.1', grpcPort);
  await new Promise((r) => setTimeout(r, 300));
  const whileDown = tally(await load2.stop());
  assert.ok(whileDown.ok > 10, `out-2 served ${whileDown.ok} requests`);
  assert.deepEqual([whileDown.failures, Object.keys(whileDown.byStatus)], [[], ['200']], 'out-2 keeps serving');

  // out-2 restarts while the control plane is down: SIGTERM drains and exits 0; the new
  // process boots from its disk copy and serves.
  assert.equal(await p2.kill('SIGTERM'), 0);
  assert.match(p2.text, /drained, bye/);
  p2 = startProcess();
  await p2.waitForLine(new RegExp(`^tsmesh proxy: config version ${v1} from disk-cache \\(version ${v1} saved at `, 'm'));
  const edge2b = (await p2.waitForLine(/^listener edge http:\/\/(\S+)$/m))[1]!;
  const admin2b = (await p2.waitForLine(/^admin http:\/\/(\S+)$/m))[1]!;
  const dumpB = JSON.parse((await admin(admin2b, '/config_dump')).text) as Dump;
  assert.deepEqual([dumpB.version, dumpB.source, dumpB.controlPlane.state !== 'connected'], [v1, 'disk-cache', true]);
  assert.equal((await admin(admin2b, '/ready')).status, 200);
  assert.equal((await httpGet(portOf(edge2b), '/from-disk')).status, 200);
  load2 = new Load(portOf(edge2b), { users: 2 });

  // The control plane returns on the same address: both reconnect; the next apply reaches both.
  await grpcHeld.release();
  cp = await startControlPlaneProcess(postgres.url, grpcPort, TOKEN);
  stops.push(() => cp.proc.kill('SIGKILL'));
  await waitFor('both reconnected', async () => {
    const d = JSON.parse((await admin(admin2b, '/config_dump')).text) as Dump;
    return p1.controlPlane!.client.status.state === 'connected' && d.controlPlane.state === 'connected';
  }, 15_000);
  const v2 = (await api().apply(doc('4s'), 'v2')).version;
  await waitFor('both converge on v2', async () => {
    const d = JSON.parse((await admin(admin2b, '/config_dump')).text) as Dump;
    return p1.runtime.current?.version === v2 && d.version === v2 && d.source === 'control-plane';
  });
  assert.equal(p1.runtime.current!.config.listeners[0]!.routes[0]!.timeout, 4000);
  assert.equal((await httpGet(portOf(edge2b), '/after')).status, 200, 'the listener (port 0, same name) stays through the apply');
  await waitFor('status: both acked on v2', async () => (await api().status()).proxies.filter((p) => p.node.startsWith('out-') && p.version === v2 && p.state === 'acked').length === 2);

  for (const [name, l] of [['out-1', load1], ['out-2', load2]] as const) {
    const t = tally(await l.stop());
    assert.deepEqual([t.failures, Object.keys(t.byStatus)], [[], ['200']], `${name}: ${JSON.stringify(t.byStatus)}`);
  }
  assert.equal(await p2.kill('SIGTERM'), 0);
});
