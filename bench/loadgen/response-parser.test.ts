import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ResponseParser, type ParsedResponse } from './response-parser.js';

function parseAll(parts: Array<string | Buffer>, opts: { noBody?: boolean } = {}): { got: ParsedResponse[]; parser: ResponseParser } {
  const got: ParsedResponse[] = [];
  const parser = new ResponseParser((r) => got.push({ ...r }));
  parser.noBody = opts.noBody ?? false;
  for (const p of parts) parser.feed(Buffer.isBuffer(p) ? p : Buffer.from(p, 'latin1'));
  return { got, parser };
}

/** Every way of cutting `text` in two, and byte by byte: the parse must not depend on packets. */
function splits(text: string): Array<string[]> {
  const out: Array<string[]> = [[text], text.split('')];
  for (let i = 1; i < text.length; i++) out.push([text.slice(0, i), text.slice(i)]);
  return out;
}

describe('ResponseParser', () => {
  it('reads a Content-Length response however it is split', () => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}';
    for (const parts of splits(text)) {
      const { got, parser } = parseAll(parts);
      assert.deepEqual(got, [{ status: 200, reason: undefined, close: false, bodyBytes: 11 }], JSON.stringify(parts.slice(0, 2)));
      assert.equal(parser.inResponse, false);
    }
  });

  it('reads a chunked response with extensions and trailers however it is split', () => {
    const text = 'HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nX-Tsmesh-Reason: overloaded\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n';
    for (const parts of splits(text)) {
      const { got } = parseAll(parts);
      assert.deepEqual(got, [{ status: 503, reason: 'overloaded', close: false, bodyBytes: 11 }]);
    }
  });

  it('reads back-to-back responses in one packet', () => {
    const one = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
    const { got } = parseAll([one + one + 'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n']);
    assert.deepEqual(got.map((r) => r.status), [200, 200, 404]);
  });

  it('honours Connection: close and HTTP/1.0', () => {
    assert.equal(parseAll(['HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n']).got[0]!.close, true);
    assert.equal(parseAll(['HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n']).got[0]!.close, true);
    assert.equal(parseAll(['HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n']).got[0]!.close, false);
  });

  it('skips 1xx responses', () => {
    const { got } = parseAll(['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n']);
    assert.deepEqual(got.map((r) => r.status), [201]);
  });

  it('has no body for HEAD, 204 and 304', () => {
    assert.equal(parseAll(['HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n'], { noBody: true }).got.length, 1);
    assert.equal(parseAll(['HTTP/1.1 204 No Content\r\n\r\n']).got.length, 1);
    assert.equal(parseAll(['HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n']).got.length, 1);
  });

  it('ends a body without length at the close of the connection', () => {
    const { got, parser } = parseAll(['HTTP/1.1 200 OK\r\n\r\nsome', ' bytes']);
    assert.equal(got.length, 0);
    assert.equal(parser.end(), true);
    assert.deepEqual(got, [{ status: 200, reason: undefined, close: true, bodyBytes: 10 }]);
  });

  it('reports a response cut short by the close', () => {
    const { got, parser } = parseAll(['HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc']);
    assert.equal(got.length, 0);
    assert.equal(parser.end(), false);
    assert.equal(parseAll(['HTTP/1.1 20']).parser.end(), false);
    assert.equal(parseAll([]).parser.end(), true);
  });

  it('throws on what is not an HTTP response', () => {
    assert.throws(() => parseAll(['SSH-2.0-OpenSSH\r\n\r\n']), /not an HTTP/);
    assert.throws(() => parseAll(['HTTP/1.1 abc OK\r\n\r\n']), /bad status/);
    assert.throws(() => parseAll(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n']), /bad chunk size/);
  });
});
