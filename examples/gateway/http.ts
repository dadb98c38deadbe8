// The small HTTP pieces of the gateway: JSON answers and a size-bounded body reader that
// stops at the limit instead of buffering whatever a client sends.
import type { IncomingMessage, ServerResponse } from 'node:http';

export const MAX_BODY_BYTES = 64 * 1024;

export function sendJson(res: ServerResponse, status: number, body: string, headers?: Record<string, string>): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  if (headers) for (const k in headers) res.setHeader(k, headers[k]!);
  res.end(body);
}

export function sendError(res: ServerResponse, status: number, error: string, headers?: Record<string, string>): void {
  sendJson(res, status, JSON.stringify({ error, status }), headers);
}

export type BodyResult = { readonly ok: true; readonly body: Buffer } | { readonly ok: false; readonly tooLarge: boolean };

/**
 * Reads the request body up to `limit` bytes. A declared Content-Length over the limit is
 * refused before a byte is read; a chunked body is refused when it crosses the limit.
 */
export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<BodyResult> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.resolve({ ok: false, tooLarge: true });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (r: BodyResult) => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onError);
      resolve(r);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        chunks.length = 0;
        req.pause();
        finish({ ok: false, tooLarge: true });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish({ ok: true, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
    // 'close' before 'end': the client went away mid-body.
    const onError = () => finish({ ok: false, tooLarge: false });
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onError);
  });
}

/**
 * Answers 413 and closes the connection: the rest of the body is never read, so the socket
 * cannot be reused. The close is delayed a little so that the client, still sending, gets to
 * read the answer before the kernel turns unread bytes into a reset.
 */
export function rejectTooLarge(req: IncomingMessage, res: ServerResponse, limit = MAX_BODY_BYTES): void {
  sendError(res, 413, `request body larger than ${limit} bytes`, { Connection: 'close' });
  const socket = req.socket;
  res.once('finish', () => {
    socket.end();
    const t = setTimeout(() => socket.destroy(), 1000);
    t.unref();
    socket.once('close', () => clearTimeout(t));
  });
}
