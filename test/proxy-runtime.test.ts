// The running proxy: live config swaps, refused applies, admin endpoints, access log, drain.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startUpstream, type TestUpstream } from './support/upstream.js';
import { RawClient, headerOf, httpGet, metricValue, sleep, startTestProxy, statusOf, testConfig, splitResponses } from './support/proxy.js';
import { descriptorsTo } from './support/descriptors.js';
import { freePort, waitFor } from './support/servers.js';

let a: TestUpstream;
let b: TestUpstream;

before(async () => {
  [a, b] = await Promise.all([startUpstream(), startUpstream()]);
});

after(async () => {
  await Promise.all([a?.close(), b?.close()]);
});

const doc = (cluster: string, extra: Record<string, unknown> = {}) => ({
  listeners: [{ name: 'edge', routes: [{ name: 'r', match: { path: { prefix: '/' } }, cluster }] }],
  clusters: [
    { name: 'a', endpoints: [a.address] },
    { name: 'b', endpoints: [b.address] },
  ],
  ...extra,
});

test('apply swaps the config live: open connections keep working, in-flight requests finish on their snapshot', async () => {
  const p = await startTestProxy(doc('a'));
  const slowA = a.handler;
  a.handler = (req, res, r) => (req.url === '/slow' ? setTimeout(() => slowA(req, res, r), 200) : slowA(req, res, r));
  try {
    const port = p.port('edge');
    const client = await RawClient.connect(port);
    client.write('GET /1 HTTP/1.1\r\nHost: x\r\n\r\n');
    const [first] = await client.waitForResponses(1);
    assert.equal(headerOf(first!, 'x-upstream'), String(a.port));

    // The swap happens once /slow is at the upstream (routed and sent on the old snapshot).
    const seen = a.received.length;
    const inflight = httpGet(port, '/slow');
    await a.waitForRequests(seen + 1);
    const result = await p.apply(testConfig(doc('b')), { version: '2', source: 'file' });
    assert.equal(result.ok, true);
    assert.equal(p.port('edge'), port, 'the listener was kept');
    assert.equal((await inflight).headers['x-upstream'], String(a.port), 'the in-flight request finished on the old snapshot');

    client.write('GET /2 HTTP/1.1\r\nHost: x\r\n\r\n');
    const responses = await client.waitForResponses(2);
    assert.equal(headerOf(responses[1]!, 'x-upstream'), String(b.port), 'the same connection now uses the new routes');
    assert.equal(client.closed, false);
    client.close();
    assert.equal(p.current?.version, '2');
  } finally {
    a.handler = slowA;
    await p.close();
  }
});

test('a config that cannot be applied (address in use) changes nothing', async () => {
  const blocker: Server = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const taken = (blocker.address() as { port: number }).port;
  const p = await startTestProxy(doc('a'));
  try {
    const port = p.port('edge');
    const bad = testConfig({
      ...doc('b'),
      listeners: [
        { name: 'edge', routes: [{ name: 'r', match: { path: { prefix: '/' } }, cluster: 'b' }] },
        { name: 'second', address: `127.0.0.1:${taken}`, routes: [] },
      ],
    });
    const result = await p.apply(bad, { version: '2', source: 'control-plane' });
    assert.equal(result.ok, false);
    if (!result.ok) assert.match(result.errors.join('\n'), new RegExp(`listeners\\.second\\.address: cannot listen on 127\\.0\\.0\\.1:${taken}: EADDRINUSE`));
    assert.equal(p.current?.version, '1');
    const r = await httpGet(port, '/');
    assert.equal(r.headers['x-upstream'], String(a.port), 'the old config is still running');
    assert.equal(await metricValue(p, 'tsmesh_config_applies_total', { result: 'rejected' }), 1);
  } finally {
    await p.close();
    await new Promise<void>((r) => blocker.close(() => r()));
  }
});

