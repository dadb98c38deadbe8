// The request path through a real proxy on real sockets: routing, reuse, headers, bodies and
// framing (chunked both ways, 100-continue, HEAD/204/304, HTTP/1.0 clients).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import type { ProxyRuntime } from '../proxy/src/runtime.js';
import { startUpstream, type TestUpstream } from './support/upstream.js';
import { RawClient, headerOf, httpGet, metricValue, rawRequest, sleep, startTestProxy, statusOf } from './support/proxy.js';

let a: TestUpstream;
let b: TestUpstream;
let c: TestUpstream;
let proxy: ProxyRuntime;
let port: number;

before(async () => {
  [a, b, c] = await Promise.all([startUpstream(), startUpstream(), startUpstream()]);
  proxy = await startTestProxy({
    listeners: [
      {
        name: 'edge',
        routes: [
          { name: 'api-host', match: { host: 'api.example.com', path: { prefix: '/' } }, cluster: 'b' },
          { name: 'wild-host', match: { host: '*.example.org' }, cluster: 'c' },
          { name: 'exact', match: { path: { exact: '/exact' } }, cluster: 'b' },
          { name: 'regex', match: { path: { regex: '/items/[0-9]+' } }, cluster: 'c' },
          { name: 'post-only', match: { path: { prefix: '/method' }, methods: ['POST'] }, cluster: 'b' },
          { name: 'hdr-exact', match: { path: { prefix: '/hdr' }, headers: [{ name: 'X-Tenant', exact: 'blue' }] }, cluster: 'b' },
          { name: 'hdr-regex', match: { path: { prefix: '/hdr' }, headers: [{ name: 'x-tenant', regex: 'gr(e|a)y' }] }, cluster: 'c' },
          { name: 'hdr-absent', match: { path: { prefix: '/hdr' }, headers: [{ name: 'x-tenant', present: true, invert: true }] }, cluster: 'a' },
          { name: 'split', match: { path: { prefix: '/split' } }, clusters: [{ name: 'a', weight: 3 }, { name: 'b', weight: 1 }] },
          { name: 'rr', match: { path: { prefix: '/rr' } }, cluster: 'all' },
          { name: 'default', match: { path: { prefix: '/' } }, cluster: 'a' },
        ],
      },
    ],
    clusters: [
      { name: 'a', endpoints: [a.address] },
      { name: 'b', endpoints: [b.address] },
      { name: 'c', endpoints: [c.address] },
      { name: 'all', endpoints: [a.address, b.address, c.address], loadBalancer: 'round-robin' },
    ],
  });
  port = proxy.port('edge');
});

after(async () => {
  await proxy?.close();
  await Promise.all([a?.close(), b?.close(), c?.close()]);
});

const upstreamOf = (r: { headers: Record<string, unknown> }) => r.headers['x-upstream'];

test('routes by host (exact and wildcard), path (exact, prefix, regex), method and headers; first match wins', async () => {
  const name = (u: TestUpstream) => String(u.port);
  const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => httpGet(port, path, { headers, method }).then(upstreamOf);
  assert.equal(await get('/x', { host: 'API.example.com:8080' }), name(b));
  assert.equal(await get('/x', { host: 'a.b.example.org' }), name(c));
  assert.equal(await get('/x', { host: 'example.org' }), name(a), 'a wildcard needs a subdomain');
  assert.equal(await get('/exact'), name(b));
  assert.equal(await get('/exact/more'), name(a));
  assert.equal(await get('/items/42'), name(c));
  assert.equal(await get('/items/42?x=1'), name(c), 'the query is not part of the path');
  assert.equal(await get('/items/4x'), name(a), 'regexes match the whole path');
  assert.equal(await get('/method', {}, 'POST'), name(b));
  assert.equal(await get('/method'), name(a));
  assert.equal(await get('/hdr', { 'x-tenant': 'blue' }), name(b));
  assert.equal(await get('/hdr', { 'x-tenant': 'grey' }), name(c));
  assert.equal(await get('/hdr', { 'x-tenant': 'red' }), name(a), 'falls through to default');
  assert.equal(await get('/hdr'), name(a));
});

