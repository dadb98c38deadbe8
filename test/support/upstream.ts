// A configurable test upstream on port 0 (node:http: it plays the application), counting
// accepted sockets and requests and keeping what it received, so that tests can check what
// reached it (and what did not) through the proxy.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface ReceivedRequest {
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  /** Header names and values as received, in order. */
  readonly rawHeaders: string[];
  readonly headers: IncomingMessage['headers'];
  body: Buffer;
  /** The client (the proxy) closed the request before the response was finished. */
  aborted: boolean;
  readonly socketId: number;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, received: ReceivedRequest) => void;

export interface TestUpstream {
  readonly port: number;
  readonly address: string;
  readonly server: Server;
  /** Sockets accepted so far. */
  readonly accepted: number;
  readonly received: ReceivedRequest[];
  handler: UpstreamHandler;
  /** Sockets open now. */
  readonly openSockets: Set<Socket>;
  /** Resolves when `n` requests have arrived. */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Answers 200 with a small JSON body naming the upstream port and the request. */
export const echoHandler =
  (name: string): UpstreamHandler =>
  (req, res, r) => {
    const body = JSON.stringify({ upstream: name, method: req.method, url: req.url, bytes: r.body.length });
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
    res.end(body);
  };

export async function startUpstream(handler?: UpstreamHandler, opts: { keepAliveTimeout?: number } = {}): Promise<TestUpstream> {
  let accepted = 0;
  const received: ReceivedRequest[] = [];
  const openSockets = new Set<Socket>();
  const socketIds = new WeakMap<Socket, number>();
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const up = {
    handler: handler ?? (undefined as unknown as UpstreamHandler),
  } as { handler: UpstreamHandler };
  const server = createServer((req, res) => {
    const r: ReceivedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      httpVersion: req.httpVersion,
      rawHeaders: req.rawHeaders,
      headers: req.headers,
      body: Buffer.alloc(0),
      aborted: false,
      socketId: socketIds.get(req.socket) ?? -1,
    };
    received.push(r);
    for (const w of [...waiters]) {
      if (received.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
    res.on('close', () => {
      if (!res.writableFinished) r.aborted = true;
    });
    const chunks: Buffer[] = [];
    let handled = false;
    const run = () => {
      if (handled) return;
      handled = true;
      r.body = Buffer.concat(chunks);
      up.handler(req, res, r);
    };
    // Handlers that look at headers only (e.g. to test 100-continue or early answers) run at once.
    if ((up.handler as { early?: boolean }).early) {
      handled = true;
      req.on('data', (c: Buffer) => {
        chunks.push(c);
        r.body = Buffer.concat(chunks);
      });
      up.handler(req, res, r);
      return;
    }
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', run);
  });
  server.keepAliveTimeout = opts.keepAliveTimeout ?? 65_000;
  server.on('connection', (s: Socket) => {
    accepted++;
    socketIds.set(s, accepted);
    openSockets.add(s);
    s.on('close', () => openSockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  if (!up.handler) up.handler = echoHandler(String(port));
  return {
    port,
    address: `127.0.0.1:${port}`,
    server,
    get accepted() {
      return accepted;
    },
    received,
    get handler() {
      return up.handler;
    },
    set handler(h: UpstreamHandler) {
      up.handler = h;
    },
    openSockets,
    waitForRequests(n: number, timeoutMs = 5000) {
      if (received.length >= n) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`upstream saw ${received.length} requests, expected ${n}`)), timeoutMs);
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
        });
      });
    },
    close() {
      return new Promise<void>((resolve) => {
        for (const s of openSockets) s.destroy();
        server.close(() => resolve());
      });
    },
  };
}
