import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findHeadEnd, ParseError } from './head.js';
import { parseRequestHead, RequestHead } from './request-head.js';

const LIMITS = { maxHeaderBytes: 32 * 1024, maxHeaderFields: 100 };

export function parse(text: string, limits = LIMITS): RequestHead | ParseError {
  const buf = Buffer.from(text, 'latin1');
  const end = findHeadEnd(buf, 0, 0, buf.length);
  if (end < 0) return new ParseError(0, 'incomplete');
  return parseRequestHead(buf, 0, end, limits);
}

function ok(text: string): RequestHead {
  const r = parse(text);
  if (r instanceof ParseError) assert.fail(`expected ${JSON.stringify(text)} to parse, got ${r.status} ${r.message}`);
  return r;
}

function rejected(text: string, status = 400): ParseError {
  const r = parse(text);
  assert.ok(r instanceof ParseError, `expected ${JSON.stringify(text)} to be rejected`);
  assert.equal(r.status, status, `${JSON.stringify(text)}: ${r.message}`);
  return r;
}

test('a simple GET: method, target, path, host, fields by offset', () => {
  const h = ok('GET /a/b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nX-Empty:\r\nX-Pad:  v  \r\n\r\n');
  assert.equal(h.method, 'GET');
  assert.equal(h.target, '/a/b?x=1');
  assert.equal(h.path, '/a/b');
  assert.equal(h.version, 11);
  assert.equal(h.host, 'example.com:8080');
  assert.equal(h.contentLength, -1);
  assert.equal(h.chunked, false);
  assert.equal(h.close, false);
  assert.equal(h.header('accept'), '*/*');
  assert.equal(h.header('x-empty'), '');
  assert.equal(h.header('x-pad'), 'v');
  assert.equal(h.header('missing'), undefined);
  assert.deepEqual(h.entries(), [['Host', 'example.com:8080'], ['Accept', '*/*'], ['X-Empty', ''], ['X-Pad', 'v']]);
  assert.equal(h.idempotent, true);
});

test('repeated fields keep their order', () => {
  const h = ok('GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nX: 1\r\ncookie: b=2\r\n\r\n');
  assert.deepEqual(h.headers('cookie'), ['a=1', 'b=2']);
});

test('framing: Content-Length and chunked', () => {
  assert.equal(ok('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n').contentLength, 12);
  assert.equal(ok('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n').hasBody, false);
  const c = ok('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n');
  assert.equal(c.chunked, true);
  assert.equal(c.hasBody, true);
  assert.equal(c.idempotent, false);
  assert.equal(ok('POST / HTTP/1.1\r\nHost: a\r\nIdempotency-Key: k1\r\n\r\n').idempotent, true);
});

test('HTTP/1.0: no Host needed, close unless keep-alive, request line rewritten', () => {
  const h = ok('GET /x HTTP/1.0\r\n\r\n');
  assert.equal(h.version, 10);
  assert.equal(h.close, true);
  assert.equal(h.rewriteStartLine, true);
  assert.equal(ok('GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n').close, false);
  assert.equal(ok('GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n').close, true);
});

test('hop-by-hop fields and the fields named by Connection are dropped', () => {
  const h = ok(
    'GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\nX-Secret: s\r\nTE: trailers\r\nUpgrade: h2c\r\n' +
      'Proxy-Authorization: x\r\nProxy-Connection: keep-alive\r\nTrailer: x\r\nX-Keep: 1\r\n\r\n',
  );
  const kept = h.entries().filter((_, i) => !h.isDropped(i)).map(([n]) => n);
  assert.deepEqual(kept, ['Host', 'X-Keep']);
});

test('Connection cannot remove framing fields', () => {
  const h = ok('POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length, host\r\nContent-Length: 3\r\n\r\n');
  const kept = h.entries().filter((_, i) => !h.isDropped(i)).map(([n]) => n);
  assert.deepEqual(kept, ['Host', 'Content-Length']);
});

test('absolute-form target: origin-form upstream, authority replaces Host', () => {
  const h = ok('GET http://Example.com:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n');
  assert.equal(h.originTarget, '/p?q');
  assert.equal(h.path, '/p');
  assert.equal(h.host, 'Example.com:81');
  assert.equal(h.absoluteForm, true);
  assert.equal(h.isDropped(0), true);
  assert.equal(ok('GET http://a.b HTTP/1.1\r\nHost: a.b\r\n\r\n').originTarget, '/');
});

test('deadline headers: the smallest of x-tsmesh-timeout-ms and grpc-timeout', () => {
  assert.equal(ok('GET / HTTP/1.1\r\nHost: a\r\nx-tsmesh-timeout-ms: 1500\r\n\r\n').timeoutMs, 1500);
  assert.equal(ok('GET / HTTP/1.1\r\nHost: a\r\nx-tsmesh-timeout-ms: 1500\r\ngrpc-timeout: 1S\r\n\r\n').timeoutMs, 1000);
  assert.equal(ok('GET / HTTP/1.1\r\nHost: a\r\ngrpc-timeout: 250m\r\n\r\n').timeoutMs, 250);
  assert.equal(ok('GET / HTTP/1.1\r\nHost: a\r\ngrpc-timeout: 10u\r\n\r\n').timeoutMs, 1);
  assert.equal(ok('GET / HTTP/1.1\r\nHost: a\r\nx-tsmesh-timeout-ms: soon\r\n\r\n').timeoutMs, -1);
});

