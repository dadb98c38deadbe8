// The bottom of every handler chain: one upstream attempt. Balancer → pool → write the request
// → the response head, resolved as an UpstreamResponse whose body the core then streams (or
// the policies discard). One timer per attempt covers its deadline (504 upstream_timeout);
// failures come back as LocalResponse values with the endpoint set, never as exceptions.
//
// A request that fails on a reused keep-alive connection before any response byte arrived is
// sent again on a fresh connection, within the same attempt, when Go's net/http Transport would
// do so: nothing of it was written, or it is replayable (GET/HEAD/OPTIONS/TRACE or an
// Idempotency-Key, with its body still held in memory).
import type { Clock, TimerHandle } from '../clock.js';
import { localResponse, type Handler, type LocalResponse, type Outcome, type RequestContext, type UpstreamResponse } from '../policy/types.js';
import type { Reason } from '../reasons.js';
import { REASON_STATUS } from '../reasons.js';
import type { ResponseHead } from '../http/response-head.js';
import type { RequestHead } from '../http/request-head.js';
import type { HotStats } from '../telemetry/hot-stats.js';
import type { AttemptSpan, RequestSpan } from '../telemetry/tracing.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';
import type { ClusterState } from './cluster-state.js';
import type { EndpointState } from './endpoint.js';
import type { UpstreamConnection, ResponseReader } from './connection.js';
import { ClusterPools, type EndpointPool, type PoolWait, type PoolWaiter } from './pool.js';
import { balancerFor, type Balancer } from './balancer/index.js';
import { recordPenalty, recordRtt } from './balancer/peak-ewma.js';

/** What an attempt needs of the request it serves (the core's Exchange implements it). */
export interface AttemptOwner extends RequestContext {
  readonly requestHead: RequestHead;
  /** The attempt now reading (or about to read) the request body; the owner writes body bytes to it. */
  attempt: Attempt | undefined;
  /** The complete upstream request head for an attempt with `timeoutMs` left, with the attempt's trace fields. */
  upstreamHead(timeoutMs: number, endpoint: EndpointState, traceFields?: readonly string[]): Buffer;
  /** The request's server span when tracing is on; each attempt is a client span under it. */
  readonly span?: RequestSpan | undefined;
  /** Writes the head and the body held so far to the attempt's connection; false if the body can no longer be replayed. */
  sendRequest(attempt: Attempt, head: Buffer): boolean;
  /** Whether all of the request (head and body) was written to the current attempt. */
  readonly requestWritten: boolean;
  /** Go's Transport rule for resending on a fresh connection after a reused one failed. */
  readonly staleRetryAllowed: boolean;
  /** A 1xx response (e.g. 100 Continue) to relay to the client. */
  onInterim(head: ResponseHead): void;
  /** The upstream socket can take more request body. */
  onUpstreamWritable(): void;
}

/** Where a response body goes once the core takes the response (the Exchange). */
export interface ResponseSink {
  /** The head and whatever body arrived so far; `complete` when that is the whole response. */
  responseHead(attempt: Attempt, head: ResponseHead, body: Buffer[] | undefined, complete: boolean): void;
  /** More body; false asks the attempt to stop reading until `resume()`. */
  responseBody(chunk: Buffer): boolean;
  /** The response is complete; `now`, when given, is when it completed (a clock reading spared). */
  responseEnd(now?: number): void;
  /** The upstream failed (or the deadline passed) after the head. */
  responseFailed(reason: Reason, detail: string): void;
}

const enum Phase {
  Waiting,
  Sent,
  Head,
  Done,
}

/** Per-cluster services the attempts of that cluster share. */
export class ClusterDispatch {
  readonly pools: ClusterPools;
  /** The cluster's balancer, looked up once per config snapshot (not per request). */
  balancer: Balancer;
  private readonly attemptDuration: { observe(v: number): void };
  private readonly staleRetries: { inc(): void };

