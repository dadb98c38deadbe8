import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyBytes } from './chars.js';

test('copyBytes copies every range exactly, short (a loop) and long (a view), between views with offsets', () => {
  const backing = Buffer.alloc(3000);
  for (let i = 0; i < backing.length; i++) backing[i] = (i * 7) % 256;
  // Views that do not start at their ArrayBuffer's start, as pooled Buffers do.
  const src = backing.subarray(17, 2017);
  for (const n of [0, 1, 7, 32, 33, 64, 110, 1000]) {
    for (const from of [0, 3, 500]) {
      const dst = Buffer.alloc(1200, 0xee).subarray(5);
      const end = copyBytes(src, from, from + n, dst, 9);
      assert.equal(end, 9 + n);
      assert.deepEqual(dst.subarray(9, 9 + n), src.subarray(from, from + n), `n=${n} from=${from}`);
      assert.equal(dst[8], 0xee, 'nothing before the offset is written');
      assert.equal(dst[9 + n], 0xee, 'nothing after the range is written');
    }
  }
});
