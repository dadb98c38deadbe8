import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyOfRead, READ_BUFFER } from './read-buffer.js';

test('a read is copied out of the shared buffer at its exact size, and later reads do not change it', () => {
  const first = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n', 'latin1');
  first.copy(READ_BUFFER);
  const copy = copyOfRead(first.length, READ_BUFFER);
  READ_BUFFER.fill(0x78, 0, 64);
  assert.equal(copy.length, first.length);
  assert.deepEqual(copy, first);
});

test('a read into another buffer (a stream fallback, a bench) is copied the same way', () => {
  const other = Buffer.from('HTTP/1.1 204 No Content\r\n\r\n', 'latin1');
  const copy = copyOfRead(other.length - 2, other);
  other.fill(0);
  assert.equal(copy.toString('latin1'), 'HTTP/1.1 204 No Content\r\n');
});
