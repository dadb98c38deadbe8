// One request/response on a client connection: the RequestContext the handler chain sees (and
// the ProxyRequest policies read), the request body's way to the upstream attempt (held in
// memory while it may be replayed, with backpressure both ways), and the response's way back
// to the client. One object per request; its callbacks are bound once per request.
import { randomUUID } from 'node:crypto';

// x-request-id when the client sent none: a random per-process prefix and a counter (unique
// across processes by the prefix, within one by the counter), written as bytes; the string is
// made only if something reads it (the access log). Several times cheaper than randomUUID()
// per request, measured with bench:hotpath.
const ID_PREFIX = randomUUID().slice(0, 24);
const ID_PREFIX_BYTES = Buffer.from(ID_PREFIX, 'latin1');
let idCounter = 0;
import type { RouteConfig } from './config/schema.js';
import { ChunkedScanner } from './http/chunked.js';
import type { RequestHead } from './http/request-head.js';
import type { ResponseHead } from './http/response-head.js';
import { buildLocalResponse, buildResponseHead, buildUpstreamRequest, copyKeptFields, dropTransferEncoding, ForwardBlock, forwardBlockFits, keptFieldsLength, rewriteResponseInPlace, type ForwardInfo } from './http/serialize.js';
import { copyBytes, writeLatin1 } from './http/chars.js';
import type { LocalResponse, Outcome, ProxyRequest } from './policy/types.js';
import { localResponse } from './policy/types.js';
import type { Reason } from './reasons.js';
import { REASON_STATUS } from './reasons.js';
import type { ListenerSnapshot, RouteTarget } from './snapshot-types.js';
import type { RouteStats } from './telemetry/hot-stats.js';
import { PROPAGATION_HEADERS, type RequestSpan, type Tracer } from './telemetry/tracing.js';
import type { ClusterState } from './upstream/cluster-state.js';
import type { EndpointState } from './upstream/endpoint.js';
import type { Attempt, AttemptOwner, ResponseSink } from './upstream/dispatch.js';
import type { ClientConnection } from './connection.js';

const enum Body {
  None,
  Length,
  Chunked,
}

/** Body bytes held for an upstream that is not ready, before the client is paused. */
const HOLD_HIGH_WATER = 256 * 1024;
/** A response whose body arrived with its head is sent in one write up to this size. */
const COALESCE_LIMIT = 16 * 1024;
/** Default request body kept for a transparent resend when the route has no retry policy. */
export const DEFAULT_REPLAY_LIMIT = 64 * 1024;

const GO_REPLAYABLE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/** Filled and read synchronously for each upstream head: no object literal per request. */
const FORWARD_INFO: { -readonly [K in keyof ForwardInfo]: ForwardInfo[K] } = {
  block: undefined,
  extraFields: undefined,
  clientAddress: '',
  requestIdPrefix: undefined,
  requestIdNumber: 0,
  timeoutMs: 0,
  endpointAuthority: '',
};

export class Exchange implements AttemptOwner, ResponseSink, ProxyRequest {
  // --- RequestContext ---
  route!: RouteConfig;
  cluster!: ClusterState;
  readonly clock;
  deadline = 0;
  attemptDeadline = 0;
  attempts = 0;
  readonly failedEndpoints: EndpointState[] = [];
  requestSent = false;
  aborted = false;
  cancel: (() => void) | undefined = undefined;
  reason: Reason | undefined = undefined;

  attempt: Attempt | undefined;
  routeTarget: RouteTarget | undefined;
  /** Number of the x-request-id the proxy generated (0: the client sent one). */
  requestIdNumber = 0;

  // request body
  private bodyKind = Body.None;
  private bodyRemaining = 0;
  private scanner: ChunkedScanner | undefined;
  bodyComplete = true;
  /** Request body bytes received so far (raw, as framed). */
  received = 0;
  private held: Buffer[] = [];
  private heldStart = 0;
  private replayLimit = DEFAULT_REPLAY_LIMIT;

