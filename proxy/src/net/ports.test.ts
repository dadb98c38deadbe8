import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer } from 'node:net';
import { once } from 'node:events';
import { freePort, freePorts, holdPort, portOpen } from './ports.js';

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

test('holdPort keeps each port bound until released, so ports picked one after another all differ', async () => {
  const held = [];
  for (let i = 0; i < 20; i++) held.push(await holdPort('127.0.0.1', 0));
  try {
    assert.equal(new Set(held.map((h) => h.port)).size, held.length);
    await assert.rejects(holdPort('127.0.0.1', held[0]!.port), (err: NodeJS.ErrnoException) => err.code === 'EADDRINUSE');
  } finally {
    await Promise.all(held.map((h) => h.release()));
  }
  // Released: the port can be bound again (releasing twice is harmless).
  const again = await holdPort('127.0.0.1', held[0]!.port);
  await again.release();
  await again.release();
});

test('freePorts gives distinct ports, all free again on return', async () => {
  const ports = await freePorts(20);
  assert.equal(new Set(ports).size, 20);
  for (const port of ports) assert.equal(await portOpen(port), false);
  const again = await holdPort('127.0.0.1', ports[0]!);
  await again.release();
});

test('a held port closes the connections made to it, and release() does not wait on them', async () => {
  const held = await holdPort('127.0.0.1', 0);
  const client = connect(held.port, '127.0.0.1');
  client.on('error', () => {});
  await once(client, 'close');
  await held.release();
});
