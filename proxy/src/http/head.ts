// A parsed message head that keeps the bytes it came from. Fields are stored as offsets into
// that buffer (no string per header): forwarding copies the byte ranges of the lines it keeps,
// and a string is made only for the few values the proxy reads, or when a policy asks.
import { Byte, FIELD_VALUE, TCHAR, latin1 } from './chars.js';
import { H, headerId, mayBeNamed, type HeaderId } from './header-names.js';

/** Why a head was refused; `status` is what the proxy answers (400, 431, ...). */
export class ParseError {
  constructor(
    readonly status: number,
    readonly message: string,
  ) {}
}

export const ERR = {
  headTooLarge: new ParseError(431, 'request head too large'),
  tooManyFields: new ParseError(431, 'too many header fields'),
  badStartLine: new ParseError(400, 'malformed start line'),
  badMethod: new ParseError(400, 'invalid method'),
  badTarget: new ParseError(400, 'invalid request-target'),
  badVersion: new ParseError(400, 'unsupported HTTP version'),
  badFieldName: new ParseError(400, 'invalid character in a field name'),
  spaceBeforeColon: new ParseError(400, 'whitespace between a field name and its colon'),
  obsFold: new ParseError(400, 'obsolete line folding'),
  badFieldValue: new ParseError(400, 'invalid character in a field value'),
  bareCr: new ParseError(400, 'CR not followed by LF'),
  bareLf: new ParseError(400, 'LF without CR'),
  missingHost: new ParseError(400, 'missing Host header'),
  repeatedHost: new ParseError(400, 'more than one Host header'),
  badHost: new ParseError(400, 'invalid Host header'),
  badContentLength: new ParseError(400, 'invalid Content-Length'),
  repeatedContentLength: new ParseError(400, 'more than one Content-Length'),
  lengthAndChunked: new ParseError(400, 'both Content-Length and Transfer-Encoding'),
  badTransferEncoding: new ParseError(400, 'Transfer-Encoding other than a single chunked'),
  chunkedHttp10: new ParseError(400, 'Transfer-Encoding in an HTTP/1.0 message'),
  unsupportedMethod: new ParseError(400, 'CONNECT is not supported'),
  badStatus: new ParseError(502, 'malformed status line'),
  badConnection: new ParseError(400, 'invalid Connection header'),
} as const;

/** Offsets kept per field: where its line starts, its name ends, its value starts/ends, its line ends. */
export const enum F {
  LINE = 0,
  NAME_END = 1,
  VALUE = 2,
  VALUE_END = 3,
  LINE_END = 4,
  ID = 5,
  /** Numbers per field. A const enum, as Byte in chars.ts: tsc writes literals, not module-cell reads. */
  SIZE = 6,
}

/** Shared, never written: the fields of a head not parsed (yet). */
const NO_FIELDS: number[] = [];

/**
 * Field offsets are collected here while a head is parsed and copied out exactly sized
 * (heads are parsed one at a time, synchronously): growing each head's own array from empty
 * took two reallocations per head (~600 B per request in a sampling heap profile).
 */
let scratch: number[] = new Array<number>(64 * F.SIZE).fill(0);

export class MessageHead {
  /** The bytes of the head: [start, end) includes the start line and the final empty line. */
  buf: Buffer;
  start: number;
  /** Index just after the start line's CRLF (where the first field line starts). */
  fieldsStart = 0;
  end = 0;
  count = 0;
  /** F.SIZE numbers per field (see F); exactly sized once the fields are parsed. */
  f: number[] = NO_FIELDS;
  /**
   * Fields not to forward (hop-by-hop, replaced by the proxy): bit k for field k < 31, and 1 at
   * the index in `dropBeyond` for the rest. Most responses drop one field (Connection): a bit
   * costs no allocation where a list cost ~200 bytes per response (sampling heap profile).
   */
  dropBits = 0;
  dropBeyond: number[] | undefined = undefined;

  constructor(buf: Buffer, start: number) {
    this.buf = buf;
    this.start = start;
  }

  /** First value of a field by lower-case name; undefined when absent. */
  header(lowerName: string): string | undefined {
    const i = this.indexOf(lowerName, 0);
    return i < 0 ? undefined : this.value(i);
  }

  /** All values of a field, in order. */
  headers(lowerName: string): string[] {
    const out: string[] = [];
    for (let i = this.indexOf(lowerName, 0); i >= 0; i = this.indexOf(lowerName, i + 1)) out.push(this.value(i));
    return out;
  }

  /** Index of the first field named lowerName at or after field `from`, or -1. */
  indexOf(lowerName: string, from: number): number {
    const f = this.f;
    const buf = this.buf;
    const n = lowerName.length;
    outer: for (let i = from; i < this.count; i++) {
      const s = f[i * F.SIZE + F.LINE]!;
      if (f[i * F.SIZE + F.NAME_END]! - s !== n) continue;
      for (let k = 0; k < n; k++) {
        let c = buf[s + k]!;
        if (c >= 0x41 && c <= 0x5a) c |= 0x20;
        if (c !== lowerName.charCodeAt(k)) continue outer;
      }
      return i;
    }
    return -1;
  }

  value(i: number): string {
    return latin1(this.buf, this.f[i * F.SIZE + F.VALUE]!, this.f[i * F.SIZE + F.VALUE_END]!);
  }