  // response
  status = 0;
  responseStarted = false;
  finished = false;
  closeAfter = false;
  responseBytes = 0;
  upstreamMs = -1;
  finishedAt = 0;
  endpoint: EndpointState | undefined;
  /** The server span when tracing is on (undefined when off, or when the caller's unsampled trace passes through). */
  span: RequestSpan | undefined = undefined;
  private streaming: Attempt | undefined;
  private dechunk: ChunkedScanner | undefined;
  private stats: RouteStats;

  constructor(
    readonly conn: ClientConnection,
    readonly snapshot: ListenerSnapshot,
    readonly requestHead: RequestHead,
    readonly startTime: number,
  ) {
    this.clock = snapshot.clock;
    this.stats = snapshot.unroutedStats;
    const head = requestHead;
    if (head.chunked) {
      this.bodyKind = Body.Chunked;
      this.bodyComplete = false;
      this.scanner = new ChunkedScanner(snapshot.config.maxBodyBytes, snapshot.limits.maxHeaderBytes);
    } else if (head.contentLength > 0) {
      this.bodyKind = Body.Length;
      this.bodyRemaining = head.contentLength;
      this.bodyComplete = false;
    }
    if (head.close) this.closeAfter = true;
    if (snapshot.tracer !== undefined) this.startSpan(snapshot.tracer);
  }

  /** Tracing on: the server span; its attempts then send their own trace headers instead of the client's. */
  private startSpan(tracer: Tracer): void {
    const conn = this.conn;
    const head = this.requestHead;
    const span = tracer.startRequest(this, {
      listener: this.snapshot.config.name,
      clientAddress: conn.remoteAddress,
      clientPort: conn.socket.remotePort,
      serverPort: conn.socket.localPort,
      protocolVersion: head.version === 10 ? '1.0' : '1.1',
    });
    if (span === undefined) return;
    this.span = span;
    for (const name of PROPAGATION_HEADERS) for (let i = head.indexOf(name, 0); i >= 0; i = head.indexOf(name, i + 1)) head.markDrop(i);
  }

  get request(): ProxyRequest {
    return this;
  }

  // --- ProxyRequest ---
  get method(): string {
    return this.requestHead.method;
  }
  get target(): string {
    return this.requestHead.target;
  }
  header(name: string): string | undefined {
    return this.requestHead.header(name);
  }
  get idempotent(): boolean {
    return this.requestHead.idempotent;
  }
  get bodyLength(): number | undefined {
    const h = this.requestHead;
    return h.chunked ? undefined : Math.max(0, h.contentLength);
  }
  get replayable(): boolean {
    return this.heldStart === 0;
  }

  // --- start ---

  /** Routes the request and runs its handler chain. */
  start(): void {
    const snap = this.snapshot;
    const head = this.requestHead;
    const route = snap.router.match(head);
    if (route === undefined) {
      this.respondLocal(localResponse('no_route', 404, { detail: `no route for ${head.method} ${head.host}${head.path}` }));
      return;
    }
    const target = snap.router.pick(route);
    this.routeTarget = target;
    this.route = target.route;
    this.cluster = target.cluster;
    this.stats = target.stats;
    this.replayLimit = target.replayLimit;
    this.span?.setRoute(target.route.name, target.cluster.name);
    let deadline = this.startTime + target.route.timeout;
    if (head.timeoutMs >= 0 && this.startTime + head.timeoutMs < deadline) deadline = this.startTime + head.timeoutMs;
    this.deadline = deadline;
    this.attemptDeadline = deadline;
    if (!head.hasRequestId) this.requestIdNumber = ++idCounter;
    let p: Promise<Outcome>;
    try {
      p = target.handler(this);
    } catch (err) {
      this.onHandlerError(err);
      return;
    }
    p.then(this.onOutcome, this.onHandlerError);
  }

  private readonly onOutcome = (outcome: Outcome): void => {
    if (this.finished) {
      if (outcome.kind === 'upstream') outcome.discard();
      return;
    }
    if (outcome.kind === 'local') {
      this.respondLocal(outcome);
      return;
    }
    const attempt = outcome as Attempt;
    if (typeof attempt.attach !== 'function') {
      this.respondLocal(localResponse('upstream_reset', 502, { detail: 'a policy returned a response the core cannot stream' }));
      return;
    }
    this.attempt = attempt;
    this.streaming = attempt;
    this.endpoint = attempt.endpoint;
    this.upstreamMs = attempt.latencyMs;
    attempt.attach(this);
  };

