// Heads the proxy writes, built into one Buffer each so that a head (and, when it fits, the
// first body bytes) leaves in one socket write. Kept field lines are copied as byte ranges
// from the received head, unchanged and in order (repeated fields too), never re-encoded.
import { copyBytes, writeLatin1 } from './chars.js';
import { F_LINE, F_LINE_END, F_SIZE, F_VALUE, F_VALUE_END, type MessageHead } from './head.js';
import { H } from './header-names.js';
import type { RequestHead } from './request-head.js';
import type { ResponseHead } from './response-head.js';

/** Bytes of the field lines that are forwarded (not marked in `drop`, and not of id `skipId`). */
export function keptFieldsLength(head: MessageHead): number {
  const f = head.f;
  const drop = head.drop;
  let n = 0;
  for (let k = 0; k < head.count; k++) if (drop[k] === 0) n += f[k * F_SIZE + F_LINE_END]! - f[k * F_SIZE + F_LINE]!;
  return n;
}

/** Copies the kept field lines into out at offset, merging adjacent lines into one copy. */
export function copyKeptFields(head: MessageHead, out: Buffer, offset: number): number {
  const f = head.f;
  const drop = head.drop;
  const buf = head.buf;
  let runStart = -1;
  let runEnd = -1;
  for (let k = 0; k < head.count; k++) {
    if (drop[k] !== 0) continue;
    const s = f[k * F_SIZE + F_LINE]!;
    const e = f[k * F_SIZE + F_LINE_END]!;
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

/** The x-forwarded-for value: the values received (all fields, in order) followed by the client's address. */
function forwardedFor(head: RequestHead, client: string): string {
  if (head.forwardedFor < 0) return client;
  let out = '';
  const f = head.f;
  for (let k = head.forwardedFor; k < head.count; k++) {
    if (f[k * F_SIZE + 5] !== H.X_FORWARDED_FOR) continue;
    const v = head.buf.toString('latin1', f[k * F_SIZE + F_VALUE]!, f[k * F_SIZE + F_VALUE_END]!);
    if (v !== '') out = out === '' ? v : `${out}, ${v}`;
  }
  return out === '' ? client : `${out}, ${client}`;
}

/** Room left at the end of a request prefix for the per-attempt lines (timeout, Host, CRLF). */
const ATTEMPT_ROOM = 48;

/**
 * The upstream request head without its per-attempt lines: the request line (HTTP/1.1), the
 * kept fields, and the x-forwarded-* and x-request-id lines. `prefixEnd` marks where the
 * attempt lines go; the buffer has ATTEMPT_ROOM bytes spare after it.
 */
export class RequestPrefix {
  constructor(
    readonly buf: Buffer,
    readonly prefixEnd: number,
    /** Host line to add per attempt for an HTTP/1.0 request without Host. */
    readonly needsHost: boolean,
  ) {}
  private used = false;

  /** The complete head for one attempt; the first attempt writes into the spare room, later ones copy. */
  forAttempt(timeoutMs: number, endpointAuthority: string): Buffer {
    let tail = `x-tsmesh-timeout-ms: ${timeoutMs}\r\n\r\n`;
    if (this.needsHost) tail = `host: ${endpointAuthority}\r\n${tail}`;
    let out: Buffer;
    if (!this.used && tail.length <= ATTEMPT_ROOM) {
      this.used = true;
      out = this.buf;
    } else {
      out = Buffer.allocUnsafe(this.prefixEnd + tail.length);
      copyBytes(this.buf, 0, this.prefixEnd, out, 0);
    }
    const end = writeLatin1(out, tail, this.prefixEnd);
    return out.subarray(0, end);
  }
}

export function buildRequestPrefix(head: RequestHead, clientAddress: string, requestId: string | undefined): RequestPrefix {
  const xff = forwardedFor(head, clientAddress);
  let extra = `x-forwarded-for: ${xff}\r\n`;
  if (head.absoluteForm) extra = `host: ${head.host}\r\n${extra}`;
  if (!head.hasForwardedProto) extra += 'x-forwarded-proto: http\r\n';
  if (!head.hasForwardedHost && head.host !== '') extra += `x-forwarded-host: ${head.host}\r\n`;
  if (requestId !== undefined) extra += `x-request-id: ${requestId}\r\n`;

  const startLine = head.rewriteStartLine ? `${head.method} ${head.originTarget} HTTP/1.1\r\n` : undefined;
  const startLen = startLine === undefined ? head.fieldsStart - head.start : startLine.length;
  const size = startLen + keptFieldsLength(head) + extra.length;
  const out = Buffer.allocUnsafe(size + ATTEMPT_ROOM);
  let o = startLine === undefined ? copyBytes(head.buf, head.start, head.fieldsStart, out, 0) : writeLatin1(out, startLine, 0);
  o = copyKeptFields(head, out, o);
  o = writeLatin1(out, extra, o);
  return new RequestPrefix(out, o, head.version === 10 && head.host === '' && !head.absoluteForm);
}

/**
 * The response head for the client: the upstream's status line (as HTTP/1.1), its kept fields,
 * x-tsmesh-attempts, a Connection field when the proxy's choice needs saying, then `bodyLen`
 * bytes of room for the first body bytes (copied by the caller). Returns the buffer and where
 * the body bytes go.
 */
export function buildResponseHead(head: ResponseHead, attempts: number, connection: string | undefined, bodyLen: number): { out: Buffer; bodyAt: number } {
  let extra = `x-tsmesh-attempts: ${attempts}\r\n`;
  if (connection !== undefined) extra += `connection: ${connection}\r\n`;
  extra += '\r\n';
  const statusLen = head.fieldsStart - head.start;
  const size = statusLen + keptFieldsLength(head) + extra.length;
  const out = Buffer.allocUnsafe(size + bodyLen);
  let o = copyBytes(head.buf, head.start, head.fieldsStart, out, 0);
  out[7] = 0x31; // HTTP/1.0 upstream answers go out as HTTP/1.1 (the proxy's own version)
  o = copyKeptFields(head, out, o);
  o = writeLatin1(out, extra, o);
  return { out, bodyAt: o };
}

/** Marks the response's Transfer-Encoding field as not forwarded (the body is de-chunked). */
export function dropTransferEncoding(head: ResponseHead): void {
  for (let k = 0; k < head.count; k++) if (head.f[k * F_SIZE + 5] === H.TRANSFER_ENCODING) head.drop[k] = 1;
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
 * A response the proxy makes itself: status, x-tsmesh-reason, extra headers, a short text body.
 * `head` false for a HEAD request (headers only, Content-Length of the body it would have had).
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
