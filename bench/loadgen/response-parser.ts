// The least HTTP/1.1 response parsing a load generator needs: the status, a few headers
// (x-tsmesh-reason, Connection) and where the response ends (Content-Length, chunked, or the
// connection closing). Bodies are counted, never kept. One response at a time per connection.

export interface ParsedResponse {
  status: number;
  /** x-tsmesh-reason, when the response was made by tsmesh itself. */
  reason: string | undefined;
  /** The server will close the connection after this response. */
  close: boolean;
  bodyBytes: number;
}

const enum State {
  Head,
  FixedBody,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  UntilClose,
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

export class ResponseParser {
  private state = State.Head;
  private pending: Buffer | undefined; // an incomplete head or chunk-size line
  private remaining = 0;
  private current: ParsedResponse = { status: 0, reason: undefined, close: false, bodyBytes: 0 };
  /** HEAD requests: no body whatever the headers say. */
  noBody = false;

  constructor(private readonly onResponse: (r: ParsedResponse) => void) {}

  /** True while a response has started and not finished. */
  get inResponse(): boolean {
    return this.state !== State.Head || this.pending !== undefined;
  }

  reset(): void {
    this.state = State.Head;
    this.pending = undefined;
    this.remaining = 0;
  }

  /** Feeds bytes from the socket; throws on a malformed response. */
  feed(chunk: Buffer): void {
    let buf = chunk;
    let pos = 0;
    if (this.pending !== undefined) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    while (pos < buf.length) {
      switch (this.state) {
        case State.Head: {
          const end = buf.indexOf(CRLFCRLF, pos);
          if (end === -1) {
            if (buf.length - pos > 64 * 1024) throw new Error('response head larger than 64 KiB');
            this.pending = buf.subarray(pos);
            return;
          }
          this.parseHead(buf.toString('latin1', pos, end));
          pos = end + 4;
          break;
        }
        case State.FixedBody: {
          const n = Math.min(this.remaining, buf.length - pos);
          this.remaining -= n;
          this.current.bodyBytes += n;
          pos += n;
          if (this.remaining === 0) this.complete();
          break;
        }
        case State.ChunkSize:
        case State.Trailers: {
          const eol = buf.indexOf(10, pos); // '\n'
          if (eol === -1) {
            if (buf.length - pos > 8192) throw new Error('chunk size line too long');
            this.pending = buf.subarray(pos);
            return;
          }
          const line = buf.toString('latin1', pos, eol > pos && buf[eol - 1] === 13 ? eol - 1 : eol);
          pos = eol + 1;
          if (this.state === State.Trailers) {
            if (line === '') this.complete();
            break;
          }
          const semi = line.indexOf(';');
          const size = parseInt(semi === -1 ? line : line.slice(0, semi), 16);
          if (!Number.isFinite(size) || size < 0) throw new Error(`bad chunk size line "${line}"`);
          if (size === 0) this.state = State.Trailers;
          else {
            this.remaining = size;
            this.state = State.ChunkData;
          }
          break;
        }
        case State.ChunkData: {
          const n = Math.min(this.remaining, buf.length - pos);
          this.remaining -= n;
          this.current.bodyBytes += n;
          pos += n;
          if (this.remaining === 0) {
            this.remaining = 2; // the CRLF after the data
            this.state = State.ChunkDataEnd;
          }
          break;
        }
        case State.ChunkDataEnd: {
          const n = Math.min(this.remaining, buf.length - pos);
          this.remaining -= n;
          pos += n;
          if (this.remaining === 0) this.state = State.ChunkSize;
          break;
        }
        case State.UntilClose:
          this.current.bodyBytes += buf.length - pos;
          pos = buf.length;
          break;
      }
    }
  }

  /** The connection ended: completes a close-delimited body; false if a response was cut short. */
  end(): boolean {
    if (this.state === State.UntilClose) {
      this.complete();
      return true;
    }
    return !this.inResponse;
  }

  private parseHead(head: string): void {
    // "HTTP/1.1 200 OK"
    if (!head.startsWith('HTTP/1.')) throw new Error(`not an HTTP/1.x response: "${head.slice(0, 40)}"`);
    const status = Number(head.slice(9, 12));
    if (!(status >= 100 && status <= 599)) throw new Error(`bad status line "${head.slice(0, head.indexOf('\r'))}"`);
    let length = -1;
    let chunked = false;
    let close = head.charCodeAt(7) === 48; // HTTP/1.0 closes unless told otherwise
    let reason: string | undefined;
    let lineStart = head.indexOf('\r\n') + 2;
    while (lineStart > 1 && lineStart < head.length) {
      let lineEnd = head.indexOf('\r\n', lineStart);
      if (lineEnd === -1) lineEnd = head.length;
      const colon = head.indexOf(':', lineStart);
      if (colon !== -1 && colon < lineEnd) {
        const nameLen = colon - lineStart;
        // Only lengths of the headers we read are worth a lower-cased copy.
        if (nameLen === 14 || nameLen === 17 || nameLen === 10 || nameLen === 15) {
          const name = head.slice(lineStart, colon).toLowerCase();
          const value = head.slice(colon + 1, lineEnd).trim();
          if (name === 'content-length') length = Number(value);
          else if (name === 'transfer-encoding') chunked = /(^|,)\s*chunked\s*$/i.test(value);
          else if (name === 'connection') close = /(^|,)\s*close\s*(,|$)/i.test(value) ? true : /keep-alive/i.test(value) ? false : close;
          else if (name === 'x-tsmesh-reason') reason = value;
        }
      }
      lineStart = lineEnd + 2;
    }
    if (status < 200) return; // 1xx: the real response follows
    this.current = { status, reason, close, bodyBytes: 0 };
    if (this.noBody || status === 204 || status === 304) this.complete();
    else if (chunked) this.state = State.ChunkSize;
    else if (length >= 0) {
      if (!Number.isSafeInteger(length)) throw new Error('bad content-length');
      this.remaining = length;
      if (length === 0) this.complete();
      else this.state = State.FixedBody;
    } else {
      this.current.close = true;
      this.state = State.UntilClose;
    }
  }

  private complete(): void {
    this.state = State.Head;
    const r = this.current;
    this.onResponse(r);
  }
}