  private readonly onHandlerError = (err: unknown): void => {
    if (this.finished) return;
    this.respondLocal(localResponse('upstream_reset', 502, { detail: `internal error: ${err instanceof Error ? err.message : String(err)}` }));
  };

  // --- request body (client → upstream) ---

  /**
   * Takes body bytes from buf[start, end); returns where the body's bytes end (end when all
   * of them belong to it), or -1 when the body is malformed or too large (already answered).
   */
  takeBody(buf: Buffer, start: number, end: number): number {
    if (this.bodyKind === Body.Length) {
      const n = Math.min(this.bodyRemaining, end - start);
      this.bodyRemaining -= n;
      if (this.bodyRemaining === 0) this.bodyComplete = true;
      if (n > 0) this.deliver(start === 0 && n === buf.length ? buf : buf.subarray(start, start + n));
      return start + n;
    }
    if (this.bodyKind === Body.Chunked) {
      const scanner = this.scanner!;
      const r = scanner.scan(buf, start, end);
      if (r === -2) {
        this.bodyFailed(scanner.error!.status, scanner.error!.message);
        return -1;
      }
      const stop = r < 0 ? end : r;
      if (r >= 0) this.bodyComplete = true;
      if (stop > start) this.deliver(start === 0 && stop === buf.length ? buf : buf.subarray(start, stop));
      return stop;
    }
    return start;
  }

  private deliver(piece: Buffer): void {
    const before = this.received;
    this.received += piece.length;
    const a = this.attempt;
    const conn = a?.conn;
    if (conn !== undefined && a!.bodySent === before) {
      a!.bodySent = this.received;
      if (!conn.write(piece)) this.conn.pause(PAUSE_UPSTREAM);
      if (this.heldStart === 0 && this.received <= this.replayLimit) this.held.push(piece);
      else this.dropHeld();
      return;
    }
    this.held.push(piece);
    if (this.received - this.heldStart > Math.max(HOLD_HIGH_WATER, this.replayLimit)) this.conn.pause(PAUSE_HOLD);
  }

  private dropHeld(): void {
    if (this.held.length > 0) this.held = [];
    this.heldStart = this.received;
  }

  private bodyFailed(status: number, message: string): void {
    // The upstream has part of a body that will never be finished: abort it.
    this.closeAfter = true;
    const cancel = this.cancel;
    this.cancel = undefined;
    if (this.streaming) this.streaming.discard();
    else if (cancel) cancel();
    if (!this.responseStarted) {
      this.respondLocal(localResponse('bad_request', status, { detail: message }));
    } else {
      this.conn.destroy();
      this.finish(this.status, 'bad_request');
    }
  }

  get requestWritten(): boolean {
    return this.bodyComplete && this.attempt !== undefined && this.attempt.bodySent === this.received;
  }

  get staleRetryAllowed(): boolean {
    const h = this.requestHead;
    return this.heldStart === 0 && (GO_REPLAYABLE.has(h.method) || h.hasIdempotencyKey);
  }

  /** The x-request-id the proxy added, if it added one. */
  get requestId(): string | undefined {
    return this.requestIdNumber === 0 ? undefined : ID_PREFIX + this.requestIdNumber;
  }

  upstreamHead(timeoutMs: number, endpoint: EndpointState, traceFields?: readonly string[]): Buffer {
    // One shared object: heads are built synchronously, one at a time.
    const info = FORWARD_INFO;
    const head = this.requestHead;
    const conn = this.conn;
    let block: ForwardBlock | undefined;
    if (forwardBlockFits(head)) {
      block = conn.forwardBlock;
      if (block === undefined || block.host !== head.host) block = conn.forwardBlock = new ForwardBlock(conn.remoteAddress, head.host, ID_PREFIX_BYTES);
    }
    info.block = block;
    info.extraFields = traceFields;
    info.clientAddress = conn.remoteAddress;
    info.requestIdPrefix = this.requestIdNumber === 0 ? undefined : ID_PREFIX_BYTES;
    info.requestIdNumber = this.requestIdNumber;
    info.timeoutMs = timeoutMs;
    info.endpointAuthority = endpoint.address;
    return buildUpstreamRequest(head, info);
  }