test('limits: head size and field count answer 431', () => {
  ok(`GET / HTTP/1.1\r\nHost: a\r\nX: ${'a'.repeat(200)}\r\n\r\n`); // fits the default limit
  const r = parse(`GET / HTTP/1.1\r\nHost: a\r\nX: ${'a'.repeat(200)}\r\n\r\n`, { maxHeaderBytes: 100, maxHeaderFields: 100 });
  assert.ok(r instanceof ParseError && r.status === 431);
  const many = 'GET / HTTP/1.1\r\nHost: a\r\n' + 'X: 1\r\n'.repeat(10) + '\r\n';
  const r2 = parse(many, { maxHeaderBytes: 10_000, maxHeaderFields: 5 });
  assert.ok(r2 instanceof ParseError && r2.status === 431);
});

/** Known request-smuggling and malformed-message vectors; every one must be refused. */
export const SMUGGLING_CORPUS: string[] = [
  // CL.TE / TE.CL
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n',
  // differing or repeated lengths, malformed lengths
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nContent-Length: 5\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nContent-Length: 6\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6, 5\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6,6\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +6\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x6\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6 6\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1e3\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n',
  // transfer codings other than a single chunked
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "chunked"\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\n\r\n',
  'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n',
  // whitespace and folding tricks
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n\tContent-Length: 5\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length\r\n : 5\r\n\r\n',
  // bare CR / LF, NUL and controls
  'POST / HTTP/1.1\r\nHost: a\r\nX: y\nContent-Length: 5\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nX: y\rContent-Length: 5\r\n\r\n',
  'POST / HTTP/1.1\nHost: a\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX: a\x1bb\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX\x00: a\r\n\r\n',
  // invalid field names
  'GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX@y: 1\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX\xe9: 1\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n',
  // Host
  'GET / HTTP/1.1\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a b\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: user@a\r\n\r\n',
  'GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n',
  // request line
  'GET  / HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET /  HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET / HTTP/1.1 \r\nHost: a\r\n\r\n',
  ' GET / HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET / HTTP/1.2\r\nHost: a\r\n\r\n',
  'GET / HTTP/2.0\r\nHost: a\r\n\r\n',
  'GET / http/1.1\r\nHost: a\r\n\r\n',
  'GET / HTTP/1.10\r\nHost: a\r\n\r\n',
  'GET /\r\nHost: a\r\n\r\n',
  'GET / a HTTP/1.1\r\nHost: a\r\n\r\n',
  'G(T / HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET * HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET a/b HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET http:// HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET http://u@h/ HTTP/1.1\r\nHost: a\r\n\r\n',
  'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n',
  // Connection with garbage
  'GET / HTTP/1.1\r\nHost: a\r\nConnection: close;x\r\n\r\n',
];

test('every known smuggling vector is refused', () => {
  for (const text of SMUGGLING_CORPUS) rejected(text);
});

test('OPTIONS * is accepted; absolute-form and odd-but-valid bytes are too', () => {
  assert.equal(ok('OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n').target, '*');
  ok('GET / HTTP/1.1\r\nHost: a\r\nX: caf\xe9\r\n\r\n'); // obs-text in a value
  ok('GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n');
  ok("GET / HTTP/1.1\r\nHost: a\r\nX-!#$%&'*+.^_`|~: 1\r\n\r\n");
  ok('GET / HTTP/1.1\r\nHost:\r\n\r\n'); // empty Host is allowed (RFC 9110 7.2)
  ok('PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n');
});

test('the Host and target of the previous request are reused when the bytes are the same; others are checked and made as usual', () => {
  const previous = { host: '', target: '', path: '' };
  const parseWith = (text: string) => parseRequestHead(Buffer.from(text, 'latin1'), 0, text.length, LIMITS, previous);
  const first = parseWith('GET /q?a=1 HTTP/1.1\r\nHost: api.example:8080\r\n\r\n');
  assert.ok(first instanceof RequestHead);
  assert.deepEqual(previous, { host: 'api.example:8080', target: '/q?a=1', path: '/q' });
  const same = parseWith('GET /q?a=1 HTTP/1.1\r\nHost: api.example:8080\r\n\r\n');
  assert.ok(same instanceof RequestHead);
  assert.deepEqual([same.host, same.target, same.originTarget, same.path], ['api.example:8080', '/q?a=1', '/q?a=1', '/q']);
  const other = parseWith('GET /q?a=2 HTTP/1.1\r\nHost: API.example:8080\r\n\r\n');
  assert.ok(other instanceof RequestHead);
  assert.deepEqual([other.host, other.target, other.path], ['API.example:8080', '/q?a=2', '/q']);
  assert.deepEqual(previous, { host: 'API.example:8080', target: '/q?a=2', path: '/q' });
  const bad = parseWith('GET /q?a=2 HTTP/1.1\r\nHost: api.example:80 80\r\n\r\n');
  assert.ok(bad instanceof ParseError && bad.message === 'invalid Host header');
  const absolute = parseWith('GET http://other.example/x HTTP/1.1\r\nHost: API.example:8080\r\n\r\n');
  assert.ok(absolute instanceof RequestHead);
  assert.deepEqual([absolute.host, absolute.originTarget, absolute.path], ['other.example', '/x', '/x']);
  assert.deepEqual(previous, { host: 'API.example:8080', target: '/q?a=2', path: '/q' }, 'an absolute-form authority is not a Host to reuse');
});
