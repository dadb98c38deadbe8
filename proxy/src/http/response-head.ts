// The upstream response head parser. As strict as the request side: a response the proxy
// cannot frame without guessing (both Content-Length and Transfer-Encoding, two lengths, an
// unknown transfer coding) is refused and answered 502, never passed on for the client to guess.
import { Byte, equalsLowerValue } from './chars.js';
import { H } from './header-names.js';
import { F, ERR, INCOMPLETE, MessageHead, ParseError, parseDecimal, parseFieldLines } from './head.js';
import { markConnectionTokens, parseConnection, CONN_CLOSE, CONN_KEEP_ALIVE, CONN_OTHER, CONN_INVALID } from './connection-header.js';

export const RESPONSE_ERR = {
  tooLarge: new ParseError(502, 'response head too large'),
  badLength: new ParseError(502, 'invalid or repeated Content-Length in the response'),
  lengthAndChunked: new ParseError(502, 'response with both Content-Length and Transfer-Encoding'),
  badTransferEncoding: new ParseError(502, 'response Transfer-Encoding other than a single chunked'),
  badConnection: new ParseError(502, 'invalid Connection header in the response'),
} as const;

export class ResponseHead extends MessageHead {
  status = 0;
  version = 11;
  /** End of the status line without its CRLF. */
  statusLineEnd = 0;
  contentLength = -1;
  chunked = false;
  /** The upstream will close after this response (Connection: close, or HTTP/1.0 without keep-alive). */
  close = false;
  /** Keep-Alive: timeout=N in ms; -1 when not sent. */
  keepAliveTimeoutMs = -1;
  /**
   * Where the body ends in `buf` when all of it came in the same read as the head (`end` for a
   * response without a body); -1 when the body comes (or came) in pieces of its own.
   */
  bodyEnd = -1;
}

/** Keep-Alive: timeout=N (RFC 2068 19.7.1.1), parameters separated by commas; -1 when absent or malformed. */
function parseKeepAliveTimeout(buf: Buffer, start: number, end: number): number {
  let i = start;
  while (i < end) {
    while (i < end && (buf[i] === 0x20 || buf[i] === 0x09 || buf[i] === 0x2c)) i++;
    if (end - i > 8 && (buf[i]! | 0x20) === 0x74 && (buf[i + 1]! | 0x20) === 0x69 && (buf[i + 2]! | 0x20) === 0x6d && (buf[i + 3]! | 0x20) === 0x65 &&
      (buf[i + 4]! | 0x20) === 0x6f && (buf[i + 5]! | 0x20) === 0x75 && (buf[i + 6]! | 0x20) === 0x74) {
      let j = i + 7;
      while (j < end && (buf[j] === 0x20 || buf[j] === 0x09)) j++;
      if (buf[j] === 0x3d) {
        j++;
        while (j < end && (buf[j] === 0x20 || buf[j] === 0x09)) j++;
        let n = 0;
        let digits = 0;
        while (j < end && buf[j]! >= 0x30 && buf[j]! <= 0x39 && digits < 9) {
          n = n * 10 + buf[j]! - 0x30;
          j++;
          digits++;
        }
        if (digits > 0) return n * 1000;
      }
    }
    while (i < end && buf[i] !== 0x2c) i++;
  }
  return -1;
}

/**
 * Parses a response head starting at `start`, reading no further than `end`; INCOMPLETE when
 * the bytes stop before the head does.
 */
export function parseResponseHead(buf: Buffer, start: number, end: number, maxHeaderBytes: number, maxFields: number): ResponseHead | ParseError {
  const r = parseResponseHeadUnbounded(buf, start, Math.min(end, start + maxHeaderBytes), maxFields);
  if (r === INCOMPLETE && end - start >= maxHeaderBytes) return RESPONSE_ERR.tooLarge;
  return r;
}

