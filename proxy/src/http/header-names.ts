// The header names the proxy acts on, recognised from bytes without making strings: a
// switch on the name's length, then one case-insensitive compare. Every other name is H.OTHER
// and passes through untouched.
import { equalsLowerToken } from './chars.js';

/** A const enum (tsc writes literals at every use, as for Byte in chars.ts). */
export const enum H {
  OTHER = 0,
  HOST = 1,
  CONTENT_LENGTH = 2,
  TRANSFER_ENCODING = 3,
  CONNECTION = 4,
  KEEP_ALIVE = 5,
  PROXY_CONNECTION = 6,
  TE = 7,
  TRAILER = 8,
  UPGRADE = 9,
  PROXY_AUTHORIZATION = 10,
  PROXY_AUTHENTICATE = 11,
  EXPECT = 12,
  X_FORWARDED_FOR = 13,
  X_FORWARDED_PROTO = 14,
  X_FORWARDED_HOST = 15,
  X_REQUEST_ID = 16,
  X_TSMESH_TIMEOUT_MS = 17,
  GRPC_TIMEOUT = 18,
  IDEMPOTENCY_KEY = 19,
  X_IDEMPOTENCY_KEY = 20,
}

export type HeaderId = H;

const b = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
const N = {
  te: b('te'),
  host: b('host'),
  expect: b('expect'),
  upgrade: b('upgrade'),
  trailer: b('trailer'),
  connection: b('connection'),
  keepAlive: b('keep-alive'),
  xRequestId: b('x-request-id'),
  grpcTimeout: b('grpc-timeout'),
  contentLength: b('content-length'),
  xForwardedFor: b('x-forwarded-for'),
  idempotencyKey: b('idempotency-key'),
  proxyConnection: b('proxy-connection'),
  xForwardedHost: b('x-forwarded-host'),
  transferEncoding: b('transfer-encoding'),
  xForwardedProto: b('x-forwarded-proto'),
  xIdempotencyKey: b('x-idempotency-key'),
  proxyAuthenticate: b('proxy-authenticate'),
  proxyAuthorization: b('proxy-authorization'),
  xTsmeshTimeoutMs: b('x-tsmesh-timeout-ms'),
};

/** Longest name headerId knows. */
const MAX_NAMED_LENGTH = Math.max(...Object.values(N).map((n) => n.length));

/**
 * 1 at (length << 5 | first byte & 0x1f) for the names above (& 0x1f folds the case of a
 * letter): most fields of real heads (Server, Date, Content-Type, User-Agent, Accept, ...) are
 * told to be H.OTHER by one lookup, without a call. Other bytes may share a slot; headerId
 * still compares the whole name.
 */
const NAMED = (() => {
  const t = new Uint8Array((MAX_NAMED_LENGTH + 1) << 5);
  for (const name of Object.values(N)) t[(name.length << 5) | (name[0]! & 0x1f)] = 1;
  return t;
})();

/** Whether buf[start, end) may be a name headerId knows (false: it is H.OTHER). */
export function mayBeNamed(buf: Buffer, start: number, end: number): boolean {
  const len = end - start;
  return len <= MAX_NAMED_LENGTH && NAMED[(len << 5) | (buf[start]! & 0x1f)] === 1;
}

/** Identifies the field name in buf[start, end) (already validated as a token). */
export function headerId(buf: Buffer, start: number, end: number): HeaderId {
  switch (end - start) {
    case 2:
      return equalsLowerToken(buf, start, N.te) ? H.TE : H.OTHER;
    case 4:
      return equalsLowerToken(buf, start, N.host) ? H.HOST : H.OTHER;
    case 6:
      return equalsLowerToken(buf, start, N.expect) ? H.EXPECT : H.OTHER;
    case 7:
      if (equalsLowerToken(buf, start, N.upgrade)) return H.UPGRADE;
      return equalsLowerToken(buf, start, N.trailer) ? H.TRAILER : H.OTHER;
    case 10:
      if (equalsLowerToken(buf, start, N.connection)) return H.CONNECTION;
      return equalsLowerToken(buf, start, N.keepAlive) ? H.KEEP_ALIVE : H.OTHER;
    case 12:
      if (equalsLowerToken(buf, start, N.xRequestId)) return H.X_REQUEST_ID;
      return equalsLowerToken(buf, start, N.grpcTimeout) ? H.GRPC_TIMEOUT : H.OTHER;
    case 14:
      return equalsLowerToken(buf, start, N.contentLength) ? H.CONTENT_LENGTH : H.OTHER;
    case 15:
      if (equalsLowerToken(buf, start, N.xForwardedFor)) return H.X_FORWARDED_FOR;
      return equalsLowerToken(buf, start, N.idempotencyKey) ? H.IDEMPOTENCY_KEY : H.OTHER;
    case 16:
      if (equalsLowerToken(buf, start, N.proxyConnection)) return H.PROXY_CONNECTION;
      return equalsLowerToken(buf, start, N.xForwardedHost) ? H.X_FORWARDED_HOST : H.OTHER;
    case 17:
      if (equalsLowerToken(buf, start, N.transferEncoding)) return H.TRANSFER_ENCODING;
      if (equalsLowerToken(buf, start, N.xForwardedProto)) return H.X_FORWARDED_PROTO;
      return equalsLowerToken(buf, start, N.xIdempotencyKey) ? H.X_IDEMPOTENCY_KEY : H.OTHER;
    case 18:
      return equalsLowerToken(buf, start, N.proxyAuthenticate) ? H.PROXY_AUTHENTICATE : H.OTHER;
    case 19:
      if (equalsLowerToken(buf, start, N.proxyAuthorization)) return H.PROXY_AUTHORIZATION;
      return equalsLowerToken(buf, start, N.xTsmeshTimeoutMs) ? H.X_TSMESH_TIMEOUT_MS : H.OTHER;
    default:
      return H.OTHER;
  }
}

/** Hop-by-hop fields (RFC 9110 7.6.1 plus the legacy ones): never forwarded. */
export function isHopByHop(id: HeaderId): boolean {
  return (
    id === H.CONNECTION ||
    id === H.KEEP_ALIVE ||
    id === H.PROXY_CONNECTION ||
    id === H.TE ||
    id === H.TRAILER ||
    id === H.UPGRADE ||
    id === H.PROXY_AUTHORIZATION ||
    id === H.PROXY_AUTHENTICATE
  );
}
