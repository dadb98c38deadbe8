import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, Socket, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { rewrapWithOnRead } from './accepted-socket.js';

test('an accepted socket re-wrapped with onread: every byte reaches the callback, it writes, pauses and resumes, knows its peer, and server.close() completes when it closes', async () => {
  const readBuffer = Buffer.alloc(1024);
  const received: Buffer[] = [];
  let wrapped: Socket | undefined;
  let onBytes = (): void => {};
  const server = createServer({ pauseOnConnect: true }, (accepted) => {
    wrapped = rewrapWithOnRead(accepted, server, readBuffer, (n, buf) => {
      assert.equal(buf, readBuffer);
      received.push(Buffer.from(buf.subarray(0, n)));
      onBytes();
      return true;
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
  const total = () => received.reduce((n, b) => n + b.length, 0);
  const until = (n: number) => new Promise<void>((resolve) => (onBytes = () => total() >= n && resolve()));

  // Larger than the read buffer: several reads, all bytes in order.
  const payload = Buffer.alloc(100_000, 0);
  for (let i = 0; i < payload.length; i++) payload[i] = i % 251;
  const got = until(payload.length);
  client.write(payload);
  await got;
  assert.ok(wrapped, 'this Node version lets the accepted handle be re-wrapped (the fast path is in use)');
  assert.deepEqual(Buffer.concat(received), payload);
  assert.equal(wrapped.remoteAddress, '127.0.0.1');
  assert.equal(wrapped.remotePort, client.localPort);

  // Paused: nothing is read until resumed.
  wrapped.pause();
  received.length = 0;
  client.write('after pause');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(total(), 0);
  const resumed = until(11);
  wrapped.resume();
  await resumed;
  assert.equal(Buffer.concat(received).toString(), 'after pause');

  // Writes reach the client.
  const echoed = once(client, 'data');
  wrapped.write('pong');
  assert.equal(String((await echoed)[0]), 'pong');

  // The server counts the connection until the re-wrapped socket closes.
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const wrappedClosed = once(wrapped, 'close');
  client.end();
  await wrappedClosed;
  await closed;
});

test('a socket with no stream handle is left to the stream path', () => {
  const server = createServer();
  assert.equal(rewrapWithOnRead(new Socket(), server, Buffer.alloc(16), () => true), undefined);
});
