import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ChunkedScanner } from './chunked.js';

function scanAll(text: string, pieces: number[] = [], maxBody?: number) {
  const buf = Buffer.from(text, 'latin1');
  const s = new ChunkedScanner(maxBody);
  const data: Buffer[] = [];
  let at = 0;
  const cuts = [...pieces.filter((p) => p > 0 && p < buf.length).sort((a, b) => a - b), buf.length];
  for (const cut of cuts) {
    const chunk = buf.subarray(at, cut);
    const r = s.scan(chunk, 0, chunk.length, (b, x, y) => data.push(Buffer.from(b.subarray(x, y))));
    if (r === -2) return { error: s.error!, data: Buffer.concat(data) };
    if (r >= 0) return { end: at + r, data: Buffer.concat(data) };
    at = cut;
  }
  return { incomplete: true, data: Buffer.concat(data) };
}

test('finds the end of a chunked body and decodes it', () => {
  const body = '5\r\nhello\r\n6;ext=1;q="a b"\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT';
  const r = scanAll(body);
  assert.equal(r.end, body.length - 4);
  assert.equal(r.data.toString(), 'hello world');
  assert.equal(scanAll('0\r\n\r\n').end, 5);
  assert.equal(scanAll('A\r\n0123456789\r\n0\r\n\r\n').data.toString(), '0123456789');
  assert.equal(scanAll('5 ;e\r\nhello\r\n0\r\n\r\n').end, 18);
  assert.ok(scanAll('5\r\nhel').incomplete);
});

test('malformed chunked framing is refused', () => {
  for (const bad of [
    '-5\r\nhello\r\n0\r\n\r\n',
    '+5\r\nhello\r\n0\r\n\r\n',
    '0x5\r\nhello\r\n0\r\n\r\n',
    ' 5\r\nhello\r\n0\r\n\r\n',
    '5 \r\nhello\r\n0\r\n\r\n',
    '5\nhello\r\n0\r\n\r\n',
    '5\r\nhelloX\r\n0\r\n\r\n',
    '5\r\nhello\n0\r\n\r\n',
    '5\r\nhello\r\n0\r\nbad trailer\r\n\r\n',
    '5\r\nhello\r\n0\r\nX: 1\r\n folded\r\n\r\n',
    '5\r\nhello\r\n0\r\n\n',
    'fffffffffffffff\r\n',
    `5;${'x'.repeat(2000)}\r\nhello\r\n0\r\n\r\n`,
    '5;a\x00b\r\nhello\r\n0\r\n\r\n',
    '\r\n',
  ]) {
    const r = scanAll(bad);
    assert.ok(r.error, `${JSON.stringify(bad)} should fail`);
  }
});

test('a decoded body over the limit fails with 413', () => {
  const r = scanAll('5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n', [], 8);
  assert.equal(r.error?.status, 413);
});

test('property: any split of a valid chunked body gives the same end and data', () => {
  const chunkArb = fc.record({
    data: fc.uint8Array({ minLength: 1, maxLength: 40 }),
    ext: fc.constantFrom('', ';a', ';a=b', ';a="q"', ' ;x=1'),
    upper: fc.boolean(),
  });
  fc.assert(
    fc.property(fc.array(chunkArb, { maxLength: 6 }), fc.boolean(), fc.array(fc.nat(400), { maxLength: 8 }), (chunks, trailer, cuts) => {
      let text = '';
      const expected: number[] = [];
      for (const c of chunks) {
        const size = c.data.length.toString(16);
        text += `${c.upper ? size.toUpperCase() : size}${c.ext}\r\n${Buffer.from(c.data).toString('latin1')}\r\n`;
        expected.push(...c.data);
      }
      text += '0\r\n' + (trailer ? 'X-T: v\r\n' : '') + '\r\n';
      const r = scanAll(text + 'GET', cuts);
      assert.equal(r.end, text.length);
      assert.deepEqual([...r.data], expected);
    }),
    { numRuns: 300 },
  );
});
