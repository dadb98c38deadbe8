import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findHeadEnd, ParseError } from './head.js';
import { parseResponseHead, ResponseHead } from './response-head.js';
import { buildResponseHead } from './serialize.js';

function parse(text: string): ResponseHead | ParseError {
  const buf = Buffer.from(text, 'latin1');
  const end = findHeadEnd(buf, 0, 0, buf.length);
  assert.ok(end > 0, 'complete head');
  return parseResponseHead(buf, 0, end, 64 * 1024, 200);
}

function ok(text: string): ResponseHead {
  const r = parse(text);
  if (r instanceof ParseError) assert.fail(`${JSON.stringify(text)}: ${r.message}`);
  return r;
}

test('status, framing, keep-alive hint', () => {
  const h = ok('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nhello');
  assert.equal(h.status, 200);
  assert.equal(h.contentLength, 5);
  assert.equal(h.keepAliveTimeoutMs, 5000);
  assert.equal(h.close, false);
  assert.deepEqual([0, 1, 2].map((i) => h.isDropped(i)), [false, true, true]);
  assert.equal(ok('HTTP/1.1 204\r\n\r\n').status, 204);
  assert.equal(ok('HTTP/1.1 404 \r\n\r\n').status, 404);
  assert.equal(ok('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n').chunked, true);
  assert.equal(ok('HTTP/1.0 200 OK\r\n\r\n').close, true);
  assert.equal(ok('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n').close, false);
  assert.equal(ok('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n').close, true);
  assert.equal(ok('HTTP/1.1 100 Continue\r\n\r\n').status, 100);
});

test('ambiguous or malformed responses are refused with 502', () => {
  for (const text of [
    'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n',
    'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
    'HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n',
    'HTTP/1.1 200 OK\r\nX : a\r\n\r\n',
    'HTTP/1.1 2000 OK\r\n\r\n',
    'HTTP/1.1 099 OK\r\n\r\n',
    'HTTP/1.1 600 OK\r\n\r\n',
    'HTTP/2 200 OK\r\n\r\n',
    'HTTP/1.1 200 O\x00K\r\n\r\n',
    'HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n',
  ]) {
    const r = parse(text);
    assert.ok(r instanceof ParseError, JSON.stringify(text));
    assert.equal(r.status, 502);
  }
});

test('hop-by-hop fields are dropped wherever they are in a long head (bit marks below field 31, a list beyond)', () => {
  const filler = Array.from({ length: 40 }, (_, i) => `X-F${i}: ${i}\r\n`);
  // Hop-by-hop fields at 0, 31 and 39, and the field Connection names at 30: both kinds of mark and both edges.
  filler[0] = 'Connection: keep-alive, X-F30\r\n';
  filler[31] = 'Keep-Alive: timeout=5\r\n';
  filler[39] = 'Proxy-Connection: close\r\n';
  const h = ok(`HTTP/1.1 200 OK\r\n${filler.join('')}Content-Length: 0\r\n\r\n`);
  const dropped = h.entries().flatMap((_, i) => (h.isDropped(i) ? [i] : []));
  assert.deepEqual(dropped, [0, 30, 31, 39]);
  assert.equal(h.dropsAny, true);
  const out = buildResponseHead(h, 1, undefined, 0).toString('latin1');
  for (const gone of ['Connection:', 'X-F30:', 'Keep-Alive:', 'Proxy-Connection:']) assert.ok(!out.includes(gone), gone);
  for (const kept of ['X-F1: 1\r\n', 'X-F29: 29\r\n', 'X-F32: 32\r\n', 'X-F38: 38\r\n', 'Content-Length: 0\r\n']) assert.ok(out.includes(kept), kept);
  assert.equal(ok('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n').dropsAny, false);
});