test('a weighted split sends traffic in proportion to the weights', async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const n = 400;
  const results = await Promise.all(Array.from({ length: n }, () => httpGet(port, '/split', { agent }).then(upstreamOf)));
  agent.destroy();
  const toA = results.filter((u) => u === String(a.port)).length;
  const toB = results.filter((u) => u === String(b.port)).length;
  assert.equal(toA + toB, n);
  // Expected 300 / 100; binomial sd ~8.7: accept +-5 sd so that the test is not flaky.
  assert.ok(toA > 256 && toA < 344, `weight 3:1 gave ${toA}:${toB}`);
});

test('round-robin spreads evenly across endpoints', async () => {
  const counts = new Map<unknown, number>();
  for (let i = 0; i < 30; i++) {
    const u = upstreamOf(await httpGet(port, '/rr'));
    counts.set(u, (counts.get(u) ?? 0) + 1);
  }
  assert.deepEqual([...counts.values()].sort(), [10, 10, 10]);
});

test('upstream connections are reused (keep-alive pool)', async () => {
  const before = a.accepted;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < 25; i++) assert.equal((await httpGet(port, '/reuse', { agent })).status, 200);
  agent.destroy();
  assert.ok(a.accepted - before <= 1, `opened ${a.accepted - before} upstream connections for 25 sequential requests`);
});

test('no route: 404 no_route, counted in the metrics', async () => {
  const p2 = await startTestProxy({
    listeners: [{ name: 'only', routes: [{ name: 'health', match: { path: { exact: '/health' } }, cluster: 'a' }] }],
    clusters: [{ name: 'a', endpoints: [a.address] }],
  });
  try {
    const r = await httpGet(p2.port('only'), '/nope');
    assert.equal(r.status, 404);
    assert.equal(r.headers['x-tsmesh-reason'], 'no_route');
    assert.match(r.body, /no_route/);
    assert.equal(await metricValue(p2, 'tsmesh_requests_total', { listener: 'only', code: '404', reason: 'no_route' }), 1);
  } finally {
    await p2.close();
  }
});

test('hop-by-hop headers are removed both ways; x-forwarded-* and x-request-id are set', async () => {
  const seen = a.received.length;
  a.handler = (_req, res) => {
    res.setHeader('Connection', 'keep-alive, X-Hop-Resp');
    res.setHeader('X-Hop-Resp', 'secret');
    res.setHeader('Proxy-Authenticate', 'Basic');
    res.setHeader('Trailer', 'X-T');
    res.setHeader('X-End-To-End', 'kept');
    res.end('ok');
  };
  try {
    const text = (
      await rawRequest(
        port,
        'GET /hop HTTP/1.1\r\nHost: svc.local\r\nConnection: keep-alive, X-Hop-Req\r\nX-Hop-Req: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n' +
          'Upgrade: websocket\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nX-Forwarded-For: 10.0.0.1\r\nX-Keep: yes\r\n\r\n',
      )
    ).text;
    assert.equal(statusOf(text), 200);
    const r = a.received[seen]!;
    const names = r.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    for (const hop of ['connection', 'x-hop-req', 'keep-alive', 'te', 'upgrade', 'proxy-authorization', 'proxy-connection']) {
      assert.ok(!names.includes(hop), `${hop} reached the upstream`);
    }
    assert.equal(r.headers['x-keep'], 'yes');
    assert.equal(r.headers['x-forwarded-for'], '10.0.0.1, 127.0.0.1');
    assert.equal(r.headers['x-forwarded-proto'], 'http');
    assert.equal(r.headers['x-forwarded-host'], 'svc.local');
    assert.match(String(r.headers['x-request-id']), /^[0-9a-f-]{24}\d+$/);
    assert.match(String(r.headers['x-tsmesh-timeout-ms']), /^\d+$/);
    for (const hop of ['x-hop-resp', 'proxy-authenticate', 'trailer', 'keep-alive']) assert.equal(headerOf(text, hop), undefined, `${hop} reached the client`);
    assert.notEqual(headerOf(text, 'connection')?.toLowerCase().includes('x-hop-resp'), true);
    assert.equal(headerOf(text, 'x-end-to-end'), 'kept');
    assert.equal(headerOf(text, 'x-tsmesh-attempts'), '1');

    // An x-request-id from the client is kept as is.
    await httpGet(port, '/hop', { headers: { 'x-request-id': 'abc-123' } });
    assert.equal(a.received[seen + 1]!.headers['x-request-id'], 'abc-123');
  } finally {
    a.handler = (req, res) => {
      res.writeHead(200, { 'x-upstream': String(a.port) });
      res.end(JSON.stringify({ url: req.url }));
    };
  }
});