test('a listener removed by a new config stops accepting; a new one is bound', async () => {
  const p = await startTestProxy({
    ...doc('a'),
    listeners: [
      { name: 'one', routes: [{ name: 'r1', match: {}, cluster: 'a' }] },
      { name: 'two', routes: [{ name: 'r2', match: {}, cluster: 'b' }] },
    ],
  });
  try {
    const two = p.port('two');
    assert.equal((await httpGet(two, '/')).status, 200);
    const r = await p.apply(testConfig({ ...doc('a'), listeners: [{ name: 'one', routes: [{ name: 'r1', match: {}, cluster: 'a' }] }, { name: 'three', routes: [{ name: 'r3', match: {}, cluster: 'b' }] }] }), {
      version: '2',
      source: 'file',
    });
    assert.equal(r.ok, true);
    await waitFor('listener two to close', async () => {
      try {
        await httpGet(two, '/', { timeoutMs: 500 });
        return false;
      } catch {
        return true;
      }
    }, 5000);
    assert.equal((await httpGet(p.port('three'), '/')).headers['x-upstream'], String(b.port));
  } finally {
    await p.close();
  }
});

/** Descriptors this process holds for the socket listening on `port` (Linux: /proc/net/tcp gives its inode). */
function listeningDescriptors(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const line = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f[1]?.endsWith(`:${hexPort}`) && f[3] === '0A');
  return line ? descriptorsTo(`socket:[${line[9]}]`) : 0;
}

test('acceptDescriptors: the listener accepts on that many descriptors of its socket, serves through them, and closes them all', { skip: process.platform !== 'linux' }, async () => {
  const p = await startTestProxy({ ...doc('a'), listeners: [{ name: 'edge', acceptDescriptors: 4, routes: [{ name: 'r', match: {}, cluster: 'a' }] }] });
  const port = p.port('edge');
  let closed = false;
  try {
    assert.equal(listeningDescriptors(port), 4);
    // Each extra descriptor listens again on the shared socket, with the configured backlog
    // (capped by net.core.somaxconn), not Node's default 511: `ss` shows it as Send-Q.
    const ss = spawnSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' });
    if (ss.status === 0) {
      const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
      assert.equal(Number(ss.stdout.trim().split(/\s+/)[2]), Math.min(65_535, somaxconn), ss.stdout);
    }
    const statuses = await Promise.all(Array.from({ length: 50 }, () => httpGet(port, '/').then((r) => r.status)));
    assert.deepEqual(new Set(statuses), new Set([200]));
    await p.close();
    closed = true;
    assert.equal(listeningDescriptors(port), 0);
  } finally {
    if (!closed) await p.close();
  }
});

