// One client connection: reads request heads (with an absolute deadline for a complete head,
// so a slow client cannot hold the proxy), runs one exchange at a time and answers pipelined
// requests in order, keeps the connection alive between requests (idle timeout), and closes
// it gracefully (lingering: what the client still sends is read and dropped, so a response
// followed by close is not turned into a reset). Timeouts are checked by the listener's
// sweeper against `deadline`; there is no timer per connection or per request here.
import type { Server, Socket } from 'node:net';
import { rewrapWithOnRead } from './net/accepted-socket.js';
import { copyOfRead, READ_BUFFER } from './net/read-buffer.js';
import { SocketWriter } from './net/socket-writer.js';
import { Byte } from './http/chars.js';
import { findHeadEnd, hasBareLf, INCOMPLETE, ParseError } from './http/head.js';
import { parseRequestHead, type PreviousRequest } from './http/request-head.js';
import { buildLocalResponse, type ForwardBlock } from './http/serialize.js';
import { Exchange, PAUSE_HOLD, PAUSE_PIPELINE, PAUSE_UPSTREAM } from './exchange.js';
import type { Listener } from './listener.js';
import { REASON_STATUS } from './reasons.js';

const enum State {
  Idle,
  Head,
  Active,
  Closing,
  Closed,
}

/** How long a closing connection keeps reading what the client still sends. */
const LINGER_MS = 2000;
/** Bytes of pipelined requests buffered while one is answered, before reading pauses. */
const PIPELINE_HIGH_WATER = 64 * 1024;
/** Empty lines tolerated before a request line (RFC 9112 2.2). */
const MAX_LEADING_EMPTY_LINES = 8;

export class ClientConnection {
  readonly remoteAddress: string;
  exchange: Exchange | undefined;
  /** Clock time at which the sweeper acts on this connection (0: none). */
  deadline = 0;
  served = 0;
  /** The forwarded fields of this client's requests for the Host it last used (built by the exchange). */
  forwardBlock: ForwardBlock | undefined = undefined;
  /** Strings of this client's last request (checked), for the parser to reuse. */
  private readonly previous: PreviousRequest = { host: '', target: '', path: '' };
  private state = State.Idle;
  private buf: Buffer | undefined;
  private bufStart = 0;
  /** 0: the next head has not been tried yet; else 1 + where to resume looking for its end. */
  private scanFrom = 0;
  private pauses = 0;
  private processing = false;

  readonly socket: Socket;
  private readonly writer: SocketWriter;

  constructor(
    accepted: Socket,
    readonly listener: Listener,
    server?: Server,
  ) {
    const socket = (server && rewrapWithOnRead(accepted, server, READ_BUFFER, this.onRead)) ?? accepted;
    this.socket = socket;
    this.writer = new SocketWriter(socket, this.onDrain);
    const addr = socket.remoteAddress ?? '';
    this.remoteAddress = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
    socket.setNoDelay(true);
    if (socket === accepted) {
      socket.on('data', this.onData);
      socket.resume();
    }
    socket.on('error', noop);
    socket.on('close', this.onClose);
    socket.on('drain', this.onDrain);
    this.deadline = listener.clock.now() + listener.snapshot.config.headerTimeout;
  }

  get closed(): boolean {
    return this.state === State.Closed;
  }

  get idle(): boolean {
    return this.state === State.Idle;
  }

  write(buf: Buffer): boolean {
    if (this.state === State.Closed) return true;
    return this.writer.write(buf);
  }

  pause(flag: number): void {
    if (this.pauses === 0) this.socket.pause();
    this.pauses |= flag;
  }

  resume(flag: number): void {
    if ((this.pauses & flag) === 0) return;
    this.pauses &= ~flag;
    if (this.pauses === 0 && this.state !== State.Closed) this.socket.resume();
  }

  destroy(): void {
    if (this.state === State.Closed) return;
    this.writer.flush();
    this.socket.destroy();
  }

  private readonly onRead = (nread: number, readBuffer: Uint8Array): boolean => {
    this.onData(copyOfRead(nread, readBuffer));
    return true;
  };

  private readonly onData = (chunk: Buffer): void => {
    const state = this.state;
    if (state === State.Closing || state === State.Closed) return;
    const ex = this.exchange;
    if (ex !== undefined) {
      let i = 0;
      if (!ex.bodyComplete && this.buf === undefined) {
        i = ex.takeBody(chunk, 0, chunk.length);
        if (i < 0) return;
      }
      if (i < chunk.length) {
        this.stash(chunk, i);
        if (this.buf!.length - this.bufStart > PIPELINE_HIGH_WATER) this.pause(PAUSE_PIPELINE);
      }
      return;
    }
    this.stash(chunk, 0);
    this.process();
  };

  private stash(chunk: Buffer, from: number): void {
    if (this.buf === undefined) {
      this.buf = chunk;
      this.bufStart = from;
    } else {
      this.buf = Buffer.concat([this.buf.subarray(this.bufStart), chunk.subarray(from)]);
      if (this.scanFrom > 0) this.scanFrom = Math.max(1, this.scanFrom - this.bufStart);
      this.bufStart = 0;
    }
  }

