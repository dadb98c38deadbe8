// npm run bench:hotpath — the request path's own JavaScript cost, without sockets or a kernel:
// a client "socket" feeds request bytes, a fake upstream answers every request synchronously
// with a fixed response, and the loop measures nanoseconds per proxied request. It isolates
// what the proxy's code costs from what the machine's TCP stack and scheduler cost, so that
// hot-path changes can be judged on a busy machine. Prints; never asserts.
//
// Usage: node dist/bench/hotpath.js [requests] [connections] [--no-policies]
// By default the policy chain runs as in the proxy (with a default config: breaker + outlier);
// --no-policies measures the bare request path.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { proxyConfig } from '../proxy/src/config/schema.js';
import { ProxyRuntime } from '../proxy/src/runtime.js';
import { ClientConnection } from '../proxy/src/connection.js';
import { ClusterDispatch } from '../proxy/src/upstream/dispatch.js';
import type { Listener } from '../proxy/src/listener.js';
import { copyOfRead, READ_BUFFER } from '../proxy/src/net/read-buffer.js';

class FakeSocket extends EventEmitter {
  remoteAddress = '127.0.0.1';
  destroyed = false;
  readable = true;
  writable = true;
  writableLength = 0;
  writableHighWaterMark = 16384;
  written = 0;
  onWrite: ((buf: Buffer) => void) | undefined;
  setNoDelay(): this {
    return this;
  }
  pause(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  end(): this {
    return this;
  }
  destroy(): this {
    this.destroyed = true;
    return this;
  }
  write(buf: Buffer): boolean {
    this.written += buf.length;
    this.onWrite?.(buf);
    return true;
  }
}

const BODY = '{"status":"ok","rows":[{"id":1,"title":"test document","score":0.75}]}';
const RESPONSE = Buffer.from(
  `HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 10:45:45 GMT\r\nContent-Type: application/json\r\nContent-Length: ${BODY.length}\r\nConnection: keep-alive\r\n\r\n${BODY}`,
);
const REQUEST = Buffer.from('GET /query HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n');

async function main(): Promise<void> {
  const config = proxyConfig.parse({
    admin: { address: '127.0.0.1:0' },
    listeners: [{ name: 'edge', address: '127.0.0.1:0', routes: [{ name: 'all', match: { path: { prefix: '/' } }, cluster: 'up' }] }],
    clusters: [{ name: 'up', endpoints: ['127.0.0.1:9'] }],
  });
  const withPolicies = !process.argv.includes('--no-policies');
  const rt = new ProxyRuntime({ admin: false, policies: withPolicies ? undefined : [] });
  const res = await rt.apply(config, { version: '1', source: 'file' });
  if (!res.ok) throw new Error(res.errors.join('\n'));
  const listener = (rt as unknown as { listeners: Map<string, Listener> }).listeners.values().next().value as Listener;
  const cluster = [...(rt as unknown as { clusters: { all(): IterableIterator<import('../proxy/src/upstream/cluster-state.js').ClusterState> } }).clusters.all()][0]!;
  const dispatch = ClusterDispatch.of(cluster, rt.clock, rt.metrics, rt.stats);
  dispatch.pools.connector = (_host, _port, onRead) => {
    const s = new FakeSocket();
    // As a real socket does: the bytes land in the shared read buffer and the callback copies them out.
    s.onWrite = () => (C > 1 ? setImmediate : queueMicrotask)(() => onRead(RESPONSE.copy(READ_BUFFER), READ_BUFFER));
    setImmediate(() => s.emit('connect'));
    return s as unknown as Socket;
  };
  // Keep-alive clients: each sends its next request when its previous response arrived.
  // `--connections N` spreads the load over N connections (more live state, as under load).
  const positional = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const C = Number(positional[1] ?? 1);
  let left = 0;
  let finished: (() => void) | undefined;
  const clients: FakeSocket[] = [];
  for (let c = 0; c < C; c++) {
    const client = new FakeSocket();
    const conn = new ClientConnection(client as unknown as Socket, listener);
    listener.connections.add(conn);
    // The real client side reads into the shared buffer and hands on a copy (connection.ts onRead).
    const send = () => client.emit('data', copyOfRead(REQUEST.copy(READ_BUFFER), READ_BUFFER));
    client.onWrite = () => {
      if (--left > 0) {
        if (left >= C) queueMicrotask(send);
      } else finished?.();
    };
    clients.push(client);
  }
  const run = (n: number) =>
    new Promise<void>((resolve) => {
      left = n;
      finished = resolve;
      for (const c of clients) c.emit('data', copyOfRead(REQUEST.copy(READ_BUFFER), READ_BUFFER));
    });
  await run(Math.max(10, C)); // the first requests open the upstream connections
  await run(50_000);
  const N = Number(positional[0] ?? 300_000);
  for (let round = 0; round < 3; round++) {
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    await run(N);
    const ns = Number(process.hrtime.bigint() - t0) / N;
    const cpu = process.cpuUsage(c0);
    console.log(`${ns.toFixed(0)} ns/request (user+sys ${(((cpu.user + cpu.system) / N) * 1000).toFixed(0)} ns/request, ${C} connections${withPolicies ? ', policy chain' : ', no policies'})`);
  }
  await rt.close();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
