// Property tests of the request parser: random valid requests, randomly mutated, never make
// it throw, and whatever it accepts has exactly one reading of its framing, checked against a
// naive reference reading of the same bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { findHeadEnd, INCOMPLETE, ParseError } from './head.js';
import { parseRequestHead, RequestHead } from './request-head.js';

const LIMITS = { maxHeaderBytes: 8 * 1024, maxHeaderFields: 64 };

const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/);
const value = fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,20}[\x21-\x7e])?$/);
const field = fc.oneof(
  fc.tuple(token, value),
  fc.tuple(fc.constantFrom('Content-Length', 'content-length', 'CONTENT-LENGTH'), fc.constantFrom('0', '5', '12', '007')),
  fc.tuple(fc.constantFrom('Transfer-Encoding', 'transfer-encoding'), fc.constantFrom('chunked', 'Chunked', 'gzip')),
  fc.tuple(fc.constantFrom('Connection'), fc.constantFrom('close', 'keep-alive', 'x-foo', 'close, x-foo')),
  fc.tuple(fc.constantFrom('Host', 'host'), fc.constantFrom('a.example', 'b:8080', '[::1]')),
);

const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'PATCH'),
  path: fc.stringMatching(/^\/[a-z0-9/?=&%._-]{0,30}$/),
  version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0'),
  host: fc.option(fc.constantFrom('a.example', 'localhost:8080'), { nil: undefined }),
  fields: fc.array(field, { maxLength: 8 }),
});

const INSERTS = ['\r', '\n', '\r\n', ' ', '\t', '\x00', ':', ',', '0', 'x', '\x7f', '\xff', ' chunked', '\r\n ', 'Content-Length: 1\r\n', 'Transfer-Encoding: chunked\r\n', 'Host: z\r\n'];

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.constantFrom(...INSERTS) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), text: fc.constant('') }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), text: fc.constantFrom(...INSERTS.filter((s) => s.length === 1)) }),
);

type Req = { method: string; path: string; version: string; host: string | undefined; fields: Array<[string, string]> };

function render(r: Req): string {
  let text = `${r.method} ${r.path} ${r.version}\r\n`;
  if (r.host !== undefined) text += `Host: ${r.host}\r\n`;
  for (const [n, v] of r.fields) text += `${n}: ${v}\r\n`;
  return text + '\r\n';
}

function mutate(text: string, ms: Array<{ kind: 'insert' | 'delete' | 'replace'; at: number; text: string }>): string {
  for (const m of ms) {
    const at = text.length === 0 ? 0 : m.at % text.length;
    if (m.kind === 'insert') text = text.slice(0, at) + m.text + text.slice(at);
    else if (m.kind === 'delete') text = text.slice(0, at) + text.slice(at + 1);
    else text = text.slice(0, at) + m.text + text.slice(at + 1);
  }
  return text;
}

/** A naive, independent reading of an accepted head; asserts it agrees with the parser and is unambiguous. */
function checkAccepted(text: string, end: number, h: RequestHead): void {
  const headText = text.slice(0, end);
  assert.ok(headText.endsWith('\r\n\r\n'));
  const lines = headText.slice(0, -4).split('\r\n');
  for (const line of lines) {
    assert.ok(!/[\r\n]/.test(line), `bare CR/LF accepted in ${JSON.stringify(line)}`);
    assert.ok(!/[\x00-\x08\x0a-\x1f\x7f]/.test(line), `control accepted in ${JSON.stringify(line)}`);
  }
  const [requestLine, ...fieldLines] = lines;
  assert.match(requestLine!, /^[A-Za-z0-9!#$%&'*+.^_`|~-]+ [\x21-\x7e]+ HTTP\/1\.[01]$/);
  let cl: string[] = [];
  let te: string[] = [];
  let hosts = 0;
  for (const line of fieldLines) {
    assert.ok(!/^[ \t]/.test(line), `obs-fold accepted: ${JSON.stringify(line)}`);
    const colon = line.indexOf(':');
    assert.ok(colon > 0, `field without name accepted: ${JSON.stringify(line)}`);
    const name = line.slice(0, colon);
    assert.match(name, /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/);
    const v = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    const lower = name.toLowerCase();
    if (lower === 'content-length') cl.push(v);
    if (lower === 'transfer-encoding') te.push(v);
    if (lower === 'host') hosts++;
  }
  assert.ok(cl.length <= 1, 'more than one Content-Length accepted');
  assert.ok(te.length <= 1, 'more than one Transfer-Encoding accepted');
  assert.ok(!(cl.length > 0 && te.length > 0), 'both Content-Length and Transfer-Encoding accepted');
  if (te.length === 1) {
    assert.equal(te[0]!.toLowerCase(), 'chunked');
    assert.equal(h.chunked, true);
    assert.equal(h.version, 11);
  } else assert.equal(h.chunked, false);
  if (cl.length === 1) {
    assert.match(cl[0]!, /^\d+$/);
    assert.equal(h.contentLength, Number(cl[0]));
  } else assert.equal(h.contentLength, -1);
  assert.ok(hosts <= 1);
  if (h.version === 11) assert.equal(hosts, 1);
}

function tryParse(text: string): void {
  const buf = Buffer.from(text, 'latin1');
  const end = findHeadEnd(buf, 0, 0, buf.length);
  if (end < 0) return;
  let r: RequestHead | ParseError;
  try {
    r = parseRequestHead(buf, 0, end, LIMITS);
  } catch (err) {
    assert.fail(`parser threw on ${JSON.stringify(text)}: ${String(err)}`);
  }
  if (r instanceof RequestHead) checkAccepted(text, end, r);
  else assert.ok([400, 431].includes(r.status));
  // Parsing straight from the received bytes (no head end known) gives the same verdict.
  const direct = parseRequestHead(buf, 0, buf.length, LIMITS);
  if (r instanceof RequestHead) {
    assert.ok(direct instanceof RequestHead, `direct parse refused what the bounded parse accepted: ${JSON.stringify(text)}`);
    assert.equal(direct.end, end);
  } else assert.equal(direct, r);
}

test('valid generated requests parse and agree with the reference reading', () => {
  fc.assert(
    fc.property(request, (r) => {
      const text = render(r);
      tryParse(text);
    }),
    { numRuns: 2000 },
  );
});

test('mutated requests never crash the parser and never parse ambiguously', () => {
  fc.assert(
    fc.property(request, fc.array(mutation, { minLength: 1, maxLength: 4 }), (r, ms) => {
      tryParse(mutate(render(r), ms));
    }),
    { numRuns: 20_000 },
  );
});

test('random bytes never crash the parser', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      tryParse('GET / HTTP/1.1\r\n' + Buffer.from(bytes).toString('latin1') + '\r\n\r\n');
      tryParse(Buffer.from(bytes).toString('latin1') + '\r\n\r\n');
    }),
    { numRuns: 5000 },
  );
});

test('every strict prefix of a valid head is INCOMPLETE, never an error', () => {
  fc.assert(
    fc.property(request, (r) => {
      const text = render(r);
      const buf = Buffer.from(text, 'latin1');
      const full = parseRequestHead(buf, 0, buf.length, LIMITS);
      if (!(full instanceof RequestHead)) return;
      for (let cut = 0; cut < buf.length; cut++) assert.equal(parseRequestHead(buf, 0, cut, LIMITS), INCOMPLETE, `prefix ${cut} of ${JSON.stringify(text)}`);
    }),
    { numRuns: 300 },
  );
});
