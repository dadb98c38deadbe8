// Chunked framing (RFC 9112 7.1) scanned, not rewritten: the proxy forwards the bytes as they
// came and only tracks where chunks and the body end, so that it knows where the next message
// starts. Strict: hex sizes without sign or prefix (at most 13 digits), chunk extensions bounded
// and free of controls, CRLF after every chunk's data, trailer fields parsed like header fields.
// With a sink it also decodes (the data ranges, for an HTTP/1.0 client that cannot take chunked).
import { Byte, FIELD_VALUE, HEX, TCHAR } from './chars.js';
import { ParseError } from './head.js';

export const CHUNK_ERR = {
  badSize: new ParseError(400, 'invalid chunk size'),
  badExtension: new ParseError(400, 'invalid or oversized chunk extension'),
  badLineEnd: new ParseError(400, 'chunk line not ended by CRLF'),
  badDataEnd: new ParseError(400, 'chunk data not followed by CRLF'),
  badTrailer: new ParseError(400, 'invalid trailer field'),
  trailerTooLarge: new ParseError(431, 'trailer section too large'),
  tooLarge: new ParseError(413, 'body larger than allowed'),
} as const;

const enum S {
  SizeStart,
  Size,
  SizeWs,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerLineStart,
  TrailerName,
  TrailerValue,
  TrailerLf,
  FinalLf,
  Done,
  Failed,
}

/** Data bytes of a chunked body, as ranges of the scanned buffer. */
export type ChunkSink = (buf: Buffer, start: number, end: number) => void;

const MAX_SIZE_DIGITS = 13; // < 2^52: sizes stay exact in a double
const MAX_EXTENSION_BYTES = 1024;

export class ChunkedScanner {
  private state = S.SizeStart;
  private remaining = 0;
  private digits = 0;
  private lineBytes = 0;
  private trailerBytes = 0;
  /** Data bytes seen so far (the decoded length). */
  decoded = 0;
  error: ParseError | undefined;

  constructor(
    /** Largest decoded body; beyond it the scan fails with 413. */
    private readonly maxBody = Number.MAX_SAFE_INTEGER,
    private readonly maxTrailerBytes = 32 * 1024,
  ) {}

  get done(): boolean {
    return this.state === S.Done;
  }

  /**
   * Scans buf[start, end). Returns the index just after the body's last byte when the body ends
   * in this range, -1 when it needs more bytes, -2 on a framing error (see `error`).
   */
  scan(buf: Buffer, start: number, end: number, sink?: ChunkSink): number {
    let i = start;
    let state = this.state;
    while (i < end) {
      const c = buf[i]!;
      switch (state) {
        case S.SizeStart:
          if (HEX[c] === 0) return this.fail(CHUNK_ERR.badSize);
          this.remaining = HEX[c]! - 1;
          this.digits = 1;
          this.lineBytes = 1;
          state = S.Size;
          i++;
          break;
        case S.Size:
          if (HEX[c] !== 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail(CHUNK_ERR.badSize);
            this.remaining = this.remaining * 16 + HEX[c]! - 1;
            i++;
          } else if (c === Byte.CR) {
            state = S.SizeLf;
            i++;
          } else if (c === 0x3b) {
            state = S.Ext;
            i++;
          } else if (c === Byte.SP || c === Byte.HTAB) {
            state = S.SizeWs;
            i++;
          } else return this.fail(c === Byte.LF ? CHUNK_ERR.badLineEnd : CHUNK_ERR.badSize);
          break;
        case S.SizeWs:
          // BWS is only allowed before a chunk extension.
          if (c === Byte.SP || c === Byte.HTAB) i++;
          else if (c === 0x3b) {
            state = S.Ext;
            i++;
          } else return this.fail(CHUNK_ERR.badSize);
          if (++this.lineBytes > MAX_EXTENSION_BYTES) return this.fail(CHUNK_ERR.badExtension);
          break;
        case S.Ext:
          if (c === Byte.CR) {
            state = S.SizeLf;
            i++;
            break;
          }
          if (FIELD_VALUE[c] !== 1 || ++this.lineBytes > MAX_EXTENSION_BYTES) return this.fail(CHUNK_ERR.badExtension);
          i++;
          break;
        case S.SizeLf:
          if (c !== Byte.LF) return this.fail(CHUNK_ERR.badLineEnd);
          i++;
          if (this.remaining === 0) {
            state = S.TrailerLineStart;
          } else {
            this.decoded += this.remaining;
            if (this.decoded > this.maxBody) return this.fail(CHUNK_ERR.tooLarge);
            state = S.Data;
          }
          break;
        case S.Data: {
          const n = Math.min(this.remaining, end - i);
          if (sink) sink(buf, i, i + n);
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) state = S.DataCr;
          break;
        }
        case S.DataCr:
          if (c !== Byte.CR) return this.fail(CHUNK_ERR.badDataEnd);
          state = S.DataLf;
          i++;
          break;
        case S.DataLf:
          if (c !== Byte.LF) return this.fail(CHUNK_ERR.badDataEnd);
          state = S.SizeStart;
          i++;
          break;
        case S.TrailerLineStart:
          if (c === Byte.CR) {
            state = S.FinalLf;
            i++;
            break;
          }
          if (TCHAR[c] !== 1) return this.fail(CHUNK_ERR.badTrailer);
          state = S.TrailerName;
          break;
        case S.TrailerName:
          if (TCHAR[c] === 1) i++;
          else if (c === Byte.COLON) {
            state = S.TrailerValue;
            i++;
          } else return this.fail(CHUNK_ERR.badTrailer);
          if (++this.trailerBytes > this.maxTrailerBytes) return this.fail(CHUNK_ERR.trailerTooLarge);
          break;
        case S.TrailerValue:
          if (c === Byte.CR) {
            state = S.TrailerLf;
            i++;
            break;
          }
          if (FIELD_VALUE[c] !== 1) return this.fail(CHUNK_ERR.badTrailer);
          if (++this.trailerBytes > this.maxTrailerBytes) return this.fail(CHUNK_ERR.trailerTooLarge);
          i++;
          break;
        case S.TrailerLf:
          if (c !== Byte.LF) return this.fail(CHUNK_ERR.badTrailer);
          state = S.TrailerLineStart;
          i++;
          break;
        case S.FinalLf:
          if (c !== Byte.LF) return this.fail(CHUNK_ERR.badLineEnd);
          this.state = S.Done;
          return i + 1;
        case S.Done:
          return i;
        default:
          return -2;
      }
    }
    this.state = state;
    return -1;
  }

  private fail(err: ParseError): number {
    this.state = S.Failed;
    this.error = err;
    return -2;
  }
}

/** Frames data as one chunk (size line, data, CRLF) for a client that gets a re-chunked body. */
export function chunkHeader(length: number): string {
  return `${length.toString(16)}\r\n`;
}
