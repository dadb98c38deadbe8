import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { freePort, portOpen } from './ports.js';

test('freePort gives a port that can be bound at once; portOpen sees it open, then closed', async () => {
  const port = await freePort();
  assert.ok(port > 0 && port < 65536);
  assert.equal(await portOpen(port), false);
  const server = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  try {
    assert.equal(await portOpen(port), true);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  assert.equal(await portOpen(port), false);
});
