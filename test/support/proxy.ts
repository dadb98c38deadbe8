// Helpers for integration tests of the proxy: a proxy on port 0 from a partial config, raw
// socket clients (for byte-exact requests and responses), and a keep-alive HTTP client.
import { connect, type Socket } from 'node:net';
import { request as httpRequest, Agent, type IncomingHttpHeaders } from 'node:http';
import { proxyConfig, type ProxyConfig } from '../../proxy/src/config/schema.js';
import { startProxy, type ProxyRuntime, type StartProxyOptions } from '../../proxy/src/runtime.js';

/** A config document (YAML shape) with admin and listeners on port 0 unless given. */
export function testConfig(doc: Record<string, unknown>): ProxyConfig {
  const listeners = (doc.listeners as Array<Record<string, unknown>> | undefined)?.map((l) => ({ address: '127.0.0.1:0', ...l }));
  return proxyConfig.parse({ admin: { address: '127.0.0.1:0' }, drain: { delay: '0', timeout: '2s' }, ...doc, listeners });
}

export async function startTestProxy(doc: Record<string, unknown>, opts: Partial<StartProxyOptions> = {}): Promise<ProxyRuntime> {
  return startProxy({ config: testConfig(doc), ...opts });
}

export interface RawResponse {
  /** Everything received, as latin1 text. */
  readonly text: string;
  readonly closed: boolean;
}

/** Sends bytes on a new connection and collects what comes back until the server closes or `waitMs` of silence. */
export function rawRequest(port: number, data: string | Buffer, waitMs = 500): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const done = (closed: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => done(false), waitMs);
    };
    s.on('connect', () => {
      s.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
      arm();
    });
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      arm();
    });
    s.on('close', () => done(true));
    s.on('error', (err) => {
      if (chunks.length > 0) done(true);
      else reject(err);
    });
  });
}

/** A raw client connection that reads until a condition on the received text holds. */
export class RawClient {
  readonly socket: Socket;
  private received = '';
  private waiters: Array<{ check: (t: string) => boolean; resolve: (t: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }> = [];
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.received += d.toString('latin1');
      this.poke();
    });
    socket.on('close', () => {
      this.closed = true;
      this.poke();
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  get text(): string {
    return this.received;
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Resolves with the text received so far once `check` holds (or rejects after timeoutMs). */
  waitFor(check: (text: string) => boolean, timeoutMs = 3000): Promise<string> {
    if (check(this.received)) return Promise.resolve(this.received);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        reject(new Error(`timed out; received so far: ${JSON.stringify(this.received.slice(0, 500))}${this.closed ? ' (closed)' : ''}`));
      }, timeoutMs);
      this.waiters.push({ check, resolve, reject, timer });
    });
  }

  /** Waits for `n` complete responses (heads with Content-Length bodies, or body-less heads). */
  waitForResponses(n: number, timeoutMs = 3000): Promise<string[]> {
    return this.waitFor((t) => splitResponses(t).length >= n, timeoutMs).then((t) => splitResponses(t));
  }

  waitClosed(timeoutMs = 3000): Promise<string> {
    return this.waitFor(() => this.closed, timeoutMs);
  }

  private poke(): void {
    for (const w of [...this.waiters]) {
      if (w.check(this.received) || (this.closed && w.check(this.received))) {
        clearTimeout(w.timer);
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(this.received);
      }
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Length of a chunked body at the start of `text` (through its last CRLF), or -1 while incomplete. */
function chunkedLength(text: string): number {
  let i = 0;
  for (;;) {
    const lineEnd = text.indexOf('\r\n', i);
    if (lineEnd < 0) return -1;
    const size = parseInt(text.slice(i, lineEnd).split(';')[0]!, 16);
    i = lineEnd + 2;
    if (size === 0) {
      // trailers, then an empty line
      for (;;) {
        const e = text.indexOf('\r\n', i);
        if (e < 0) return -1;
        if (e === i) return e + 2;
        i = e + 2;
      }
    }
    if (text.length < i + size + 2) return -1;
    i += size + 2;
  }
}

/**
 * Splits a byte stream of responses (Content-Length, chunked, or body-less; not 1xx or HEAD
 * answers) into whole responses.
 */
export function splitResponses(text: string): string[] {
  const out: string[] = [];
  let rest = text;
  for (;;) {
    const headEnd = rest.indexOf('\r\n\r\n');
    if (headEnd < 0) return out;
    const head = rest.slice(0, headEnd);
    let len: number;
    if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      len = chunkedLength(rest.slice(headEnd + 4));
      if (len < 0) return out;
    } else {
      const m = /\r\ncontent-length: *(\d+)/i.exec(head);
      len = m ? Number(m[1]) : 0;
    }
    if (rest.length < headEnd + 4 + len) return out;
    out.push(rest.slice(0, headEnd + 4 + len));
    rest = rest.slice(headEnd + 4 + len);
  }
}

/** Status code of a raw response text. */
export function statusOf(text: string): number {
  return Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
}

/** A header of a raw response text (first value, case-insensitive), or undefined. */
export function headerOf(text: string, name: string): string | undefined {
  const head = text.slice(0, text.indexOf('\r\n\r\n'));
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (line.slice(0, i).toLowerCase() === name.toLowerCase()) return line.slice(i + 1).trim();
  }
  return undefined;
}

export interface SimpleResponse {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

/** One request through node:http (a client, fine for tests) with an optional keep-alive agent. */
export function httpGet(
  port: number,
  path: string,
  opts: { method?: string; headers?: Record<string, string | string[]>; body?: string | Buffer; agent?: Agent; timeoutMs?: number } = {},
): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false, timeout: opts.timeoutMs ?? 5000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    if (opts.body !== undefined) req.end(opts.body);
    else req.end();
  });
}

/** Reads a metric sample's value from the proxy's registry ("name{a=\"b\"}" prefix match). */
export async function metricValue(proxy: ProxyRuntime, name: string, labels: Record<string, string>): Promise<number> {
  const text = await proxy.metrics.registry.metrics();
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (!ok) continue;
    found = true;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return found ? total : 0;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