  name(i: number): string {
    return latin1(this.buf, this.f[i * F.SIZE + F.LINE]!, this.f[i * F.SIZE + F.NAME_END]!);
  }

  /** Marks field i as not to be forwarded. */
  markDrop(i: number): void {
    if (i < 31) this.dropBits |= 1 << i;
    else (this.dropBeyond ??= [])[i] = 1;
  }

  isDropped(i: number): boolean {
    return i < 31 ? (this.dropBits & (1 << i)) !== 0 : this.dropBeyond !== undefined && this.dropBeyond[i] === 1;
  }

  /** Whether any field is marked not to forward. */
  get dropsAny(): boolean {
    return this.dropBits !== 0 || this.dropBeyond !== undefined;
  }

  id(i: number): HeaderId {
    return this.f[i * F.SIZE + F.ID]! as HeaderId;
  }

  /** Every field as [name, value] pairs in order (names as sent); for logs and tests, not the hot path. */
  entries(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (let i = 0; i < this.count; i++) out.push([this.name(i), this.value(i)]);
    return out;
  }
}

/** Returned by the parsers when the bytes end before the head does (wait for more). */
export const INCOMPLETE = new ParseError(0, 'incomplete head');

/**
 * Parses the field lines of a head from `i` (just after the start line) up to the empty line
 * that closes it, reading no further than `end`. Strict RFC 9112: token names, no whitespace
 * before the colon, no obs-fold, no bare CR or LF, no NUL or other controls. Returns undefined
 * on success (head.end is then set), INCOMPLETE when `end` comes first, or the error.
 */
export function parseFieldLines(head: MessageHead, i: number, end: number, maxFields: number): ParseError | undefined {
  const buf = head.buf;
  // The byte tables as locals: an imported binding is read through its module cell on every
  // use, which in these per-byte loops cost ~15 % of a response head's parse (microbenchmark).
  const tchar = TCHAR;
  const fieldValue = FIELD_VALUE;
  if (scratch.length < maxFields * F.SIZE) scratch = new Array<number>(maxFields * F.SIZE).fill(0);
  const f = scratch;
  let count = 0;
  let n = 0;
  head.fieldsStart = i;
  for (;;) {
    if (i >= end) return INCOMPLETE;
    let c = buf[i]!;
    if (c === Byte.CR) {
      if (i + 1 >= end) return INCOMPLETE;
      if (buf[i + 1] !== Byte.LF) return ERR.bareCr;
      i += 2;
      break;
    }
    const lineStart = i;
    if (c === Byte.SP || c === Byte.HTAB) return ERR.obsFold;
    while (i < end && tchar[buf[i]!] === 1) i++;
    if (i >= end) return INCOMPLETE;
    if (i === lineStart) return c === Byte.LF ? ERR.bareLf : ERR.badFieldName;
    const nameEnd = i;
    c = buf[i]!;
    if (c !== Byte.COLON) return c === Byte.SP || c === Byte.HTAB ? ERR.spaceBeforeColon : c === Byte.LF ? ERR.bareLf : c === Byte.CR ? ERR.bareCr : ERR.badFieldName;
    i++;
    while (i < end && ((c = buf[i]!) === Byte.SP || c === Byte.HTAB)) i++;
    const valueStart = i;
    while (i < end && fieldValue[buf[i]!] === 1) i++;
    if (i + 1 >= end) return INCOMPLETE;
    c = buf[i]!;
    if (c !== Byte.CR) return c === Byte.LF ? ERR.bareLf : ERR.badFieldValue;
    if (buf[i + 1] !== Byte.LF) return ERR.bareCr;
    let valueEnd = i;
    while (valueEnd > valueStart && ((c = buf[valueEnd - 1]!) === Byte.SP || c === Byte.HTAB)) valueEnd--;
    i += 2;
    if (count === maxFields) return ERR.tooManyFields;
    f[n] = lineStart;
    f[n + 1] = nameEnd;
    f[n + 2] = valueStart;
    f[n + 3] = valueEnd;
    f[n + 4] = i;
    f[n + 5] = mayBeNamed(buf, lineStart, nameEnd) ? headerId(buf, lineStart, nameEnd) : H.OTHER;
    n += F.SIZE;
    count++;
  }
  head.count = count;
  head.f = f.slice(0, n);
  head.end = i;
  return undefined;
}

/** Parses 1*15 DIGIT in buf[start, end); -1 when malformed. */
export function parseDecimal(buf: Buffer, start: number, end: number): number {
  if (end <= start || end - start > 15) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

/**
 * Where the head that starts at `start` ends (index after CRLF CRLF), or -1 while incomplete.
 * `from` lets a caller resume the search after more bytes arrived.
 */
export function findHeadEnd(buf: Buffer, start: number, from: number, end: number): number {
  // A head without fields ends with its start line's CRLF followed by CRLF; indexOf finds both cases.
  const at = buf.indexOf(CRLFCRLF, Math.max(start, from));
  return at < 0 || at + 4 > end ? -1 : at + 4;
}

/**
 * While a head is incomplete: true if buf[from, end) holds an LF not preceded by CR, which
 * makes the head invalid now rather than after the header timeout.
 */
export function hasBareLf(buf: Buffer, start: number, from: number, end: number): boolean {
  for (let i = Math.max(from, start); i < end; i++) if (buf[i] === Byte.LF && (i === start || buf[i - 1] !== Byte.CR)) return true;
  return false;
}
