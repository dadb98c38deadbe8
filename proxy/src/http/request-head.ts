// The request head parser (RFC 9112, strict where leniency enables request smuggling):
// exactly one SP between the parts of the request line, HTTP/1.0 or HTTP/1.1 only, one Host on
// 1.1, never both Content-Length and Transfer-Encoding, one Content-Length, Transfer-Encoding
// only as a single "chunked" (and never on 1.0), no obs-fold, no bare CR/LF, no controls.
import { Byte, HOST, TARGET, TCHAR, latin1, equalsLowerValue } from './chars.js';
import { H } from './header-names.js';
import { F, ERR, INCOMPLETE, MessageHead, ParseError, parseDecimal, parseFieldLines } from './head.js';
import { markConnectionTokens, parseConnection, CONN_CLOSE, CONN_KEEP_ALIVE, CONN_OTHER, CONN_INVALID } from './connection-header.js';

export interface HeadLimits {
  /** Largest head in bytes (request line, fields and the closing CRLF); 431 beyond. */
  maxHeaderBytes: number;
  /** Most field lines; 431 beyond. */
  maxHeaderFields: number;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export class RequestHead extends MessageHead {
  method = '';
  /** The request-target as received (origin-form, "*", or absolute-form). */
  target = '';
  /** Path and query sent upstream: the target itself, or its path part for an absolute-form target. */
  originTarget = '';
  /** The path without the query, for routing. */
  path = '';
  /** 10 or 11. */
  version = 11;
  /** The Host value (or the absolute-form target's authority), as sent. */
  host = '';
  /** Declared Content-Length; -1 when absent. */
  contentLength = -1;
  chunked = false;
  /** The client asked to close after this request (1.1 "close", or 1.0 without "keep-alive"). */
  close = false;
  expectContinue = false;
  /** Index of the first x-forwarded-for field, or -1 (all of them are merged into one). */
  forwardedFor = -1;
  hasForwardedProto = false;
  hasForwardedHost = false;
  hasRequestId = false;
  hasIdempotencyKey = false;
  /** Smallest of x-tsmesh-timeout-ms and grpc-timeout in ms; -1 when neither was sent. */
  timeoutMs = -1;
  /** True when the request line must be rewritten (absolute-form target or HTTP/1.0 client). */
  rewriteStartLine = false;
  /** The target was in absolute-form: its authority replaces the Host field upstream. */
  absoluteForm = false;
  /** Byte offsets of the request-target inside buf. */
  targetStart = 0;
  targetEnd = 0;

  get idempotent(): boolean {
    return this.hasIdempotencyKey || IDEMPOTENT.has(this.method);
  }

  /** Whether the request has a body: a declared length above zero, or chunked. */
  get hasBody(): boolean {
    return this.chunked || this.contentLength > 0;
  }
}

function methodString(buf: Buffer, s: number, e: number): string {
  // Interned strings for the common methods: no allocation, and Set/compare hits are cheap.
  const c = buf[s];
  switch (e - s) {
    case 3:
      if (c === 0x47 && buf[s + 1] === 0x45 && buf[s + 2] === 0x54) return 'GET';
      if (c === 0x50 && buf[s + 1] === 0x55 && buf[s + 2] === 0x54) return 'PUT';
      break;
    case 4:
      if (c === 0x50 && buf[s + 1] === 0x4f && buf[s + 2] === 0x53 && buf[s + 3] === 0x54) return 'POST';
      if (c === 0x48 && buf[s + 1] === 0x45 && buf[s + 2] === 0x41 && buf[s + 3] === 0x44) return 'HEAD';
      break;
    case 6:
      if (latin1(buf, s, e) === 'DELETE') return 'DELETE';
      break;
  }
  return latin1(buf, s, e);
}

const GRPC_UNIT_MS: Record<number, number> = { 0x48: 3_600_000, 0x4d: 60_000, 0x53: 1000, 0x6d: 1, 0x75: 0.001, 0x6e: 0.000001 };

/** grpc-timeout: 1-8 digits and a unit (H M S m u n); -1 when malformed. */
function parseGrpcTimeout(buf: Buffer, s: number, e: number): number {
  if (e - s < 2 || e - s > 9) return -1;
  const unit = GRPC_UNIT_MS[buf[e - 1]!];
  const n = parseDecimal(buf, s, e - 1);
  if (unit === undefined || n < 0) return -1;
  return Math.ceil(n * unit);
}

/** Notes a field whose absence the proxy acts on (it adds its own, or does not retry). */
function noteSent(head: RequestHead, id: number): void {
  switch (id) {
    case H.X_FORWARDED_PROTO:
      head.hasForwardedProto = true;
      break;
    case H.X_FORWARDED_HOST:
      head.hasForwardedHost = true;
      break;
    case H.X_REQUEST_ID:
      head.hasRequestId = true;
      break;
    case H.IDEMPOTENCY_KEY:
    case H.X_IDEMPOTENCY_KEY:
      head.hasIdempotencyKey = true;
      break;
  }
}

/** Notes again, from the fields that are kept, what noteSent noted from all of them. */
function noteKeptFields(head: RequestHead): void {
  head.hasForwardedProto = head.hasForwardedHost = head.hasRequestId = head.hasIdempotencyKey = false;
  const f = head.f;
  for (let k = 0; k < head.count; k++) if (!head.isDropped(k)) noteSent(head, f[k * F.SIZE + F.ID]!);
}

/** Strings of a connection's last request that the next one may reuse (see parseRequestHead). */
export interface PreviousRequest {
  /** A Host field value (never an absolute-form authority); '' for none. */
  host: string;
  /** An origin-form target and its path; '' for none. */
  target: string;
  path: string;
}

/** Shared, never written: no previous request. */
const NO_PREVIOUS: PreviousRequest = Object.freeze({ host: '', target: '', path: '' });

/** Whether buf[start, end) holds exactly the characters of `text` (case-sensitive). */
function sameText(buf: Buffer, start: number, end: number, text: string): boolean {
  if (end - start !== text.length || text.length === 0) return false;
  for (let i = 0; i < text.length; i++) if (buf[start + i] !== text.charCodeAt(i)) return false;
  return true;
}

/**
 * Parses the request head that starts at `start`, reading no further than `end` (the end of
 * the bytes received). Returns the head (its `end` is where the body starts), INCOMPLETE when
 * the bytes stop before the head does, or the error to answer with. The head is checked
 * against limits.maxHeaderBytes whether complete or not. `previous`, when given, holds the
 * Host and origin-form target of the connection's last request (checked then): when this
 * request's bytes are the same, those strings are used, with no check and no new string (a
 * keep-alive client sends one Host, and often asks for one resource again); it is updated.
 */
export function parseRequestHead(buf: Buffer, start: number, end: number, limits: HeadLimits, previous?: PreviousRequest): RequestHead | ParseError {
  const r = parseRequestHeadUnbounded(buf, start, Math.min(end, start + limits.maxHeaderBytes), limits, previous ?? NO_PREVIOUS);
  // Running out of allowed bytes before the head ended means it is too large.
  if (r === INCOMPLETE && end - start >= limits.maxHeaderBytes) return ERR.headTooLarge;
  return r;
}

function parseRequestHeadUnbounded(buf: Buffer, start: number, end: number, limits: HeadLimits, previous: PreviousRequest): RequestHead | ParseError {
  const head = new RequestHead(buf, start);
  let i = start;
  // Byte tables as locals (an imported binding is read through its module cell at every use).
  const tchar = TCHAR;
  const targetChar = TARGET;

  // method SP
  while (i < end && tchar[buf[i]!] === 1) i++;
  if (i >= end) return INCOMPLETE;
  if (i === start || buf[i] !== Byte.SP) return i === start ? ERR.badMethod : ERR.badStartLine;
  const method = methodString(buf, start, i);
  head.method = method;
  i++;

  // request-target SP
  const ts = i;
  while (i < end && targetChar[buf[i]!] === 1) i++;
  if (i >= end) return INCOMPLETE;
  if (i === ts || buf[i] !== Byte.SP) return ERR.badTarget;
  const te = i;
  head.targetStart = ts;
  head.targetEnd = te;
  i++;

  // HTTP-version CRLF: only HTTP/1.1 and HTTP/1.0
  if (i + 10 > end) {
    // Not all of it yet: refuse early only what can no longer become "HTTP/1.x\r\n".
    const want = 'HTTP/1.';
    for (let k = 0; k < want.length && i + k < end; k++) if (buf[i + k] !== want.charCodeAt(k)) return ERR.badVersion;
    return INCOMPLETE;
  }
  if (
    buf[i] !== 0x48 || buf[i + 1] !== 0x54 || buf[i + 2] !== 0x54 || buf[i + 3] !== 0x50 ||
    buf[i + 4] !== 0x2f || buf[i + 5] !== 0x31 || buf[i + 6] !== 0x2e
  ) return ERR.badVersion;
  const minor = buf[i + 7];
  if (minor === 0x31) head.version = 11;
  else if (minor === 0x30) head.version = 10;
  else return ERR.badVersion;
  i += 8;
  if (buf[i] !== Byte.CR) return buf[i] === Byte.LF ? ERR.bareLf : ERR.badVersion;
  if (buf[i + 1] !== Byte.LF) return ERR.bareCr;
  i += 2;

  const err = parseFieldLines(head, i, end, limits.maxHeaderFields);
  if (err) return err;

  // Field semantics: framing, Host, Connection, and the fields the proxy replaces.
  const f = head.f;
  let hostIndex = -1;
  let hosts = 0;
  let transferEncodings = 0;
  let connectionOther = false;
  let keepAlive = false;
  for (let k = 0; k < head.count; k++) {
    const id = f[k * F.SIZE + F.ID]!;
    if (id === 0) continue;
    const vs = f[k * F.SIZE + F.VALUE]!;
    const ve = f[k * F.SIZE + F.VALUE_END]!;
    switch (id) {
      case H.HOST:
        hosts++;
        hostIndex = k;
        break;
      case H.CONTENT_LENGTH: {
        if (head.contentLength >= 0) return ERR.repeatedContentLength;
        const n = parseDecimal(buf, vs, ve);
        if (n < 0) return ERR.badContentLength;
        head.contentLength = n;
        break;
      }
      case H.TRANSFER_ENCODING:
        transferEncodings++;
        if (transferEncodings > 1 || !equalsLowerValue(buf, vs, ve, 'chunked')) return ERR.badTransferEncoding;
        head.chunked = true;
        break;
      case H.CONNECTION: {
        const flags = parseConnection(buf, vs, ve);
        if (flags & CONN_INVALID) return ERR.badConnection;
        if (flags & CONN_CLOSE) head.close = true;
        if (flags & CONN_KEEP_ALIVE) keepAlive = true;
        if (flags & CONN_OTHER) connectionOther = true;
        head.markDrop(k);
        break;
      }
      case H.KEEP_ALIVE:
      case H.PROXY_CONNECTION:
      case H.TE:
      case H.TRAILER:
      case H.UPGRADE:
      case H.PROXY_AUTHORIZATION:
      case H.PROXY_AUTHENTICATE:
        head.markDrop(k);
        break;
      case H.EXPECT:
        if (equalsLowerValue(buf, vs, ve, '100-continue')) head.expectContinue = true;
        break;
      case H.X_FORWARDED_FOR:
        if (head.forwardedFor < 0) head.forwardedFor = k;
        head.markDrop(k);
        break;
      case H.X_TSMESH_TIMEOUT_MS: {
        // Replaced by the remaining time of each attempt; a malformed value is ignored, not trusted.
        const n = parseDecimal(buf, vs, ve);
        if (n >= 0 && (head.timeoutMs < 0 || n < head.timeoutMs)) head.timeoutMs = n;
        head.markDrop(k);
        break;
      }
      case H.GRPC_TIMEOUT: {
        const n = parseGrpcTimeout(buf, vs, ve);
        if (n >= 0 && (head.timeoutMs < 0 || n < head.timeoutMs)) head.timeoutMs = n;
        break;
      }
      default:
        noteSent(head, id);
    }
  }

  if (head.chunked) {
    if (head.contentLength >= 0) return ERR.lengthAndChunked;
    if (head.version === 10) return ERR.chunkedHttp10;
  }
  if (hosts > 1) return ERR.repeatedHost;
  if (hosts === 0 && head.version === 11) return ERR.missingHost;
  if (hostIndex >= 0) {
    const vs = f[hostIndex * F.SIZE + F.VALUE]!;
    const ve = f[hostIndex * F.SIZE + F.VALUE_END]!;
    if (sameText(buf, vs, ve, previous.host)) head.host = previous.host;
    else {
      const hostChar = HOST;
      for (let p = vs; p < ve; p++) if (hostChar[buf[p]!] !== 1) return ERR.badHost;
      head.host = latin1(buf, vs, ve);
      if (previous !== NO_PREVIOUS) previous.host = head.host;
    }
  }
  if (head.version === 10) {
    head.close = !keepAlive || head.close;
    head.rewriteStartLine = true;
  }
  if (connectionOther) {
    markConnectionTokens(head);
    // A field the client named in Connection is hop-by-hop: it is dropped, so it does not count
    // as sent (the proxy sets its own x-forwarded-proto/-host and x-request-id instead).
    noteKeptFields(head);
  }
  if (method === 'CONNECT') return ERR.unsupportedMethod;

  // request-target forms (RFC 9112 3.2): origin-form, asterisk-form (OPTIONS only), absolute-form.
  const first = buf[ts];
  if (first === 0x2f) {
    if (sameText(buf, ts, te, previous.target)) {
      head.target = head.originTarget = previous.target;
      head.path = previous.path;
    } else {
      const target = latin1(buf, ts, te);
      head.target = target;
      head.originTarget = target;
      const q = target.indexOf('?');
      head.path = q < 0 ? target : target.slice(0, q);
      if (previous !== NO_PREVIOUS) {
        previous.target = target;
        previous.path = head.path;
      }
    }
  } else if (first === 0x2a) {
    if (te - ts !== 1 || method !== 'OPTIONS') return ERR.badTarget;
    head.target = head.originTarget = head.path = '*';
  } else {
    const target = latin1(buf, ts, te);
    const m = /^https?:\/\/([^/?#@]*)([/?][^#]*)?$/i.exec(target);
    if (!m) return ERR.badTarget;
    const authority = m[1]!;
    if (authority === '') return ERR.badTarget;
    for (let p = 0; p < authority.length; p++) if (HOST[authority.charCodeAt(p)] !== 1) return ERR.badTarget;
    let origin = m[2] ?? '/';
    if (origin[0] === '?') origin = '/' + origin;
    head.target = target;
    head.originTarget = origin;
    const q = origin.indexOf('?');
    head.path = q < 0 ? origin : origin.slice(0, q);
    // RFC 9112 3.2.2: the authority of an absolute-form target replaces Host.
    head.host = authority;
    head.rewriteStartLine = true;
    head.absoluteForm = true;
    if (hostIndex >= 0) head.markDrop(hostIndex);
  }
  return head;
}