  constructor(
    readonly cluster: ClusterState,
    readonly clock: Clock,
    readonly metrics: ProxyMetrics,
    readonly stats: HotStats,
  ) {
    this.pools = new ClusterPools(cluster, clock, metrics);
    this.balancer = balancerFor(cluster);
    this.attemptDuration = stats.histogram(metrics.upstreamAttemptDuration, { cluster: cluster.name });
    this.staleRetries = metrics.upstreamStaleConnectionRetries.labels(cluster.name);
  }

  /** The dispatch state of a cluster, kept in its ClusterState across snapshots. */
  static of(cluster: ClusterState, clock: Clock, metrics: ProxyMetrics, stats: HotStats): ClusterDispatch {
    return cluster.stateOf('dispatch', () => new ClusterDispatch(cluster, clock, metrics, stats));
  }

  recordAttempt(ep: EndpointState, code: number | string, latencyMs: number): void {
    let s = ep.attemptStats;
    if (s === undefined) s = ep.attemptStats = this.stats.endpoint(this.cluster.name, ep.address);
    s.record(code);
    if (latencyMs >= 0) this.attemptDuration.observe(latencyMs / 1000);
  }

  staleRetry(): void {
    this.staleRetries.inc();
  }

  /** After a config swap: forget pools of removed endpoints (their stats go with their EndpointState). */
  sync(): void {
    this.balancer = balancerFor(this.cluster);
    this.pools.sync();
  }
}

/** The bottom handler of a (route, cluster) chain. The ctx must be the core's Exchange, passed down unchanged by policies. */
export function upstreamHandler(dispatch: ClusterDispatch): Handler {
  return (ctx: RequestContext) => {
    const owner = ctx as AttemptOwner;
    const cluster = dispatch.cluster;
    const now = dispatch.clock.now();
    owner.attempts++;
    const ep = dispatch.balancer.pick(cluster.endpoints, owner.failedEndpoints, now);
    if (!ep) return Promise.resolve(localResponse('circuit_open', 503, { detail: `cluster ${cluster.name} has no endpoints` }));
    // After an ejection this attempt may be the endpoint's single probe: close the gate for others.
    ep.picked();
    const attempt = new Attempt(owner, ep, dispatch.pools.get(ep), dispatch);
    attempt.start(now);
    return attempt.promise;
  };
}

export class Attempt implements UpstreamResponse, PoolWaiter, ResponseReader {
  readonly kind = 'upstream' as const;
  status = 0;
  latencyMs = 0;
  poolWait: PoolWait | undefined;
  conn: UpstreamConnection | undefined;
  head: ResponseHead | undefined;
  readonly promise: Promise<Outcome>;
  /** Request body bytes written to this attempt's connection. */
  bodySent = 0;

  private phase = Phase.Waiting;
  private resolve!: (o: Outcome) => void;
  private timer: TimerHandle | undefined;
  private timerAt = 0;
  private startedAt = 0;
  private headAt = 0;
  /** When the response completed, if it did before the core attached (then: with its head). */
  private endAt: number | undefined = undefined;
  private queued: Buffer[] | undefined;
  private complete = false;
  private sink: ResponseSink | undefined;
  private failure: { reason: Reason; detail: string } | undefined;
  private reused = false;
  private staleRetried = false;
  private endpointReleased = false;
  private synchronous = false;
  private span: AttemptSpan | undefined;

  constructor(
    readonly owner: AttemptOwner,
    readonly endpoint: EndpointState,
    private pool: EndpointPool,
    private readonly dispatch: ClusterDispatch,
  ) {
    this.promise = new Promise<Outcome>((r) => (this.resolve = r));
  }

  get isHeadRequest(): boolean {
    return this.owner.requestHead.method === 'HEAD';
  }

  get requestDone(): boolean {
    return this.owner.requestWritten;
  }

  start(now: number): void {
    const owner = this.owner;
    this.startedAt = now;
    this.endpoint.outstanding++;
    owner.attempt = this;
    if (owner.span !== undefined) this.span = owner.span.startAttempt(owner.attempts, this.endpoint.address);
    const at = Math.min(owner.attemptDeadline, owner.deadline);
    if (at - now <= 0) {
      this.fail('upstream_timeout', 'the deadline passed before the attempt started');
      return;
    }
    this.timerAt = at;
    this.timer = this.dispatch.clock.setTimer(this.onTimer, at - now, now);
    owner.cancel = this.cancel;
    this.synchronous = true;
    this.pool.acquire(this);
    this.synchronous = false;
  }

