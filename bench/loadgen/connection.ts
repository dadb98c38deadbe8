// One keep-alive HTTP/1.1 client connection on a raw socket, one request at a time. It knows
// nothing of load models: it sends what it is given and reports how each request ended.
import { connect, type Socket } from 'node:net';
import type { ErrorClass } from './stats.js';
import { ResponseParser, type ParsedResponse } from './response-parser.js';

export interface ConnectionEvents {
  /** A full response to the request in flight. */
  onResponse(conn: Connection, r: ParsedResponse): void;
  /** The request in flight (or the connect before it) failed; the connection is dead. */
  onFailure(conn: Connection, cls: ErrorClass, code: string): void;
  /** A socket was opened / closed (for connection counts). */
  socketOpened(): void;
  socketClosed(): void;
}

export function classifySocketError(err: NodeJS.ErrnoException): ErrorClass {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
    default:
      return 'socketOther';
  }
}

export class Connection {
  private socket: Socket | undefined;
  private readonly parser: ResponseParser;
  private connected = false;
  private queued: string | undefined;
  /** A request was sent and its response has not completed. */
  busy = false;
  /** When the request in flight was sent (performance.now()), for time-outs. */
  sentAt = 0;
  /** Free slot for the load model (the VU index). */
  tag = 0;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly events: ConnectionEvents,
  ) {
    this.parser = new ResponseParser((r) => this.responded(r));
  }

  /** Sends a request, connecting first if needed. */
  send(request: string, noBody = false, now = performance.now()): void {
    this.busy = true;
    this.sentAt = now;
    this.parser.noBody = noBody;
    if (!this.socket) this.open();
    if (this.connected) this.socket!.write(request);
    else this.queued = request;
  }

  /** Ends the request in flight as a client time-out and drops the connection. */
  timeOut(): void {
    this.fail('timeout', 'TIMEOUT');
  }

  close(): void {
    this.busy = false;
    this.drop();
  }

  private open(): void {
    const s = connect({ host: this.host, port: this.port, noDelay: true });
    this.socket = s;
    this.events.socketOpened();
    this.connected = false;
    this.parser.reset();
    s.on('connect', () => {
      this.connected = true;
      if (this.queued !== undefined) {
        s.write(this.queued);
        this.queued = undefined;
      }
    });
    s.on('data', (d: Buffer) => {
      try {
        this.parser.feed(d);
      } catch (err) {
        this.fail('socketOther', `BAD_RESPONSE: ${(err as Error).message}`);
      }
    });
    s.on('error', (err: NodeJS.ErrnoException) => this.fail(classifySocketError(err), err.code ?? err.message));
    s.on('end', () => {
      if (this.socket !== s) return;
      const whole = this.parser.end();
      if (this.busy && !whole) this.fail('reset', 'EOF');
      else this.drop();
    });
    s.on('close', () => {
      if (this.socket !== s) return;
      if (this.busy) this.fail('reset', 'CLOSED');
      else this.drop();
    });
  }

  private responded(r: ParsedResponse): void {
    this.busy = false;
    // The server said it closes: the next request goes on a new connection.
    if (r.close) this.drop();
    this.events.onResponse(this, r);
  }

  private drop(): void {
    const s = this.socket;
    if (!s) return;
    this.socket = undefined;
    this.connected = false;
    this.queued = undefined;
    s.destroy();
    this.events.socketClosed();
  }

  private fail(cls: ErrorClass, code: string): void {
    if (!this.busy) {
      this.drop();
      return;
    }
    this.busy = false;
    this.drop();
    this.events.onFailure(this, cls, code);
  }
}
