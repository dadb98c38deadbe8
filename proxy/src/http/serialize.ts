// Heads the proxy writes, each built into one exactly-sized Buffer so that a head (and, when
// it fits, the first body bytes) leaves in one socket write. Kept field lines are copied as
// byte ranges from the received head, unchanged and in order (repeated fields too), never
// re-encoded. Added lines are written from pre-encoded names and flat strings or digits:
// no string concatenation on the request path (bench:hotpath measured cons strings and
// Buffer views among its larger costs).
import { Byte, copyBytes, writeLatin1 } from './chars.js';
import { F, type MessageHead } from './head.js';
import { H } from './header-names.js';
import type { RequestHead } from './request-head.js';
import type { ResponseHead } from './response-head.js';

const enc = (s: string) => Buffer.from(s, 'latin1');
const CRLF = enc('\r\n');
const XFF = enc('x-forwarded-for: ');
const XFF_SEP = enc(', ');
const XFP = enc('x-forwarded-proto: http\r\n');
const XFH = enc('x-forwarded-host: ');
const XRID = enc('x-request-id: ');
const HOST = enc('host: ');
const TIMEOUT = enc('x-tsmesh-timeout-ms: ');
const ATTEMPTS = enc('x-tsmesh-attempts: ');
/** The usual end of a response head: one attempt, no Connection field to add. */
const ATTEMPTS_1_END = enc('x-tsmesh-attempts: 1\r\n\r\n');
const CONN_CLOSE = enc('connection: close\r\n');
const CONN_KEEP_ALIVE = enc('connection: keep-alive\r\n');
const SP_HTTP11 = enc(' HTTP/1.1\r\n');

/** Bytes of the field lines that are forwarded (not dropped). */
export function keptFieldsLength(head: MessageHead): number {
  const f = head.f;
  let n = 0;
  for (let k = 0; k < head.count; k++) if (!head.isDropped(k)) n += f[k * F.SIZE + F.LINE_END]! - f[k * F.SIZE + F.LINE]!;
  return n;
}

/** Copies the kept field lines into out at offset, merging adjacent lines into one copy. */
export function copyKeptFields(head: MessageHead, out: Buffer, offset: number): number {
  return copyRuns(head, out, offset, -1, -1);
}

/**
 * Copies the start line as received and the kept field lines after it, merging adjacent
 * lines into one copy: the start line and the fields before the first dropped one are one
 * run, not a short copy of their own (short copies go byte by byte).
 */
export function copyStartAndKeptFields(head: MessageHead, out: Buffer, offset: number): number {
  return copyRuns(head, out, offset, head.start, head.fieldsStart);
}

function copyRuns(head: MessageHead, out: Buffer, offset: number, runStart: number, runEnd: number): number {
  const f = head.f;
  const buf = head.buf;
  if (!head.dropsAny && head.count > 0) {
    return copyBytes(buf, runStart >= 0 ? runStart : f[F.LINE]!, f[(head.count - 1) * F.SIZE + F.LINE_END]!, out, offset);
  }
  for (let k = 0; k < head.count; k++) {
    if (head.isDropped(k)) continue;
    const s = f[k * F.SIZE + F.LINE]!;
    const e = f[k * F.SIZE + F.LINE_END]!;
    if (s === runEnd) {
      runEnd = e;
      continue;
    }
    if (runStart >= 0) offset = copyBytes(buf, runStart, runEnd, out, offset);
    runStart = s;
    runEnd = e;
  }
  if (runStart >= 0) offset = copyBytes(buf, runStart, runEnd, out, offset);
  return offset;
}

/**
 * Writes a whole constant. `set` with a whole array needs no view and costs a flat ~17 ns;
 * a byte loop ~1.4 ns a byte (Node 20, one script timing both): the loop only below 12 bytes.
 */
function put(out: Buffer, o: number, bytes: Buffer): number {
  const n = bytes.length;
  if (n < 12) {
    for (let i = 0; i < n; i++) out[o + i] = bytes[i]!;
  } else out.set(bytes, o);
  return o + n;
}

/** Number of decimal digits of a non-negative integer. */
function digits(n: number): number {
  // Comparisons, not divisions: the numbers written per request (attempts, a timeout in ms,
  // a request counter) are small.
  if (n < 10) return 1;
  if (n < 100) return 2;
  if (n < 1000) return 3;
  if (n < 10000) return 4;
  if (n < 100000) return 5;
  let d = 6;
  for (let m = 1e6; n >= m && d < 17; m *= 10) d++;
  return d;
}