  // --- pool ---

  onConnection(conn: UpstreamConnection): void {
    if (this.phase !== Phase.Waiting) {
      conn.pool.release(conn);
      return;
    }
    const owner = this.owner;
    this.conn = conn;
    this.reused = conn.served > 0;
    conn.begin(this);
    // A connection lent at once (the usual case) needs no second clock read.
    const now = this.phase === Phase.Waiting && this.synchronous ? this.startedAt : this.dispatch.clock.now();
    const left = Math.max(1, Math.ceil(Math.min(owner.attemptDeadline, owner.deadline) - now));
    this.bodySent = 0;
    if (!owner.sendRequest(this, owner.upstreamHead(left, this.endpoint, this.span?.headers))) {
      conn.abandon();
      this.conn = undefined;
      this.fail('upstream_reset', 'the request body can no longer be replayed');
      return;
    }
    owner.requestSent = true;
    this.phase = Phase.Sent;
  }

  onPoolFailure(kind: 'connect' | 'pending' | 'connections', detail: string): void {
    if (this.phase !== Phase.Waiting) return;
    if (kind === 'connect') this.fail('upstream_connect_failure', detail);
    else this.fail('circuit_open', detail);
  }

  // --- response ---

  onInterim(head: ResponseHead): void {
    if (this.phase === Phase.Sent) this.owner.onInterim(head);
  }

  onHead(head: ResponseHead, _hasBody: boolean): void {
    if (this.phase !== Phase.Sent) return;
    const now = this.dispatch.clock.now();
    this.dispatch.pools.recentNow = now;
    this.phase = Phase.Head;
    this.head = head;
    this.status = head.status;
    this.headAt = now;
    this.latencyMs = now - this.startedAt;
    const owner = this.owner;
    owner.cancel = undefined;
    if (head.status === 503 || head.status === 429) recordPenalty(this.endpoint, now);
    else recordRtt(this.endpoint, this.latencyMs, now);
    this.dispatch.recordAttempt(this.endpoint, head.status, this.latencyMs);
    this.span?.end(head.status, 'none');
    // The route timeout still covers the body; a per-try deadline does not.
    if (this.timerAt < owner.deadline && this.timer) {
      this.timer.cancel();
      this.timerAt = owner.deadline;
      this.timer = this.dispatch.clock.setTimer(this.onTimer, Math.max(0, owner.deadline - now), now);
    }
    this.resolve(this);
  }

  onBody(chunk: Buffer): void {
    if (this.phase !== Phase.Head) return;
    const sink = this.sink;
    if (sink) {
      if (!sink.responseBody(chunk)) this.conn?.socket.pause();
    } else if (this.queued) this.queued.push(chunk);
    else this.queued = [chunk];
  }

  onEnd(): void {
    if (this.phase !== Phase.Head) return;
    this.complete = true;
    this.conn = undefined; // back in the pool already
    this.stopTimer();
    this.releaseEndpoint();
    if (this.sink) {
      this.phase = Phase.Done;
      this.sink.responseEnd();
    } else {
      // Not attached yet: the core attaches in the microtasks of the read that brought the
      // head, so a response complete before that completed with its head.
      this.endAt = this.headAt;
    }
  }

  onLost(beforeResponse: boolean, reason: string): void {
    this.conn = undefined;
    if (this.phase === Phase.Sent) {
      if (beforeResponse && this.reused && !this.staleRetried && this.owner.staleRetryAllowed) {
        // The upstream closed a keep-alive connection as we reused it: try once on a fresh one.
        this.staleRetried = true;
        this.dispatch.staleRetry();
        this.phase = Phase.Waiting;
        this.pool.acquire(this, true);
        return;
      }
      this.fail('upstream_reset', reason);
      return;
    }
    if (this.phase === Phase.Head && !this.complete) {
      this.failure = { reason: 'upstream_reset', detail: reason };
      this.stopTimer();
      this.releaseEndpoint();
      if (this.sink) {
        this.phase = Phase.Done;
        this.sink.responseFailed('upstream_reset', reason);
      }
    }
  }