  /** Parses and starts the requests waiting in the buffer, one at a time. */
  private process(): void {
    if (this.processing) return;
    this.processing = true;
    try {
      while (this.exchange === undefined && this.buf !== undefined && this.state !== State.Closing && this.state !== State.Closed) {
        const buf = this.buf;
        const end = buf.length;
        let start = this.bufStart;
        for (let n = 0; n < MAX_LEADING_EMPTY_LINES && start + 1 < end && buf[start] === Byte.CR && buf[start + 1] === Byte.LF; n++) start += 2;
        if (start >= end) {
          this.buf = undefined;
          this.bufStart = 0;
          this.scanFrom = 0;
          break;
        }
        this.bufStart = start;
        const snap = this.listener.snapshot;
        const now = this.listener.clock.now();
        if (this.state === State.Idle) {
          this.state = State.Head;
          // The header deadline of a new connection runs from accept (set in the constructor).
          if (this.served > 0) this.deadline = now + snap.config.headerTimeout;
        }
        // Most heads arrive whole in one read: parse at once. When one did not, wait for its
        // end with indexOf before parsing again, so a client sending a byte at a time costs
        // linear, not quadratic, work.
        let head;
        if (this.scanFrom === 0) {
          head = parseRequestHead(buf, start, end, snap.limits, this.previous);
          if (head === INCOMPLETE) {
            this.scanFrom = Math.max(start, end - 3) + 1;
            break;
          }
        } else {
          const from = this.scanFrom - 1;
          const headEnd = findHeadEnd(buf, start, from, end);
          if (headEnd < 0) {
            if (end - start > snap.limits.maxHeaderBytes) this.reject(431, 'request head too large');
            else if (hasBareLf(buf, start, from, end)) this.reject(400, 'LF without CR');
            else this.scanFrom = Math.max(start, end - 3) + 1;
            break;
          }
          head = parseRequestHead(buf, start, headEnd, snap.limits, this.previous);
        }
        this.scanFrom = 0;
        if (head instanceof ParseError) {
          this.reject(head.status, head.message);
          break;
        }
        const headEnd = head.end;
        if (head.contentLength > snap.config.maxBodyBytes) {
          this.reject(413, `request body of ${head.contentLength} bytes is larger than ${snap.config.maxBodyBytes}`);
          break;
        }
        const ex = new Exchange(this, snap, head, now);
        this.exchange = ex;
        this.state = State.Active;
        this.deadline = 0;
        this.listener.requestStarted();
        let i = headEnd;
        if (!ex.bodyComplete) {
          i = ex.takeBody(buf, headEnd, end);
          if (i < 0) break;
        }
        if (i < end) this.bufStart = i;
        else {
          this.buf = undefined;
          this.bufStart = 0;
        }
        if (this.listener.closing) ex.respondLocal({ kind: 'local', status: REASON_STATUS.draining, reason: 'draining', detail: 'the proxy is shutting down' });
        else ex.start();
      }
    } finally {
      this.processing = false;
    }
  }

  /** A malformed or oversized request (or a header timeout): answer, never forward, close. */
  reject(status: number, message: string): void {
    if (this.state === State.Closing || this.state === State.Closed) return;
    this.listener.rejected(this, status, message);
    this.write(buildLocalResponse(status, 'bad_request', `bad_request: ${message}\n`, undefined, true, 0));
    this.buf = undefined;
    this.closeGracefully();
  }

  /** Called by the exchange when its response is complete (or it was aborted). */
  exchangeDone(ex: Exchange): void {
    if (this.exchange !== ex) return;
    this.exchange = undefined;
    this.served++;
    this.listener.requestFinished();
    if (this.state === State.Closed) return;
    if (ex.closeAfter || this.listener.draining) {
      this.closeGracefully();
      return;
    }
    this.state = State.Idle;
    this.deadline = ex.finishedAt + this.listener.snapshot.config.idleTimeout;
    // Whatever the exchange paused reading for is over with it (an upstream write that never
    // drained because its attempt was abandoned, say): the next request must be read.
    this.resume(PAUSE_PIPELINE | PAUSE_UPSTREAM | PAUSE_HOLD);
    if (this.buf !== undefined) {
      if (!this.processing) this.process();
    }
  }

  /** Ends our side after the response; keeps reading (and dropping) until the client closes or the linger time ends. */
  closeGracefully(): void {
    if (this.state === State.Closing || this.state === State.Closed) return;
    this.state = State.Closing;
    this.buf = undefined;
    this.pauses = 0;
    this.socket.resume();
    this.writer.end();
    this.deadline = this.listener.clock.now() + LINGER_MS;
  }

  /** Closes an idle keep-alive connection (drain, idle timeout); no-op when a request is under way. */
  closeIfIdle(): boolean {
    if (this.state !== State.Idle) return false;
    this.closeGracefully();
    return true;
  }

  /**
   * The proxy is closing: a request still being received is answered 503 draining (it was
   * never accepted); an idle connection closes; one with a request in flight is cut.
   */
  drainNow(): void {
    switch (this.state) {
      case State.Idle:
        this.closeGracefully();
        break;
      case State.Head:
        this.listener.snapshot.unroutedStats.record(503, 'draining', 0);
        this.write(buildLocalResponse(503, 'draining', 'draining: the proxy is shutting down\n', [['retry-after', '1']], true, 0));
        this.closeGracefully();
        break;
      case State.Active:
        this.destroy();
        break;
    }
  }

  /** Called by the listener's sweeper when `deadline` has passed. */
  onDeadline(): void {
    switch (this.state) {
      case State.Idle:
        this.closeGracefully();
        break;
      case State.Head:
        this.reject(408, 'request head not received in time');
        break;
      case State.Closing:
        this.destroy();
        break;
    }
  }

  private readonly onDrain = (): void => {
    this.exchange?.onClientWritable();
  };

  private readonly onClose = (): void => {
    this.state = State.Closed;
    this.deadline = 0;
    this.buf = undefined;
    const ex = this.exchange;
    if (ex !== undefined) ex.clientGone();
    this.listener.connectionClosed(this);
  };
}

function noop(): void {}
