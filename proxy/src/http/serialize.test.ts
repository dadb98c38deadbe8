import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ParseError } from './head.js';
import { parseRequestHead, type RequestHead } from './request-head.js';
import { parseResponseHead } from './response-head.js';
import { buildResponseHead, buildUpstreamRequest, ForwardBlock, forwardBlockFits, rewriteResponseInPlace, type ForwardInfo } from './serialize.js';

const LIMITS = { maxHeaderBytes: 64 * 1024, maxHeaderFields: 100 };
const PREFIX = Buffer.from('0f1e2d3c-4b5a-6978-8796-', 'latin1');

function request(text: string): RequestHead {
  const r = parseRequestHead(Buffer.from(text, 'latin1'), 0, text.length, LIMITS);
  if (r instanceof ParseError) assert.fail(`${JSON.stringify(text)}: ${r.message}`);
  return r;
}

function info(block: ForwardBlock | undefined, withId: boolean): ForwardInfo {
  return { block, clientAddress: '10.1.2.3', requestIdPrefix: withId ? PREFIX : undefined, requestIdNumber: withId ? 4711 : 0, timeoutMs: 1999, endpointAuthority: '10.0.0.9:9001' };
}

test('the forwarded fields written from a connection block are the bytes written one by one', () => {
  const heads = [
    'GET / HTTP/1.1\r\nHost: 127.0.0.1:19080\r\n\r\n',
    'POST /query?q=1 HTTP/1.1\r\nHost: api.example\r\nContent-Length: 2\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n',
    'GET / HTTP/1.0\r\nHost: old.example\r\n\r\n',
    'GET http://abs.example:8080/p?x HTTP/1.1\r\nHost: ignored.example\r\nUser-Agent: t\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a.example\r\nX-Request-Id: from-client\r\n\r\n',
  ];
  for (const text of heads) {
    const head = request(text);
    assert.ok(forwardBlockFits(head), text);
    const block = new ForwardBlock('10.1.2.3', head.host, PREFIX);
    for (const withId of [false, true]) {
      const oneByOne = buildUpstreamRequest(head, info(undefined, withId)).toString('latin1');
      const fromBlock = buildUpstreamRequest(head, info(block, withId)).toString('latin1');
      assert.equal(fromBlock, oneByOne, `${JSON.stringify(text)} with id: ${withId}`);
      assert.match(oneByOne, new RegExp(`\r\nx-forwarded-for: 10\\.1\\.2\\.3\r\nx-forwarded-proto: http\r\nx-forwarded-host: ${head.host.replace(/\./g, '\\.')}\r\n`));
      if (withId) assert.match(oneByOne, /\r\nx-request-id: 0f1e2d3c-4b5a-6978-8796-4711\r\n/);
      assert.ok(oneByOne.endsWith('\r\nx-tsmesh-timeout-ms: 1999\r\n\r\n'));
    }
  }
});

test('requests that bring their own forwarded fields do not fit a block', () => {
  for (const text of [
    'GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Host: b\r\n\r\n',
    'GET / HTTP/1.0\r\n\r\n',
  ]) assert.equal(forwardBlockFits(request(text)), false, text);
  const head = request('GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\r\n\r\n');
  assert.match(buildUpstreamRequest(head, info(undefined, false)).toString('latin1'), /\r\nx-forwarded-for: 1\.1\.1\.1, 2\.2\.2\.2, 10\.1\.2\.3\r\n/);
});

test('a response head: the status line and the kept fields in one run, then the attempts and the Connection the proxy chose', () => {
  const text = 'HTTP/1.0 200 OK\r\nServer: s\r\nContent-Length: 2\r\nConnection: keep-alive\r\nETag: "x"\r\n\r\nhi';
  const head = parseResponseHead(Buffer.from(text, 'latin1'), 0, text.length, 64 * 1024, 100);
  if (head instanceof ParseError) assert.fail(head.message);
  const kept = 'Server: s\r\nContent-Length: 2\r\nETag: "x"\r\n';
  assert.equal(buildResponseHead(head, 1, undefined, 0).toString('latin1'), `HTTP/1.1 200 OK\r\n${kept}x-tsmesh-attempts: 1\r\n\r\n`);
  assert.equal(buildResponseHead(head, 3, 'close', 0).toString('latin1'), `HTTP/1.1 200 OK\r\n${kept}x-tsmesh-attempts: 3\r\nconnection: close\r\n\r\n`);
  assert.equal(buildResponseHead(head, 1, 'keep-alive', 2).subarray(0, -2).toString('latin1'), `HTTP/1.1 200 OK\r\n${kept}x-tsmesh-attempts: 1\r\nconnection: keep-alive\r\n\r\n`);
});

function responseOf(text: string) {
  const head = parseResponseHead(Buffer.from(text, 'latin1'), 0, text.length, 64 * 1024, 100);
  if (head instanceof ParseError) assert.fail(head.message);
  return head;
}

test('a response whose one dropped line has room is rewritten in place: that line becomes x-tsmesh-attempts', () => {
  const text = 'HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nhi';
  const head = responseOf(text);
  assert.equal(rewriteResponseInPlace(head, 1), true);
  // Same length as received: the spaces before the value make up for the longer name.
  assert.equal(head.buf.toString('latin1'), 'HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\nx-tsmesh-attempts:   1\r\n\r\nhi');
  // The head now describes the bytes sent.
  assert.equal(head.header('x-tsmesh-attempts'), '1');
  assert.equal(head.header('connection'), undefined);
  assert.equal(head.dropsAny, false);
  // An HTTP/1.0 answer goes out as HTTP/1.1; two digits.
  const old = responseOf('HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n');
  assert.equal(rewriteResponseInPlace(old, 12), true);
  assert.equal(old.buf.toString('latin1'), 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nx-tsmesh-attempts:  12\r\n\r\n');
  assert.equal(old.header('x-tsmesh-attempts'), '12');
  assert.equal(old.version, 11);
});

test('a response head without a dropped line that fits is left as it is, for buildResponseHead', () => {
  const cases = [
    'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', // nothing dropped (Go's net/http)
    'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', // too short
    'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n', // two dropped (Node's http)
    'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive, x-some-long-hop-by-hop\r\n\r\n', // more than 8 spaces of padding
    // Not the last line: a count of the hop behind (another proxy) must stay before this hop's.
    'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nx-tsmesh-attempts: 2\r\nContent-Length: 0\r\n\r\n',
  ];
  for (const text of cases) {
    const head = responseOf(text);
    assert.equal(rewriteResponseInPlace(head, 1), false, text);
    assert.equal(head.buf.toString('latin1'), text);
  }
});