  sendRequest(attempt: Attempt, head: Buffer): boolean {
    if (this.heldStart !== 0) return false;
    const conn = attempt.conn!;
    this.attempt = attempt;
    let ok: boolean;
    const held = this.held;
    if (held.length === 0) ok = conn.write(head);
    else if (held.length === 1 && head.length + held[0]!.length <= COALESCE_LIMIT) {
      ok = conn.write(Buffer.concat([head, held[0]!]));
    } else {
      const s = conn.socket;
      s.cork();
      conn.write(head);
      for (let i = 0; i < held.length; i++) conn.write(held[i]!);
      ok = s.writableLength < s.writableHighWaterMark;
      s.uncork();
    }
    attempt.bodySent = this.received;
    if (this.received > this.replayLimit) this.dropHeld();
    this.conn.resume(PAUSE_HOLD);
    // A new attempt's connection: a drain the previous attempt owed will not come.
    if (ok) this.conn.resume(PAUSE_UPSTREAM);
    else this.conn.pause(PAUSE_UPSTREAM);
    return true;
  }

  onUpstreamWritable(): void {
    this.conn.resume(PAUSE_UPSTREAM);
  }

  onInterim(head: ResponseHead): void {
    // 1xx go to HTTP/1.1 clients only (RFC 9110 15.2); 100 Continue is what makes Expect work end to end.
    if (this.requestHead.version !== 11 || this.responseStarted) return;
    const size = head.fieldsStart - head.start + keptFieldsLength(head) + 2;
    const out = Buffer.allocUnsafe(size);
    let o = head.buf.copy(out, 0, head.start, head.fieldsStart);
    out[7] = 0x31;
    o = copyKeptFields(head, out, o);
    writeLatin1(out, '\r\n', o);
    this.conn.write(out);
  }

  // --- response (upstream → client) ---

  responseHead(_attempt: Attempt, head: ResponseHead, body: Buffer[] | undefined, complete: boolean): void {
    const req = this.requestHead;
    this.status = head.status;
    this.responseStarted = true;
    const noBody = req.method === 'HEAD' || head.status === 204 || head.status === 304;
    const closeDelimited = !noBody && !head.chunked && head.contentLength < 0;
    if (!this.bodyComplete || this.conn.listener.draining) this.closeAfter = true;
    let connection: 'close' | 'keep-alive' | undefined;
    if (req.version === 10) {
      if (head.chunked && !noBody) {
        this.dechunk = new ChunkedScanner();
        dropTransferEncoding(head);
        this.closeAfter = true;
      }
      if (closeDelimited) this.closeAfter = true;
      connection = this.closeAfter ? 'close' : 'keep-alive';
    } else {
      if (closeDelimited) this.closeAfter = true;
      if (this.closeAfter) connection = 'close';
    }

    if (body === undefined && head.bodyEnd >= 0 && complete && this.dechunk === undefined) {
      this.respondWhole(head, connection);
      return;
    }
    let bodyLen = 0;
    if (body !== undefined && complete && this.dechunk === undefined) {
      for (let i = 0; i < body.length; i++) bodyLen += body[i]!.length;
      if (bodyLen > COALESCE_LIMIT) bodyLen = 0;
    }
    const out = buildResponseHead(head, this.attempts, connection, bodyLen);
    if (bodyLen > 0) {
      let o = out.length - bodyLen;
      for (let i = 0; i < body!.length; i++) o = copyBytes(body![i]!, 0, body![i]!.length, out, o);
      this.responseBytes += bodyLen;
      this.conn.write(out);
      return;
    }
    if (body === undefined || body.length === 0) {
      this.conn.write(out);
      return;
    }
    const s = this.conn.socket;
    s.cork();
    this.conn.write(out);
    for (let i = 0; i < body.length; i++) this.writeBody(body[i]!);
    s.uncork();
  }

