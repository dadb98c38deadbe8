import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { SocketWriter } from './socket-writer.js';

/** A server on port 0 whose accepted socket is handed to the test, and a client connected to it. */
async function pair(options: { pauseOnConnect?: boolean } = {}): Promise<{ server: Server; client: Socket; peer: Socket }> {
  const server = createServer(options);
  const accepted = once(server, 'connection');
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
  const [peer] = (await accepted) as [Socket];
  return { server, client, peer };
}

function collect(socket: Socket): { bytes: () => Buffer; ended: Promise<void> } {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const ended = once(socket, 'end').then(() => undefined);
  return { bytes: () => Buffer.concat(chunks), ended };
}

test('direct writes are in use on this Node and keep their order with stream writes (corked, ended)', async () => {
  const { server, client, peer } = await pair();
  const got = collect(peer);
  let drained = 0;
  const writer = new SocketWriter(client, () => drained++);
  assert.equal(writer.direct, true, 'this Node lets writes go to the handle (the fast path is in use)');

  assert.equal(writer.write(Buffer.from('one ')), true);
  client.cork();
  assert.equal(writer.direct, false, 'a corked stream holds bytes that must go first');
  writer.write(Buffer.from('two '));
  client.write('three ');
  client.uncork();
  writer.write(Buffer.from('four'));
  writer.end();
  assert.equal(writer.direct, false, 'an ended stream takes no direct write');
  await got.ended;
  assert.equal(got.bytes().toString(), 'one two three four');
  assert.equal(drained, 0);
  peer.destroy();
  server.close();
});

test('a write the kernel cannot take at once: false, the rest goes out in order, onDrained runs once, end() waits for it', async () => {
  const { server, client, peer } = await pair();
  peer.pause();
  let drained = 0;
  let onDrained = (): void => {};
  const writer = new SocketWriter(client, () => {
    drained++;
    onDrained();
  });
  const sent = createHash('sha256');
  let bytes = 0;
  // Fill the socket buffers until a write is left to libuv.
  for (let i = 0; writer.pendingWrites === 0 && i < 1000; i++) {
    const chunk = Buffer.alloc(256 * 1024, i % 256);
    sent.update(chunk);
    bytes += chunk.length;
    writer.write(chunk);
    writer.flush();
  }
  assert.equal(writer.pendingWrites, 1, 'a paused peer fills the buffers');
  // Each chunk was over the high-water mark, so each flush that sent it whole said so.
  const drainedBefore = drained;
  // Later writes queue behind it, still in order.
  const tail = Buffer.from('the end');
  sent.update(tail);
  bytes += tail.length;
  assert.equal(writer.write(tail), false);
  const allDrained = new Promise<void>((resolve) => (onDrained = resolve));
  writer.end();

  const received = createHash('sha256');
  let receivedBytes = 0;
  peer.on('data', (c: Buffer) => {
    received.update(c);
    receivedBytes += c.length;
  });
  const ended = once(peer, 'end');
  peer.resume();
  await allDrained;
  await ended;
  assert.equal(receivedBytes, bytes);
  assert.equal(received.digest('hex'), sent.digest('hex'));
  assert.equal(drained, drainedBefore + 1, 'onDrained once, when libuv finished');
  peer.destroy();
  server.close();
});

test('a write to a connection the peer reset destroys the socket with the error, and throws nothing', async () => {
  // The accepted socket is not reading (paused on connect), so only the write can find the reset.
  const { server, client, peer } = await pair({ pauseOnConnect: true });
  const errors: Array<string | undefined> = [];
  peer.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code));
  const closed = new Promise<void>((resolve) => peer.once('close', () => resolve()));
  const writer = new SocketWriter(peer, () => {});
  assert.equal(writer.direct, true);
  client.resetAndDestroy();
  await new Promise((r) => setTimeout(r, 50));
  let writes = 0;
  for (; writes < 5 && !peer.destroyed; writes++) {
    writer.write(Buffer.from('after reset'));
    writer.flush();
  }
  await closed;
  assert.equal(writes, 1, 'the first write found the reset');
  assert.equal(errors.length, 1);
  assert.match(errors[0] ?? '', /^(EPIPE|ECONNRESET)$/);
  server.close();
});

test('a socket that is not connected yet, or has no handle, is written through the stream', async () => {
  const unconnected = new Socket();
  assert.equal(new SocketWriter(unconnected, () => {}).direct, false);
  const server = createServer((s) => s.pipe(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const writer = new SocketWriter(client, () => {});
  assert.equal(writer.direct, false, 'still connecting');
  writer.write(Buffer.from('early'));
  const [echo] = (await once(client, 'data')) as [Buffer];
  assert.equal(echo.toString(), 'early');
  client.destroy();
  server.close();
});

test('writes of one turn are held and sent together at its end, in order; past the high-water mark write() asks to wait and onDrained follows the flush', async () => {
  const { server, client, peer } = await pair();
  const got = collect(peer);
  let drained = 0;
  const writer = new SocketWriter(client, () => drained++);
  assert.equal(writer.write(Buffer.from('a')), true);
  assert.equal(writer.write(Buffer.from('b')), true);
  assert.equal(writer.heldLength, 2, 'held until the end of the turn');
  await new Promise((r) => setImmediate(r));
  assert.equal(writer.heldLength, 0);
  // 64 KiB held in one turn: the caller is asked to wait, and told when it can go on.
  const big = Buffer.alloc(70 * 1024, 0x63);
  assert.equal(writer.write(big), false);
  assert.equal(drained, 0);
  await new Promise((r) => setImmediate(r));
  assert.equal(drained, 1);
  writer.write(Buffer.from('d'));
  writer.end();
  await got.ended;
  assert.equal(got.bytes().toString(), 'ab' + big.toString() + 'd');
  peer.destroy();
  server.close();
});

test('a discarded writer sends nothing of what it held', async () => {
  const { server, client, peer } = await pair();
  const got = collect(peer);
  const writer = new SocketWriter(client, () => {});
  writer.write(Buffer.from('never sent'));
  writer.discard();
  await new Promise((r) => setImmediate(r));
  client.end();
  await got.ended;
  assert.equal(got.bytes().length, 0);
  peer.destroy();
  server.close();
});

test('a client that half-closes still gets the bytes held for it in the turn its FIN was read', async () => {
  // Two connections to one server: `client` talks to `accepted`; `feeder` makes `source`
  // readable in the same poll as the client's FIN, and its data handler writes the answer.
  const server = createServer();
  const sockets: Socket[] = [];
  server.on('connection', (s) => sockets.push(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const client = connect(port, '127.0.0.1');
  await once(client, 'connect');
  while (sockets.length < 1) await new Promise((r) => setTimeout(r, 5));
  const feeder = connect(port, '127.0.0.1');
  await once(feeder, 'connect');
  while (sockets.length < 2) await new Promise((r) => setTimeout(r, 5));
  const [accepted, source] = sockets as [Socket, Socket];
  accepted.on('error', () => {});
  accepted.resume();
  const writer = new SocketWriter(accepted, () => {});
  source.on('data', () => writer.write(Buffer.from('RESPONSE')));
  const got = collect(client);
  // Both sockets reading (registered with the poller) before anything arrives, so that the
  // poll reports them in the order the bytes came: the answer, then the FIN.
  await new Promise((r) => setTimeout(r, 20));
  feeder.write('answer ready');
  client.end();
  // Both the data and the FIN are pending before the loop polls again.
  const until = Date.now() + 30;
  while (Date.now() < until);
  await got.ended;
  assert.equal(got.bytes().toString(), 'RESPONSE');
  feeder.destroy();
  server.close();
});