test('admin: /ready, /metrics, /config_dump, POST /drain', async () => {
  // A drain delay far longer than the few requests made during it (close() does not wait for it).
  const p = await startTestProxy(doc('a', { drain: { delay: '2s', timeout: '1s' } }));
  try {
    const admin = p.adminPort;
    assert.equal((await httpGet(p.port('edge'), '/x')).status, 200);
    const ready = await httpGet(admin, '/ready');
    assert.equal(ready.status, 200);
    const metrics = await httpGet(admin, '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /tsmesh_requests_total\{listener="edge",route="r",cluster="a",code="200",reason="none"\} 1/);
    assert.match(metrics.body, /tsmesh_request_duration_seconds_count\{route="r",cluster="a"\} 1/);
    assert.match(metrics.body, /tsmesh_upstream_connections\{cluster="a",state="idle"\} 1/);
    assert.match(metrics.body, /tsmesh_upstream_attempts_total\{cluster="a",endpoint="127\.0\.0\.1:\d+",code="200"\} 1/);
    const dump = JSON.parse((await httpGet(admin, '/config_dump')).body);
    assert.equal(dump.version, '1');
    assert.equal(dump.source, 'file');
    assert.equal(dump.config.listeners[0].name, 'edge');
    assert.equal(dump.addresses.edge, `127.0.0.1:${p.port('edge')}`);
    assert.equal((await httpGet(admin, '/drain')).status, 405);
    assert.equal((await httpGet(admin, '/drain', { method: 'POST' })).status, 202);
    assert.equal((await httpGet(admin, '/ready')).status, 503);
    // Still serving during the drain delay.
    assert.equal((await httpGet(p.port('edge'), '/x')).status, 200);
  } finally {
    await p.close();
  }
});

test('the access log writes one JSON line per request; rejections always, successes sampled', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-log-'));
  const path = join(dir, 'access.log');
  const p = await startTestProxy({
    ...doc('a'),
    listeners: [{ name: 'edge', routes: [{ name: 'r', match: { path: { prefix: '/ok' } }, cluster: 'a' }] }],
    accessLog: { enabled: true, path, sampleRate: 1 },
  });
  try {
    await httpGet(p.port('edge'), '/ok?q=1', { headers: { 'user-agent': 'test' } });
    await httpGet(p.port('edge'), '/missing');
    await p.close();
    const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    const [ok, miss] = lines;
    assert.equal(ok.method, 'GET');
    assert.equal(ok.path, '/ok?q=1');
    assert.equal(ok.status, 200);
    assert.equal(ok.reason, 'none');
    assert.equal(ok.route, 'r');
    assert.equal(ok.cluster, 'a');
    assert.equal(ok.endpoint, a.address);
    assert.equal(ok.attempts, 1);
    assert.equal(typeof ok.duration_ms, 'number');
    assert.equal(typeof ok.upstream_ms, 'number');
    assert.ok(ok.response_bytes > 0);
    assert.match(ok.request_id, /^[0-9a-f-]{24}\d+$/);
    assert.match(ok.client, /^127\.0\.0\.1:\d+$/);
    assert.ok(typeof ok.time === 'number' && Math.abs(ok.time - Date.now()) < 60_000);
    assert.ok(!Object.values(ok).includes(null), 'absent fields are left out, never null');
    assert.equal(miss.status, 404);
    assert.equal(miss.reason, 'no_route');

    // sampleRate 0: successes are not logged, rejections still are.
    const path2 = join(dir, 'sampled.log');
    const p2 = await startTestProxy({
      ...doc('a'),
      listeners: [{ name: 'edge', routes: [{ name: 'r', match: { path: { prefix: '/ok' } }, cluster: 'a' }] }],
      accessLog: { enabled: true, path: path2, sampleRate: 0 },
    });
    await httpGet(p2.port('edge'), '/ok');
    await httpGet(p2.port('edge'), '/missing');
    await p2.close();
    const sampled = readFileSync(path2, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(sampled.map((l) => l.status), [404]);
  } finally {
    await p.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('drain under load: zero failed requests; /ready turns 503 at once; traffic served during the delay; then listeners close', async () => {
  a.handler = (_req, res) => setTimeout(() => res.end('ok'), 5);
  const p = await startTestProxy(doc('a', { drain: { delay: '1s', timeout: '3s' } }));
  const port = p.port('edge');
  let ok = 0;
  let failed = 0;
  let refused = 0;
  const failures: string[] = [];
  let stop = false;

  // A keep-alive client as HTTP clients are: a request the server never started to answer on a
  // reused connection it closed (the keep-alive race, RFC 9112 9.3.1) is sent again on a new
  // connection; a refused new connection means the proxy no longer accepts: not a failure.
  const worker = async () => {
    let client: RawClient | undefined;
    let sent = 0;
    while (!stop) {
      if (!client || client.closed) {
        try {
          client = await RawClient.connect(port);
          sent = 0;
        } catch {
          refused++;
          return;
        }
      }
      const before = client.text.length;
      client.write('GET /load HTTP/1.1\r\nHost: x\r\n\r\n');
      sent++;
      try {
        await client.waitFor((t) => splitResponses(t.slice(before)).length >= 1 || client!.closed, 5000);
      } catch (err) {
        failed++;
        failures.push(String(err));
        return;
      }
      const got = splitResponses(client.text.slice(before));
      if (got.length === 0) {
        if (client.text.length === before && sent > 1) continue; // keep-alive race: resend on a new connection
        failed++;
        failures.push(`closed mid-response: ${JSON.stringify(client.text.slice(before))}`);
        return;
      }
      if (statusOf(got[0]!) !== 200) {
        failed++;
        failures.push(got[0]!.slice(0, 200));
        return;
      }
      ok++;
      if (headerOf(got[0]!, 'connection') === 'close') {
        await client.waitClosed(2000).catch(() => undefined);
      }
    }
    client?.close();
  };
  try {
    const workers = Array.from({ length: 20 }, () => worker());
    await sleep(200);
    const okBefore = ok;
    let drained = false;
    const draining = p.drain().then(() => (drained = true));
    assert.equal((await httpGet(p.adminPort, '/ready')).status, 503, '/ready is 503 at once');
    await waitFor('requests served during the drain delay', async () => ok > okBefore + 10, 5000);
    assert.equal(drained, false, 'still serving during the drain delay (1 s), not after it');
    await draining;
    stop = true;
    await Promise.all(workers);
    assert.equal(failed, 0, failures.join('\n'));
    assert.ok(ok > 50, `only ${ok} requests served`);
    // The listener no longer accepts.
    await assert.rejects(
      new Promise((resolve, reject) => {
        const s = connect(port, '127.0.0.1', () => resolve(s));
        s.on('error', reject);
      }),
    );
  } finally {
    stop = true;
    a.handler = (req, res) => {
      res.writeHead(200, { 'x-upstream': String(a.port) });
      res.end(JSON.stringify({ url: req.url }));
    };
    await p.close();
  }
});

test('draining: a request still being received when the drain ends is answered 503 draining', async () => {
  const p = await startTestProxy(doc('a', { drain: { delay: '0', timeout: '1s' } }));
  try {
    const client = await RawClient.connect(p.port('edge'));
    client.write('GET / HTTP/1.1\r\nHost: x\r\n');
    await sleep(50);
    await p.drain();
    const text = await client.waitClosed();
    assert.equal(statusOf(text), 503);
    assert.equal(headerOf(text, 'x-tsmesh-reason'), 'draining');
    assert.equal(headerOf(text, 'connection'), 'close');
  } finally {
    await p.close();
  }
});

test('a drain waits for in-flight requests, which complete; new requests on open connections get Connection: close', async () => {
  let answered = false;
  a.handler = (req, res) =>
    setTimeout(
      () => {
        res.end('done');
        if (req.url === '/long') answered = true;
      },
      req.url === '/long' ? 300 : 0,
    );
  const p = await startTestProxy(doc('a', { drain: { delay: '0', timeout: '3s' } }));
  try {
    const port = p.port('edge');
    const seen = a.received.length;
    const long = httpGet(port, '/long');
    await a.waitForRequests(seen + 1);
    await p.drain();
    assert.equal(answered, true, 'the drain waited for the in-flight request to be answered upstream');
    const r = await long;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'done');
    assert.equal(r.headers.connection, 'close');
  } finally {
    a.handler = (req, res) => {
      res.writeHead(200, { 'x-upstream': String(a.port) });
      res.end(JSON.stringify({ url: req.url }));
    };
    await p.close();
  }
});

test('several proxies run in one process, each with its own metrics', async () => {
  const [p1, p2] = await Promise.all([startTestProxy(doc('a')), startTestProxy(doc('b'))]);
  try {
    await httpGet(p1.port('edge'), '/');
    await httpGet(p2.port('edge'), '/');
    await httpGet(p2.port('edge'), '/');
    assert.equal(await metricValue(p1, 'tsmesh_requests_total', { cluster: 'a' }), 1);
    assert.equal(await metricValue(p2, 'tsmesh_requests_total', { cluster: 'b' }), 2);
  } finally {
    await Promise.all([p1.close(), p2.close()]);
  }
});

test('startProxy refuses an unbindable address with a clear error', async () => {
  const port = await freePort();
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
  try {
    await assert.rejects(startTestProxy({ ...doc('a'), listeners: [{ name: 'edge', address: `127.0.0.1:${port}`, routes: [] }] }), /listeners\.edge\.address: cannot listen on .*EADDRINUSE/);
  } finally {
    await new Promise<void>((r) => blocker.close(() => r()));
  }
});