  /** The whole response came in one read (head.bodyEnd): rewritten in place when it can be, else copied once. */
  private respondWhole(head: ResponseHead, connection: 'close' | 'keep-alive' | undefined): void {
    const buf = head.buf;
    const bodyLen = head.bodyEnd - head.end;
    this.responseBytes += bodyLen;
    if (connection === undefined && rewriteResponseInPlace(head, this.attempts)) {
      this.conn.write(head.start === 0 && head.bodyEnd === buf.length ? buf : buf.subarray(head.start, head.bodyEnd));
      return;
    }
    if (bodyLen > COALESCE_LIMIT) {
      this.conn.write(buildResponseHead(head, this.attempts, connection, 0));
      this.conn.write(buf.subarray(head.end, head.bodyEnd));
      return;
    }
    const out = buildResponseHead(head, this.attempts, connection, bodyLen);
    if (bodyLen > 0) copyBytes(buf, head.end, head.bodyEnd, out, out.length - bodyLen);
    this.conn.write(out);
  }

  private writeBody(chunk: Buffer): boolean {
    if (this.dechunk !== undefined) {
      let ok = true;
      const r = this.dechunk.scan(chunk, 0, chunk.length, (b, s, e) => {
        this.responseBytes += e - s;
        ok = this.conn.write(b.subarray(s, e)) && ok;
      });
      if (r === -2) this.conn.destroy();
      return ok;
    }
    this.responseBytes += chunk.length;
    return this.conn.write(chunk);
  }

  responseBody(chunk: Buffer): boolean {
    return this.writeBody(chunk);
  }

  responseEnd(now?: number): void {
    this.finish(this.status, undefined, now);
  }

  responseFailed(reason: Reason, detail: string): void {
    if (!this.responseStarted) {
      this.respondLocal(localResponse(reason, REASON_STATUS[reason], { detail, endpoint: this.endpoint }));
      return;
    }
    // The head is out: the only honest signal left is an aborted connection.
    this.conn.destroy();
    this.finish(this.status, reason);
  }

  /** The client can take more response bytes. */
  onClientWritable(): void {
    this.streaming?.resume();
  }

  // --- local responses, client abort, finish ---

  respondLocal(lr: LocalResponse): void {
    if (this.finished) return;
    const reason = lr.reason;
    this.reason = reason;
    this.status = lr.status;
    if (lr.endpoint) this.endpoint = lr.endpoint;
    if (reason === 'bad_request' || reason === 'draining' || !this.bodyComplete || this.conn.listener.draining) this.closeAfter = true;
    const body = lr.detail ? `${reason}: ${lr.detail}\n` : `${reason}\n`;
    const out = buildLocalResponse(lr.status, reason, body, lr.headers, this.closeAfter, this.attempts, this.requestHead.method !== 'HEAD');
    this.responseStarted = true;
    // Body bytes only, as for upstream answers (tsmesh_response_body_bytes_total, access log).
    if (this.requestHead.method !== 'HEAD') this.responseBytes += Buffer.byteLength(body);
    this.conn.write(out);
    this.finish(lr.status, reason);
  }

  /** The client closed its connection before the response was complete. */
  clientGone(): void {
    if (this.finished) return;
    this.aborted = true;
    this.closeAfter = true;
    const cancel = this.cancel;
    this.cancel = undefined;
    if (this.streaming) this.streaming.discard();
    else if (cancel) cancel();
    else this.attempt?.cancel();
    this.finish(499, 'client_closed');
  }

  private finish(status: number, reason: Reason | undefined, at?: number): void {
    if (this.finished) return;
    this.finished = true;
    if (reason !== undefined) this.reason = reason;
    this.status = status;
    const now = at ?? this.clock.now();
    this.finishedAt = now;
    const stats = this.stats;
    stats.record(status, this.reason, (now - this.startTime) / 1000);
    stats.requestBytes += this.received;
    stats.responseBytes += this.responseBytes;
    this.span?.end(status, this.reason);
    this.snapshot.accessLog.log(this, now, this.snapshot.config.name);
    this.conn.exchangeDone(this);
  }
}

export const PAUSE_UPSTREAM = 1;
export const PAUSE_HOLD = 2;
export const PAUSE_PIPELINE = 4;