  onWritable(): void {
    if (this.phase === Phase.Sent || this.phase === Phase.Head) this.owner.onUpstreamWritable();
  }

  /** Resumes reading the response after the sink's backpressure cleared. */
  resume(): void {
    this.conn?.socket.resume();
  }

  // --- UpstreamResponse ---

  header(name: string): string | undefined {
    return this.head?.header(name);
  }

  discard(): void {
    if (this.phase === Phase.Done) return;
    if (this.phase === Phase.Head && !this.complete) this.conn?.abandon();
    this.conn = undefined;
    this.phase = Phase.Done;
    this.queued = undefined;
    this.stopTimer();
    this.releaseEndpoint();
    if (this.owner.attempt === this) this.owner.attempt = undefined;
  }

  /** The core takes the response: relays what arrived so far, then streams the rest. */
  attach(sink: ResponseSink): void {
    this.sink = sink;
    const queued = this.queued;
    this.queued = undefined;
    if (this.failure && !this.complete) {
      this.phase = Phase.Done;
      sink.responseFailed(this.failure.reason, this.failure.detail);
      return;
    }
    sink.responseHead(this, this.head!, queued, this.complete);
    if (this.complete && this.phase !== Phase.Done) {
      this.phase = Phase.Done;
      sink.responseEnd(this.endAt);
    }
  }

  /** Whether the response failed before the core took it (then it answers 502 itself). */
  get failedBeforeAttach(): boolean {
    return this.failure !== undefined && !this.complete;
  }

  // --- timers and cancellation ---

  private readonly onTimer = (): void => {
    this.timer = undefined;
    const detail = 'the request deadline passed';
    switch (this.phase) {
      case Phase.Waiting:
        this.pool.cancel(this);
        this.fail('upstream_timeout', detail);
        break;
      case Phase.Sent:
        this.conn?.abandon();
        this.conn = undefined;
        this.fail('upstream_timeout', detail);
        break;
      case Phase.Head:
        if (this.complete) break;
        this.conn?.abandon();
        this.conn = undefined;
        this.failure = { reason: 'upstream_timeout', detail };
        this.releaseEndpoint();
        if (this.sink) {
          this.phase = Phase.Done;
          this.sink.responseFailed('upstream_timeout', detail);
        }
        break;
    }
  };

  /** The client went away: stop at once, closing the upstream request if one is in flight. */
  readonly cancel = (): void => {
    const phase = this.phase;
    if (phase === Phase.Done) return;
    if (phase === Phase.Waiting) this.pool.cancel(this);
    if (phase !== Phase.Head || !this.complete) this.conn?.abandon();
    this.conn = undefined;
    if (phase === Phase.Head) {
      this.phase = Phase.Done;
      this.stopTimer();
      this.releaseEndpoint();
      return;
    }
    this.settle(localResponse('client_closed', REASON_STATUS.client_closed, { endpoint: this.endpoint, detail: 'the client closed the connection' }), 'client_closed');
  };

  private fail(reason: Reason, detail: string): void {
    this.owner.failedEndpoints.push(this.endpoint);
    this.settle(localResponse(reason, REASON_STATUS[reason], { endpoint: this.endpoint, detail }), reason);
  }

  private settle(outcome: LocalResponse, code: string): void {
    this.phase = Phase.Done;
    this.stopTimer();
    if (this.owner.cancel === this.cancel) this.owner.cancel = undefined;
    if (this.owner.attempt === this) this.owner.attempt = undefined;
    this.dispatch.recordAttempt(this.endpoint, code, -1);
    this.span?.end(undefined, outcome.reason);
    this.releaseEndpoint();
    this.resolve(outcome);
  }

  private stopTimer(): void {
    if (this.timer) {
      this.timer.cancel();
      this.timer = undefined;
    }
  }

  private releaseEndpoint(): void {
    if (this.endpointReleased) return;
    this.endpointReleased = true;
    this.endpoint.outstanding--;
  }
}
