// Large bodies through a real proxy when the other side reads slowly: the proxy's socket writes
// then stop completing at once, it must pause the sender and resume it when they complete, lose
// no byte, and leave the keep-alive connection ready for its next request.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import type { ProxyRuntime } from '../proxy/src/runtime.js';
import { sleep, startTestProxy } from './support/proxy.js';

const SIZE = 16 * 1024 * 1024;

/** SIZE bytes that differ along the body, so a lost or reordered chunk changes the hash. */
function patterned(): Buffer {
  const b = Buffer.allocUnsafe(SIZE);
  for (let i = 0; i < SIZE; i += 4) b.writeUInt32LE(i >>> 2, i);
  return b;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let upstream: Server;
let proxy: ProxyRuntime;
let port: number;
const body = patterned();
const bodyHash = sha(body);

before(async () => {
  upstream = createServer((req, res) => {
    if (req.url === '/download') {
      res.writeHead(200, { 'content-length': String(SIZE) });
      res.end(body);
      return;
    }
    // /upload: read nothing for a while (the proxy's writes to us back up), then hash it all.
    req.pause();
    const hash = createHash('sha256');
    let n = 0;
    setTimeout(() => {
      req.on('data', (c: Buffer) => {
        hash.update(c);
        n += c.length;
      });
      req.on('end', () => res.end(`${n} ${hash.digest('hex')}`));
      req.resume();
    }, 300);
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const address = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  proxy = await startTestProxy({
    listeners: [{ name: 'edge', maxBodyBytes: 64 * 1024 * 1024, routes: [{ name: 'all', match: { path: { prefix: '/' } }, cluster: 'up', timeout: '30s' }] }],
    clusters: [{ name: 'up', endpoints: [address] }],
  });
  port = proxy.port('edge');
});

after(async () => {
  await proxy?.close();
  upstream?.closeAllConnections();
  await new Promise((r) => upstream?.close(r));
});

/** One keep-alive connection that reads responses framed by Content-Length. */
class Client {
  private chunks: Buffer[] = [];
  private length = 0;
  private wake: (() => void) | undefined;
  constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.length += d.length;
      this.wake?.();
    });
  }
  static async open(): Promise<Client> {
    const s = connect(port, '127.0.0.1');
    await once(s, 'connect');
    return new Client(s);
  }
  private async atLeast(n: number): Promise<Buffer> {
    while (this.length < n) await new Promise<void>((r) => (this.wake = r));
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [all];
    return all;
  }
  async response(): Promise<{ status: number; body: Buffer }> {
    let buf = await this.atLeast(1);
    let end = buf.indexOf('\r\n\r\n');
    while (end < 0) {
      buf = await this.atLeast(buf.length + 1);
      end = buf.indexOf('\r\n\r\n');
    }
    const head = buf.subarray(0, end).toString('latin1');
    const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    buf = await this.atLeast(end + 4 + length);
    const body = Buffer.from(buf.subarray(end + 4, end + 4 + length));
    const rest = buf.subarray(end + 4 + length);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
    return { status: Number(head.slice(9, 12)), body };
  }
}

test('a client that stops reading a large download gets every byte in order when it reads again, then its next request', async () => {
  const client = await Client.open();
  client.socket.write('GET /download HTTP/1.1\r\nHost: x\r\n\r\n');
  await once(client.socket, 'data');
  client.socket.pause();
  await sleep(300); // the proxy's writes to us back up; it must pause the upstream, not buffer 16 MiB
  client.socket.resume();
  const r = await client.response();
  assert.equal(r.status, 200);
  assert.equal(r.body.length, SIZE);
  assert.equal(sha(r.body), bodyHash);
  client.socket.write('GET /download HTTP/1.1\r\nHost: x\r\n\r\n');
  const again = await client.response();
  assert.equal(again.status, 200);
  assert.equal(sha(again.body), bodyHash);
  client.socket.destroy();
});

test('a large upload to an upstream that reads late arrives whole, and the connection serves its next request', async () => {
  const client = await Client.open();
  client.socket.write(`PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${SIZE}\r\n\r\n`);
  client.socket.write(body);
  const r = await client.response();
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), `${SIZE} ${bodyHash}`);
  client.socket.write('PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello');
  const again = await client.response();
  assert.equal(again.status, 200);
  assert.equal(again.body.toString(), `5 ${sha(Buffer.from('hello'))}`);
  client.socket.destroy();
});
