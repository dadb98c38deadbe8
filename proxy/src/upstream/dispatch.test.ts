// The bottom handler with a FakeClock and sockets that never connect: deadlines, connect
// timeouts, cancellation and breaker thresholds, and the bookkeeping they must leave exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { FakeClock } from '../clock.js';
import { cluster as clusterSchema, route as routeSchema } from '../config/schema.js';
import { parseRequestHead, type RequestHead } from '../http/request-head.js';
import type { ResponseHead } from '../http/response-head.js';
import type { LocalResponse } from '../policy/types.js';
import { HotStats } from '../telemetry/hot-stats.js';
import { ProxyMetrics } from '../telemetry/metrics.js';
import { ClusterState } from './cluster-state.js';
import type { EndpointState } from './endpoint.js';
import { ClusterDispatch, upstreamHandler, type Attempt, type AttemptOwner } from './dispatch.js';

class Owner implements AttemptOwner {
  readonly requestHead: RequestHead;
  attempt: Attempt | undefined;
  readonly route = routeSchema.parse({ name: 'r', cluster: 'c' });
  startTime: number;
  deadline: number;
  attemptDeadline: number;
  attempts = 0;
  readonly failedEndpoints: EndpointState[] = [];
  requestSent = false;
  aborted = false;
  cancel: (() => void) | undefined;
  reason = undefined;
  requestWritten = true;
  staleRetryAllowed = true;
  constructor(
    readonly cluster: ClusterState,
    readonly clock: FakeClock,
    timeoutMs: number,
  ) {
    const buf = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    this.requestHead = parseRequestHead(buf, 0, buf.length, { maxHeaderBytes: 1000, maxHeaderFields: 10 }) as RequestHead;
    this.startTime = clock.now();
    this.deadline = this.attemptDeadline = this.startTime + timeoutMs;
  }
  get request() {
    return { method: 'GET', target: '/', header: () => undefined, idempotent: true, bodyLength: 0, replayable: true };
  }
  upstreamHead(): Buffer {
    return Buffer.from('GET / HTTP/1.1\r\n\r\n');
  }
  sendRequest(a: Attempt, head: Buffer): boolean {
    a.conn!.write(head);
    return true;
  }
  onInterim(_h: ResponseHead): void {}
  onUpstreamWritable(): void {}
}

/** A socket that never connects (its connect never completes) unless told to fail. */
class SilentSocket extends EventEmitter {
  destroyed = false;
  readable = true;
  writable = true;
  write(): boolean {
    return true;
  }
  destroy(): this {
    this.destroyed = true;
    return this;
  }
  pause(): this {
    return this;
  }
  resume(): this {
    return this;
  }
}

function setup(clusterDoc: Record<string, unknown> = {}) {
  const clock = new FakeClock();
  const cluster = new ClusterState(clusterSchema.parse({ name: 'c', endpoints: ['127.0.0.1:9001'], connectTimeout: '1s', ...clusterDoc }));
  const metrics = new ProxyMetrics();
  const dispatch = ClusterDispatch.of(cluster, clock, metrics, new HotStats(metrics));
  const sockets: SilentSocket[] = [];
  dispatch.pools.connector = () => {
    const s = new SilentSocket();
    sockets.push(s);
    return s as unknown as Socket;
  };
  return { clock, cluster, dispatch, handler: upstreamHandler(dispatch), sockets };
}

test('the attempt deadline answers 504 upstream_timeout and leaves the counters exact', async () => {
  const { clock, cluster, handler } = setup({ connectTimeout: '10s' });
  const owner = new Owner(cluster, clock, 500);
  const p = handler(owner);
  assert.equal(cluster.pendingRequests, 1);
  assert.equal(cluster.connections, 1);
  assert.equal(cluster.endpoints[0]!.outstanding, 1);
  assert.equal(typeof owner.cancel, 'function', 'cancel is set while waiting');
  await clock.tick(500);
  const out = (await p) as LocalResponse;
  assert.equal(out.kind, 'local');
  assert.equal(out.reason, 'upstream_timeout');
  assert.equal(out.status, 504);
  assert.equal(out.endpoint, cluster.endpoints[0]);
  assert.deepEqual(owner.failedEndpoints, [cluster.endpoints[0]]);
  assert.equal(owner.attempts, 1);
  assert.equal(cluster.pendingRequests, 0);
  assert.equal(cluster.endpoints[0]!.outstanding, 0);
  assert.equal(owner.cancel, undefined);
});

test('a connect timeout answers 503 upstream_connect_failure', async () => {
  const { clock, cluster, handler } = setup({ connectTimeout: '100ms' });
  const owner = new Owner(cluster, clock, 5000);
  const p = handler(owner);
  await clock.tick(100);
  const out = (await p) as LocalResponse;
  assert.equal(out.reason, 'upstream_connect_failure');
  assert.equal(out.status, 503);
  assert.equal(cluster.connections, 0);
  assert.equal(cluster.pendingRequests, 0);
  assert.equal(clock.pendingTimers, 0, 'no timer left behind');
});

test('cancel (client gone) stops waiting at once: client_closed', async () => {
  const { clock, cluster, handler } = setup();
  const owner = new Owner(cluster, clock, 5000);
  const p = handler(owner);
  owner.cancel!();
  const out = (await p) as LocalResponse;
  assert.equal(out.reason, 'client_closed');
  assert.equal(cluster.pendingRequests, 0);
  assert.equal(cluster.endpoints[0]!.outstanding, 0);
  assert.equal(clock.pendingTimers, 1, 'only the connect timer of the connection still opening');
});

test('maxPending: past the queue limit the answer is 503 circuit_open, at once', async () => {
  const { clock, cluster, handler } = setup({ connectTimeout: '10s', pool: { maxConnectionsPerEndpoint: 1 }, circuitBreaker: { maxPending: 1 } });
  const first = handler(new Owner(cluster, clock, 5000));
  const second = new Owner(cluster, clock, 5000);
  const out = (await handler(second)) as LocalResponse;
  assert.equal(out.reason, 'circuit_open');
  assert.equal(out.status, 503);
  assert.equal(cluster.pendingRequests, 1);
  await clock.tick(5000);
  assert.equal(((await first) as LocalResponse).reason, 'upstream_timeout');
  assert.equal(cluster.pendingRequests, 0);
});

test('a deadline already past answers at once without a connection', async () => {
  const { clock, cluster, handler, sockets } = setup();
  const owner = new Owner(cluster, clock, 0);
  const out = (await handler(owner)) as LocalResponse;
  assert.equal(out.reason, 'upstream_timeout');
  assert.equal(sockets.length, 0);
});

test('no endpoints at all: 503 circuit_open', async () => {
  const { clock, cluster, handler } = setup();
  cluster.endpoints = [];
  const out = (await handler(new Owner(cluster, clock, 1000))) as LocalResponse;
  assert.equal(out.reason, 'circuit_open');
});