test('x-forwarded-host follows the Host of each request on one keep-alive connection; forwarded fields named in Connection are replaced, not trusted', async () => {
  const seen = a.received.length;
  const client = await RawClient.connect(port);
  try {
    client.write('GET /fwd1 HTTP/1.1\r\nHost: one.local\r\n\r\n');
    await client.waitForResponses(1);
    client.write('GET /fwd2 HTTP/1.1\r\nHost: two.local:8080\r\n\r\n');
    await client.waitForResponses(2);
    client.write(
      'GET /fwd3 HTTP/1.1\r\nHost: two.local:8080\r\nConnection: x-forwarded-proto, X-Request-Id, x-forwarded-host\r\n' +
        'X-Forwarded-Proto: https\r\nX-Request-Id: from-the-last-hop\r\nX-Forwarded-Host: spoofed.local\r\n\r\n',
    );
    await client.waitForResponses(3);
  } finally {
    client.close();
  }
  const [r1, r2, r3] = a.received.slice(seen);
  assert.equal(r1!.headers['x-forwarded-host'], 'one.local');
  assert.equal(r2!.headers['x-forwarded-host'], 'two.local:8080');
  for (const r of [r1!, r2!, r3!]) {
    assert.equal(r.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(r.headers['x-forwarded-proto'], 'http');
    assert.match(String(r.headers['x-request-id']), /^[0-9a-f-]{24}\d+$/);
  }
  assert.equal(r3!.headers['x-forwarded-host'], 'two.local:8080');
});

test('repeated response headers (set-cookie) pass unchanged and in order', async () => {
  b.handler = (_req, res) => {
    res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; HttpOnly', 'c=3']);
    res.end('cookies');
  };
  const r = await httpGet(port, '/exact');
  const cookies = r.rawHeaders.flatMap((v, i) => (i % 2 === 0 && v.toLowerCase() === 'set-cookie' ? [r.rawHeaders[i + 1]] : []));
  assert.deepEqual(cookies, ['a=1; Path=/', 'b=2; HttpOnly', 'c=3']);
});

test('chunked bodies both ways, with trailers', async () => {
  const seen = c.received.length;
  c.handler = (_req, res, rec) => {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-sum' });
    res.write('got ');
    res.write(String(rec.body.length));
    res.addTrailers({ 'x-sum': 'done' });
    res.end(' bytes');
  };
  const body = '5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Req-Trailer: t\r\n\r\n';
  const text = (await rawRequest(port, `POST /items/7 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body}`)).text;
  assert.equal(statusOf(text), 200);
  assert.equal(headerOf(text, 'transfer-encoding'), 'chunked');
  assert.match(text, /\r\n\r\n[0-9a-f]+\r\ngot \r\n/);
  assert.match(text, /0\r\nx-sum: done\r\n\r\n$/);
  assert.equal(c.received[seen]!.body.toString(), 'hello world');
  assert.equal(c.received[seen]!.headers['transfer-encoding'], 'chunked');
});

test('Expect: 100-continue works end to end', async () => {
  const client = await RawClient.connect(port);
  try {
    client.write('POST /exact HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    await client.waitFor((t) => t.startsWith('HTTP/1.1 100 Continue\r\n\r\n'));
    client.write('hello');
    const [, final] = await client.waitForResponses(2);
    assert.equal(statusOf(final!), 200);
  } finally {
    client.close();
  }
});

test('HEAD, 204 and 304 have no body and keep the connection usable', async () => {
  a.handler = (req, res) => {
    if (req.url === '/204') {
      res.writeHead(204);
      res.end();
    } else if (req.url === '/304') {
      res.writeHead(304, { etag: '"x"' });
      res.end();
    } else {
      res.writeHead(200, { 'content-length': '11', 'x-upstream': String(a.port) });
      res.end(req.method === 'HEAD' ? undefined : 'hello world');
    }
  };
  const client = await RawClient.connect(port);
  try {
    client.write('HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.waitFor((t) => t.includes('\r\n\r\n'));
    client.write('GET /204 HTTP/1.1\r\nHost: x\r\n\r\nGET /304 HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n');
    const text = await client.waitFor((t) => t.includes('hello world'));
    const heads = text.split('\r\n\r\n');
    assert.equal(statusOf(heads[0]!), 200);
    assert.equal(headerOf(heads[0] + '\r\n\r\n', 'content-length'), '11');
    assert.equal(statusOf(heads[1]!), 204);
    assert.equal(statusOf(heads[2]!), 304);
    assert.equal(statusOf(heads[3]!), 200);
    assert.equal(heads[4], 'hello world');
    assert.equal(client.closed, false);
  } finally {
    client.close();
  }
});

test('pipelined requests are answered in order', async () => {
  a.handler = (req, res) => {
    const delay = req.url === '/slow' ? 80 : 0;
    setTimeout(() => res.end(req.url), delay);
  };
  const client = await RawClient.connect(port);
  try {
    client.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast1 HTTP/1.1\r\nHost: x\r\n\r\nGET /fast2 HTTP/1.1\r\nHost: x\r\n\r\n');
    const responses = await client.waitForResponses(3);
    assert.deepEqual(
      responses.map((r) => r.slice(r.indexOf('\r\n\r\n') + 4)),
      ['/slow', '/fast1', '/fast2'],
    );
  } finally {
    client.close();
  }
});

test('HTTP/1.0 clients: no chunked to them (de-chunked and closed), keep-alive when asked and possible', async () => {
  a.handler = (req, res) => {
    if (req.url === '/chunked') {
      res.write('part1-');
      res.end('part2');
    } else res.end('fixed');
  };
  const r1 = await rawRequest(port, 'GET /chunked HTTP/1.0\r\n\r\n');
  assert.equal(statusOf(r1.text), 200);
  assert.equal(headerOf(r1.text, 'transfer-encoding'), undefined);
  assert.equal(headerOf(r1.text, 'connection'), 'close');
  assert.ok(r1.text.endsWith('\r\n\r\npart1-part2'), JSON.stringify(r1.text));
  assert.equal(r1.closed, true);

  const client = await RawClient.connect(port);
  try {
    client.write('GET /fixed HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const [first] = await client.waitForResponses(1);
    assert.equal(headerOf(first!, 'connection'), 'keep-alive');
    client.write('GET /fixed HTTP/1.0\r\n\r\n');
    await client.waitClosed();
    assert.equal(statusOf(client.text.slice(first!.length)), 200);
  } finally {
    client.close();
  }
  // The upstream got HTTP/1.1 requests with a Host it can use.
  const last = a.received[a.received.length - 1]!;
  assert.equal(last.httpVersion, '1.1');
  assert.equal(last.headers.host, a.address);
});

test('request bodies stream to the upstream (content-length, larger than one read)', async () => {
  const seen = b.received.length;
  b.handler = (_req, res, rec) => res.end(String(rec.body.length));
  const big = Buffer.alloc(3 * 1024 * 1024, 'x');
  const r = await httpGet(port, '/exact', { method: 'PUT', body: big, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(r.status, 200);
  assert.equal(r.body, String(big.length));
  assert.equal(b.received[seen]!.body.length, big.length);
});

test('large response bodies stream to the client with backpressure', async () => {
  const size = 8 * 1024 * 1024;
  c.handler = (_req, res) => {
    res.writeHead(200, { 'content-length': String(size) });
    const chunk = Buffer.alloc(64 * 1024, 'y');
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  };
  const r = await httpGet(port, '/items/1');
  assert.equal(r.status, 200);
  assert.equal(r.body.length, size);
});

test('a head and body that arrive in pieces (one byte at a time for the head) are parsed once complete', async () => {
  a.handler = (_req, res, r) => res.end(`got:${r.body.toString()}`);
  const client = await RawClient.connect(port);
  try {
    const head = 'POST /pieces HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nX-Long: ' + 'v'.repeat(100) + '\r\n\r\n';
    for (const ch of head) {
      client.write(ch);
      await new Promise((r) => setImmediate(r));
    }
    client.write('01234');
    await sleep(20);
    client.write('56789GET /next HTTP/1.1\r\nHost: x\r\n\r\n');
    const responses = await client.waitForResponses(2);
    assert.ok(responses[0]!.endsWith('got:0123456789'), responses[0]);
    assert.equal(statusOf(responses[1]!), 200);
  } finally {
    client.close();
  }
});

/**
 * An upstream that answers as nginx does: `Connection: keep-alive` as its last field, each
 * response in one write (the head and body of `/split` in two, 20 ms apart).
 */
async function nginxLikeUpstream(): Promise<{ port: number; accepted: () => number; close: () => Promise<void> }> {
  let accepted = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let pending = '';
    socket.on('data', (d) => {
      pending += d.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
        const [method, path] = pending.slice(0, end).split(' ');
        pending = pending.slice(end + 4);
        const body = `{"path":"${path}"}`;
        const head = (status: string, fields: string) => `HTTP/1.1 ${status}\r\nServer: nginx\r\nDate: Fri, 27 Nov 2026 10:45:45 GMT\r\n${fields}Connection: keep-alive\r\n\r\n`;
        if (path === '/204') socket.write(head('204 No Content', ''));
        else if (path === '/split') {
          socket.write(head('200 OK', `Content-Length: ${body.length}\r\n`) + body.slice(0, 5));
          setTimeout(() => socket.write(body.slice(5)), 20);
        } else socket.write(head('200 OK', `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n`) + (method === 'HEAD' ? '' : body));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

test('responses that arrive whole, as nginx sends them, reach the client with x-tsmesh-attempts in place of the upstream\'s Connection field', async () => {
  const up = await nginxLikeUpstream();
  const px = await startTestProxy({
    listeners: [{ name: 'edge', routes: [{ name: 'all', match: { path: { prefix: '/' } }, cluster: 'nginx' }] }],
    clusters: [{ name: 'nginx', endpoints: [`127.0.0.1:${up.port}`] }],
  });
  const client = await RawClient.connect(px.port('edge'));
  try {
    const exchanges: Array<[string, (r: string) => void]> = [
      ['GET /a HTTP/1.1\r\nHost: x\r\n\r\n', (r) => assert.ok(r.endsWith('\r\n\r\n{"path":"/a"}'), r)],
      ['GET /204 HTTP/1.1\r\nHost: x\r\n\r\n', (r) => assert.equal(statusOf(r), 204)],
      ['GET /split HTTP/1.1\r\nHost: x\r\n\r\n', (r) => assert.ok(r.endsWith('\r\n\r\n{"path":"/split"}'), r)],
      ['GET /b HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n', (r) => assert.equal(headerOf(r, 'connection'), 'keep-alive', r)],
      ['GET /c HTTP/1.1\r\nHost: x\r\n\r\n', (r) => assert.ok(r.endsWith('{"path":"/c"}'), r)],
    ];
    let seen = 0;
    for (const [request, check] of exchanges) {
      client.write(request);
      const responses = await client.waitForResponses(seen + 1);
      const r = responses[seen++]!;
      assert.ok(r.startsWith('HTTP/1.1 '), r);
      assert.equal(headerOf(r, 'x-tsmesh-attempts'), '1', r);
      assert.equal(headerOf(r, 'server'), 'nginx', r);
      if (!request.includes('HTTP/1.0')) assert.equal(headerOf(r, 'connection'), undefined, r);
      check(r);
    }
    // HEAD: the head only, then the connection is still good for the next request.
    client.write('HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n');
    const afterHead = await client.waitFor((t) => t.split('\r\n\r\n').length > seen + 1);
    const headAnswer = afterHead.split('\r\n\r\n')[seen]!;
    assert.equal(headerOf(headAnswer + '\r\n\r\n', 'content-length'), String('{"path":"/h"}'.length));
    assert.equal(headerOf(headAnswer + '\r\n\r\n', 'x-tsmesh-attempts'), '1');
    client.write('GET /last HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.waitFor((t) => t.endsWith('{"path":"/last"}'));
    assert.equal(client.closed, false);
    assert.equal(up.accepted(), 1, 'one upstream connection served every request');
  } finally {
    client.close();
    await px.close();
    await up.close();
  }
});