function parseResponseHeadUnbounded(buf: Buffer, start: number, end: number, maxFields: number): ResponseHead | ParseError {
  const head = new ResponseHead(buf, start);
  let i = start;
  if (i + 13 > end) {
    const want = 'HTTP/1.';
    for (let k = 0; k < want.length && i + k < end; k++) if (buf[i + k] !== want.charCodeAt(k)) return ERR.badStatus;
    return INCOMPLETE;
  }
  if (
    buf[i] !== 0x48 || buf[i + 1] !== 0x54 || buf[i + 2] !== 0x54 || buf[i + 3] !== 0x50 ||
    buf[i + 4] !== 0x2f || buf[i + 5] !== 0x31 || buf[i + 6] !== 0x2e || buf[i + 8] !== Byte.SP
  ) return ERR.badStatus;
  const minor = buf[i + 7];
  if (minor === 0x31) head.version = 11;
  else if (minor === 0x30) head.version = 10;
  else return ERR.badStatus;
  i += 9;
  const d0 = buf[i]! - 0x30;
  const d1 = buf[i + 1]! - 0x30;
  const d2 = buf[i + 2]! - 0x30;
  if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return ERR.badStatus;
  head.status = d0 * 100 + d1 * 10 + d2;
  i += 3;
  // reason-phrase: SP *( HTAB / SP / VCHAR / obs-text ); some servers omit the SP when it is empty.
  if (buf[i] === Byte.SP) {
    i++;
    for (; i < end && buf[i] !== Byte.CR; i++) {
      const c = buf[i]!;
      if (c === Byte.LF || (c < 0x20 && c !== 0x09) || c === 0x7f) return ERR.badStatus;
    }
  }
  if (i + 1 >= end) return INCOMPLETE;
  if (buf[i] !== Byte.CR) return ERR.badStatus;
  if (buf[i + 1] !== Byte.LF) return ERR.bareCr;
  head.statusLineEnd = i;
  i += 2;
  const err = parseFieldLines(head, i, end, maxFields);
  if (err) return err === INCOMPLETE ? err : err.status === 431 ? RESPONSE_ERR.tooLarge : new ParseError(502, `response: ${err.message}`);

  const f = head.f;
  let keepAlive = false;
  let connectionOther = false;
  for (let k = 0; k < head.count; k++) {
    const id = f[k * F.SIZE + F.ID]!;
    if (id === 0) continue;
    const vs = f[k * F.SIZE + F.VALUE]!;
    const ve = f[k * F.SIZE + F.VALUE_END]!;
    switch (id) {
      case H.CONTENT_LENGTH: {
        const n = parseDecimal(buf, vs, ve);
        if (n < 0 || head.contentLength >= 0) return RESPONSE_ERR.badLength;
        head.contentLength = n;
        break;
      }
      case H.TRANSFER_ENCODING:
        if (head.chunked || !equalsLowerValue(buf, vs, ve, 'chunked')) return RESPONSE_ERR.badTransferEncoding;
        head.chunked = true;
        break;
      case H.CONNECTION: {
        const flags = parseConnection(buf, vs, ve);
        if (flags & CONN_INVALID) return RESPONSE_ERR.badConnection;
        if (flags & CONN_CLOSE) head.close = true;
        if (flags & CONN_KEEP_ALIVE) keepAlive = true;
        if (flags & CONN_OTHER) connectionOther = true;
        head.markDrop(k);
        break;
      }
      case H.KEEP_ALIVE:
        head.keepAliveTimeoutMs = parseKeepAliveTimeout(buf, vs, ve);
        head.markDrop(k);
        break;
      case H.PROXY_CONNECTION:
      case H.TE:
      case H.TRAILER:
      case H.UPGRADE:
      case H.PROXY_AUTHORIZATION:
      case H.PROXY_AUTHENTICATE:
        head.markDrop(k);
        break;
    }
  }
  if (head.chunked && head.contentLength >= 0) return RESPONSE_ERR.lengthAndChunked;
  if (head.chunked && head.version === 10) return RESPONSE_ERR.badTransferEncoding;
  if (head.version === 10 && !keepAlive) head.close = true;
  if (connectionOther) markConnectionTokens(head);
  return head;
}
