// A plain HTTP client for integration tests: one fresh connection per call (no pooling to
// hide connection handling), the whole answer buffered, JSON parsed when it is JSON.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';

export interface TestResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** The parsed body when Content-Type is JSON, else undefined. */
  // any: assertions index freely into answers of several shapes.
  readonly json: any;
}

export function request(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; timeoutMs?: number } = {}): Promise<TestResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false, timeout: opts.timeoutMs ?? 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const isJson = /^application\/json/i.test(res.headers['content-type'] ?? '');
        let json: unknown;
        if (isJson && text !== '') json = JSON.parse(text);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** POST /query as the original report's curl does. */
export function postQuery(base: string, body: unknown): Promise<TestResponse> {
  return request(`${base}/query`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

/**
 * Writes raw bytes on a fresh connection and collects what comes back until the server
 * closes or `idleMs` pass without data. `keepWriting` is sent repeatedly until an answer arrives.
 */
export function rawExchange(host: string, port: number, head: string, opts: { keepWriting?: Buffer; idleMs?: number; maxMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, host);
    const chunks: Buffer[] = [];
    let answered = false;
    let idle: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(idle);
      clearTimeout(max);
      s.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    const max = setTimeout(done, opts.maxMs ?? 10_000);
    s.on('connect', () => {
      s.write(head);
      const pump = () => {
        while (!answered && opts.keepWriting && s.writable) {
          if (!s.write(opts.keepWriting)) {
            s.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    s.on('data', (d: Buffer) => {
      answered = true;
      chunks.push(d);
      clearTimeout(idle);
      idle = setTimeout(done, opts.idleMs ?? 300);
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      // A reset after the answer arrived is the server closing a connection it stopped reading.
      if (chunks.length > 0) done();
      else reject(err);
    });
    s.on('close', done);
  });
}