/** Writes a non-negative integer in decimal. */
export function writeDecimal(out: Buffer, n: number, o: number): number {
  const d = digits(n);
  let i = o + d;
  do {
    out[--i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  } while (n > 0);
  return o + d;
}

/**
 * The forwarded fields most requests get, as one run of bytes built once per client
 * connection and Host (again when the Host changes): `x-forwarded-for: <client>`,
 * `x-forwarded-proto`, `x-forwarded-host: <host>`, then `x-request-id: <prefix>` for the
 * requests that need an id (its number follows). One copy of these ~130 bytes instead of nine
 * short ones byte by byte.
 */
export class ForwardBlock {
  readonly bytes: Buffer;
  /** Length of the block without the x-request-id part. */
  readonly withoutId: number;

  constructor(
    client: string,
    readonly host: string,
    requestIdPrefix: Buffer,
  ) {
    this.withoutId = forwardedLength(-1, client, true, host, undefined);
    // A store of its own: a slice of Node's 8 KiB pool would keep the whole pool buffer alive
    // for as long as the connection, idle keep-alive ones included.
    const out = Buffer.allocUnsafeSlow(forwardedLength(-1, client, true, host, requestIdPrefix));
    writeForwarded(out, 0, undefined, client, true, host, requestIdPrefix);
    this.bytes = out;
  }
}

/**
 * Bytes writeForwarded writes: `xffOld` is forwardedForLength(head) (-1: none received); an
 * x-request-id counts up to the end of its prefix (the caller adds the number and CRLF).
 */
function forwardedLength(xffOld: number, client: string, addProto: boolean, host: string | undefined, requestIdPrefix: Buffer | undefined): number {
  let n = XFF.length + (xffOld >= 0 ? xffOld + XFF_SEP.length : 0) + client.length + 2;
  if (addProto) n += XFP.length;
  if (host !== undefined) n += XFH.length + host.length + 2;
  if (requestIdPrefix !== undefined) n += XRID.length + requestIdPrefix.length;
  return n;
}

/**
 * Writes the forwarded fields in their order: x-forwarded-for (the values `head` received,
 * when given, then the client), x-forwarded-proto when `addProto`, x-forwarded-host when a
 * host is given, and `x-request-id: <prefix>` when a prefix is given (its number and CRLF are
 * the caller's). The block of a connection is written by it too, so both ways give one result.
 */
function writeForwarded(out: Buffer, o: number, head: RequestHead | undefined, client: string, addProto: boolean, host: string | undefined, requestIdPrefix: Buffer | undefined): number {
  o = put(out, o, XFF);
  if (head !== undefined) {
    o = writeForwardedFor(head, out, o);
    o = put(out, o, XFF_SEP);
  }
  o = writeLatin1(out, client, o);
  o = put(out, o, CRLF);
  if (addProto) o = put(out, o, XFP);
  if (host !== undefined) {
    o = put(out, o, XFH);
    o = writeLatin1(out, host, o);
    o = put(out, o, CRLF);
  }
  if (requestIdPrefix !== undefined) {
    o = put(out, o, XRID);
    o = put(out, o, requestIdPrefix);
  }
  return o;
}

/** Whether a request's forwarded fields are exactly what a ForwardBlock holds (none received, a Host). */
export function forwardBlockFits(head: RequestHead): boolean {
  return head.forwardedFor < 0 && !head.hasForwardedProto && !head.hasForwardedHost && head.host !== '';
}

/** What the upstream request head needs besides the received head. */
export interface ForwardInfo {
  /** The client connection's block for this request's Host, when forwardBlockFits(head); its client is clientAddress. */
  readonly block: ForwardBlock | undefined;
  readonly clientAddress: string;
  /** x-request-id to add: these bytes then `requestIdNumber` in decimal (when the client sent none). */
  readonly requestIdPrefix: Buffer | undefined;
  readonly requestIdNumber: number;
  readonly timeoutMs: number;
  /** Authority for a Host line when the request had none (HTTP/1.0). */
  readonly endpointAuthority: string;
  /** More field lines, flat [name, value, ...] (an attempt's trace context); undefined when none. */
  readonly extraFields?: readonly string[];
}

/** Length of the received x-forwarded-for values joined by ", " (-1 when none). */
function forwardedForLength(head: RequestHead): number {
  if (head.forwardedFor < 0) return -1;
  const f = head.f;
  let n = -1;
  for (let k = head.forwardedFor; k < head.count; k++) {
    if (f[k * F.SIZE + F.ID] !== H.X_FORWARDED_FOR) continue;
    const len = f[k * F.SIZE + F.VALUE_END]! - f[k * F.SIZE + F.VALUE]!;
    if (len > 0) n += (n < 0 ? 1 : XFF_SEP.length) + len;
  }
  return n;
}

function writeForwardedFor(head: RequestHead, out: Buffer, o: number): number {
  const f = head.f;
  let first = true;
  for (let k = head.forwardedFor; k < head.count; k++) {
    if (f[k * F.SIZE + F.ID] !== H.X_FORWARDED_FOR) continue;
    const s = f[k * F.SIZE + F.VALUE]!;
    const e = f[k * F.SIZE + F.VALUE_END]!;
    if (e === s) continue;
    if (!first) o = put(out, o, XFF_SEP);
    o = copyBytes(head.buf, s, e, out, o);
    first = false;
  }
  return o;
}

/**
 * The request head for one upstream attempt: the request line (as HTTP/1.1), the kept
 * fields, x-forwarded-for (received values, then the client), x-forwarded-proto and
 * x-forwarded-host when absent, x-request-id when absent, the extra fields (trace context),
 * x-tsmesh-timeout-ms, CRLF.
 */
export function buildUpstreamRequest(head: RequestHead, info: ForwardInfo): Buffer {
  const startLen = head.rewriteStartLine ? head.method.length + 1 + head.originTarget.length + SP_HTTP11.length : head.fieldsStart - head.start;
  const xffOld = forwardedForLength(head);
  const client = info.clientAddress;
  const addHost = head.absoluteForm ? head.host : head.version === 10 && head.host === '' ? info.endpointAuthority : undefined;
  const block = info.block;
  const idPrefix = info.requestIdPrefix;
  const addProto = !head.hasForwardedProto;
  const fwdHost = !head.hasForwardedHost && head.host !== '' ? head.host : undefined;
  let size = startLen + keptFieldsLength(head);
  if (addHost !== undefined) size += HOST.length + addHost.length + 2;
  if (block !== undefined) size += idPrefix !== undefined ? block.bytes.length : block.withoutId;
  else size += forwardedLength(xffOld, client, addProto, fwdHost, idPrefix);
  if (idPrefix !== undefined) size += digits(info.requestIdNumber) + 2;
  const extra = info.extraFields;
  if (extra !== undefined) for (let i = 0; i < extra.length; i += 2) size += extra[i]!.length + extra[i + 1]!.length + 4;
  size += TIMEOUT.length + digits(info.timeoutMs) + 4;

  const out = Buffer.allocUnsafe(size);
  let o: number;
  if (head.rewriteStartLine) {
    o = writeLatin1(out, head.method, 0);
    out[o++] = 0x20;
    o = writeLatin1(out, head.originTarget, o);
    o = put(out, o, SP_HTTP11);
    o = copyKeptFields(head, out, o);
  } else o = copyStartAndKeptFields(head, out, 0);
  if (addHost !== undefined) {
    o = put(out, o, HOST);
    o = writeLatin1(out, addHost, o);
    o = put(out, o, CRLF);
  }
  if (block === undefined) o = writeForwarded(out, o, xffOld >= 0 ? head : undefined, client, addProto, fwdHost, idPrefix);
  else if (idPrefix !== undefined) o = put(out, o, block.bytes);
  else o = copyBytes(block.bytes, 0, block.withoutId, out, o);
  if (idPrefix !== undefined) {
    o = writeDecimal(out, info.requestIdNumber, o);
    o = put(out, o, CRLF);
  }
  if (extra !== undefined) {
    for (let i = 0; i < extra.length; i += 2) {
      o = writeLatin1(out, extra[i]!, o);
      out[o++] = 0x3a;
      out[o++] = 0x20;
      o = writeLatin1(out, extra[i + 1]!, o);
      o = put(out, o, CRLF);
    }
  }
  o = put(out, o, TIMEOUT);
  o = writeDecimal(out, info.timeoutMs, o);
  o = put(out, o, CRLF);
  o = put(out, o, CRLF);
  return o === size ? out : out.subarray(0, o);
}

/**
 * The response head for the client: the upstream's status line (as HTTP/1.1), its kept
 * fields, x-tsmesh-attempts, a Connection field when the proxy's choice needs saying, then
 * `bodyLen` bytes of room for the first body bytes (copied by the caller at `bodyAt`).
 */
export function buildResponseHead(head: ResponseHead, attempts: number, connection: 'close' | 'keep-alive' | undefined, bodyLen: number): Buffer {
  const statusLen = head.fieldsStart - head.start;
  const connBytes = connection === 'close' ? CONN_CLOSE : connection === 'keep-alive' ? CONN_KEEP_ALIVE : undefined;
  const headLen = statusLen + keptFieldsLength(head) + ATTEMPTS.length + digits(attempts) + 2 + (connBytes ? connBytes.length : 0) + 2;
  const out = Buffer.allocUnsafe(headLen + bodyLen);
  let o = copyStartAndKeptFields(head, out, 0);
  out[7] = 0x31; // HTTP/1.0 upstream answers go out as HTTP/1.1 (the proxy's own version)
  if (attempts === 1 && connBytes === undefined) {
    put(out, o, ATTEMPTS_1_END);
    return out;
  }
  o = put(out, o, ATTEMPTS);
  o = writeDecimal(out, attempts, o);
  o = put(out, o, CRLF);
  if (connBytes) o = put(out, o, connBytes);
  put(out, o, CRLF);
  return out;
}

/** A dropped line this much longer than the attempts field it is rewritten to is not reused (see below). */
const MAX_IN_PLACE_PADDING = 8;

/**
 * Rewrites a response head in its own buffer for the client, when the one field line it drops
 * is the last (nginx's `Connection: keep-alive`) and has room for `x-tsmesh-attempts`: that
 * line becomes `x-tsmesh-attempts:` + spaces + the count, the spaces being the optional
 * whitespace before a field value (RFC 9112 5.1), which every parser skips. The head and the
 * body after it then go out as they are, with no new buffer and no copy (nginx answers carry
 * exactly that one line). False, changing nothing, when it does not fit: then the head is
 * built anew (buildResponseHead). The head's buffer must be the proxy's own copy of the
 * read; afterwards the head describes the bytes sent (the line is a kept x-tsmesh-attempts).
 */
export function rewriteResponseInPlace(head: ResponseHead, attempts: number): boolean {
  const bits = head.dropBits;
  if (bits === 0 || (bits & (bits - 1)) !== 0 || head.dropBeyond !== undefined) return false;
  const k = 31 - Math.clz32(bits);
  // Only the last field line: x-tsmesh-attempts then comes after every kept field, as
  // buildResponseHead puts it (each hop's count after the counts of the hops behind it).
  if (k !== head.count - 1) return false;
  const f = head.f;
  const at = k * F.SIZE;
  const s = f[at + F.LINE]!;
  const lineEnd = f[at + F.LINE_END]!;
  const d = digits(attempts);
  const pad = lineEnd - s - (ATTEMPTS.length - 1) - d - 2;
  if (pad < 1 || pad > MAX_IN_PLACE_PADDING) return false;
  const buf = head.buf;
  buf[head.start + 7] = 0x31; // HTTP/1.0 upstream answers go out as HTTP/1.1, as in buildResponseHead
  let o = put(buf, s, ATTEMPTS) - 1;
  for (let i = 0; i < pad; i++) buf[o++] = Byte.SP;
  const valueStart = o;
  o = writeDecimal(buf, attempts, o);
  buf[o] = Byte.CR;
  buf[o + 1] = Byte.LF;
  f[at + F.NAME_END] = s + ATTEMPTS.length - 2;
  f[at + F.VALUE] = valueStart;
  f[at + F.VALUE_END] = o;
  f[at + F.ID] = H.OTHER;
  head.dropBits = 0;
  head.version = 11;
  return true;
}

/** Marks the response's Transfer-Encoding field as not forwarded (the body is de-chunked). */
export function dropTransferEncoding(head: ResponseHead): void {
  for (let k = 0; k < head.count; k++) if (head.f[k * F.SIZE + F.ID] === H.TRANSFER_ENCODING) head.markDrop(k);
}

const STATUS_TEXT: Record<number, string> = {
  100: 'Continue', 200: 'OK', 400: 'Bad Request', 404: 'Not Found', 408: 'Request Timeout', 413: 'Content Too Large',
  429: 'Too Many Requests', 431: 'Request Header Fields Too Large', 499: 'Client Closed Request', 500: 'Internal Server Error',
  501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout', 505: 'HTTP Version Not Supported',
};

export function statusText(status: number): string {
  return STATUS_TEXT[status] ?? 'Unknown';
}

/**
 * A response the proxy makes itself: status, x-tsmesh-reason, extra headers, a short text
 * body (omitted for HEAD: `withBody` false). Off the hot path of proxied requests.
 */
export function buildLocalResponse(
  status: number,
  reason: string,
  body: string,
  extraHeaders: ReadonlyArray<readonly [string, string]> | undefined,
  close: boolean,
  attempts: number,
  withBody = true,
): Buffer {
  let text = `HTTP/1.1 ${status} ${statusText(status)}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-tsmesh-reason: ${reason}\r\n`;
  if (attempts > 0) text += `x-tsmesh-attempts: ${attempts}\r\n`;
  if (extraHeaders) for (const [n, v] of extraHeaders) text += `${n}: ${v}\r\n`;
  if (close) text += 'connection: close\r\n';
  text += '\r\n';
  return withBody ? Buffer.from(text + body, 'utf8') : Buffer.from(text, 'latin1');
}
