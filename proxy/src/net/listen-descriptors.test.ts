import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { once } from 'node:events';
import { duplicateListenHandles } from './listen-descriptors.js';
import { holdPort } from './ports.js';

function answer(name: string): Server {
  return createServer((s) => s.end(name));
}

async function ask(port: number): Promise<string> {
  const c = connect(port, '127.0.0.1');
  let got = '';
  c.on('data', (d) => (got += String(d)));
  await once(c, 'end');
  return got;
}

test('duplicated descriptors of a listening socket accept its connections; once all are closed the port is free', { skip: process.platform !== 'linux' }, async () => {
  const main = answer('main');
  main.listen(0, '127.0.0.1');
  await once(main, 'listening');
  const port = (main.address() as AddressInfo).port;
  const handles = await duplicateListenHandles(main, 3);
  assert.equal(handles.length, 3);
  const extra = handles.map((h, i) => {
    const s = answer(`dup${i}`);
    s.listen(h);
    return s;
  });
  await Promise.all(extra.map((s) => (s.listening ? Promise.resolve() : once(s, 'listening'))));
  const fds = [main, ...extra].map((s) => (s as unknown as { _handle: { fd: number } })._handle.fd);
  assert.equal(new Set(fds).size, 4, 'four distinct descriptors');

  // The main server closes: the same socket still accepts, through the other descriptors.
  await new Promise<void>((r) => main.close(() => r()));
  const answers = await Promise.all(Array.from({ length: 10 }, () => ask(port)));
  for (const a of answers) assert.match(a, /^dup\d$/);

  await Promise.all(extra.map((s) => new Promise<void>((r) => s.close(() => r()))));
  const again = await holdPort('127.0.0.1', port);
  await again.release();
});

test('a server that is not listening has no descriptors to duplicate', async () => {
  await assert.rejects(duplicateListenHandles(createServer(), 2), /not listening/);
});
