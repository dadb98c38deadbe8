// A fault-injecting HTTP upstream for tests and benchmarks (issue 3): a real node:http server
// on a free loopback port, one instance per endpoint, whose behaviour can be changed while it
// runs: error rate and status, latency (fixed, uniform range or any distribution), hangs,
// connection resets (before the response or in the middle of its body), a capacity (requests
// processed at once, past it queue or reject with 503), kill and restart on the same port, and
// counters of what it saw (requests, bodies per idempotency key / request id, accepted sockets,
// in flight, aborted by the client).
//
// Each request's fate is drawn from a seeded generator, so a test run is repeatable. With
// `fateDeck`, fates are dealt from a shuffled deck instead of drawn one by one: every `fateDeck`
// requests of an endpoint hold exactly their share of errors, hangs and resets, at random
// places. A test whose pass line sits close to what the rate allows (issue 3's 20 % of 503s
// against a 25 % retry budget) then measures the proxy, not the drift of the injector's own
// sampling.
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { prng } from '../../examples/gateway/seed.js';

/** Milliseconds: fixed, uniform in [min, max], or drawn by a function from a uniform [0, 1) source. */
export type Latency = number | { readonly min: number; readonly max: number } | ((random: () => number) => number);

export interface FaultSettings {
  /** Fraction of requests answered with errorStatus (after the latency). */
  errorRate: number;
  errorStatus: number;
  /** Retry-After sent with error answers, when set. */
  errorRetryAfter: string | undefined;
  latency: Latency;
  /** Fraction of requests never answered (until the client goes away or the server is killed). */
  hangRate: number;
  /** Fraction of requests whose connection is destroyed, before any response byte or in the middle of the body. */
  resetRate: number;
  resetAt: 'before' | 'mid';
  /** Most requests processed at once (undefined: no limit); past it they wait in order, or get 503 at once. */
  capacity: number | undefined;
  overflow: 'queue' | 'reject';
  /** What GET healthPath answers: 200, 503, or nothing at all. Health checks skip every other fault. */
  health: 'ok' | 'fail' | 'hang';
  healthPath: string;
  /** Size of a successful response body (a JSON object padded to this many bytes, at least its minimum). */
  bodyBytes: number;
  /**
   * Deal fates from a shuffled deck of this many (rates rounded to multiples of 1/fateDeck)
   * rather than drawing each independently; undefined: independent draws.
   */
  fateDeck: number | undefined;
}

export interface FaultStats {
  /** Requests seen (health checks excluded). */
  requests: number;
  healthChecks: number;
  acceptedSockets: number;
  /** Requests being processed now (not counting those waiting for capacity). */
  inFlight: number;
  maxInFlight: number;
  /** Requests waiting for capacity now. */
  queued: number;
  /** Requests whose client closed the connection before the answer was complete. */
  clientAborts: number;
  /** Answers by status code, including 503s for capacity. */
  statuses: Map<number, number>;
  resets: number;
  hangs: number;
  rejectedOverCapacity: number;
  /** Complete request bodies received, by Idempotency-Key, else by x-request-id. */
  bodies: Map<string, number>;
  /** Heads of the most recent requests (at most 100), oldest first. */
  recentHeaders: IncomingHttpHeaders[];
}

export const DEFAULT_FAULTS: Readonly<FaultSettings> = Object.freeze({
  errorRate: 0,
  errorStatus: 503,
  errorRetryAfter: undefined,
  latency: 0,
  hangRate: 0,
  resetRate: 0,
  resetAt: 'before',
  capacity: undefined,
  overflow: 'queue',
  health: 'ok',
  healthPath: '/health',
  bodyBytes: 0,
  fateDeck: undefined,
});

export interface FaultUpstreamOptions {
  /** Shows in response bodies and the x-upstream header, to tell endpoints apart. */
  name?: string;
  host?: string;
  /** 0 (default) picks a free port; restart() reuses the port it got. */
  port?: number;
  seed?: number;
  settings?: Partial<FaultSettings>;
}

/** A small seeded uniform [0, 1) generator: the gateway example's mulberry32, also used by the load generator. */
export const seededRandom: (seed: number) => () => number = prng;

function emptyStats(): FaultStats {
  return {
    requests: 0,
    healthChecks: 0,
    acceptedSockets: 0,
    inFlight: 0,
    maxInFlight: 0,
    queued: 0,
    clientAborts: 0,
    statuses: new Map(),
    resets: 0,
    hangs: 0,
    rejectedOverCapacity: 0,
    bodies: new Map(),
    recentHeaders: [],
  };
}

type Fate = 'ok' | 'error' | 'hang' | 'reset';

export class FaultUpstream {
  readonly name: string;
  readonly host: string;
  settings: FaultSettings;
  stats: FaultStats = emptyStats();

  private server: Server | undefined;
  private boundPort: number;
  private readonly random: () => number;
  private readonly sockets = new Set<Socket>();
  /** Requests waiting for capacity, in arrival order. */
  private readonly waiting: Array<() => void> = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Fates left in the current deck (fateDeck), dealt from the end. */
  private deck: Fate[] = [];

  private constructor(options: FaultUpstreamOptions) {
    this.name = options.name ?? 'upstream';
    this.host = options.host ?? '127.0.0.1';
    this.boundPort = options.port ?? 0;
    this.random = seededRandom(options.seed ?? 1);
    this.settings = { ...DEFAULT_FAULTS, ...options.settings };
  }

  static async start(options: FaultUpstreamOptions = {}): Promise<FaultUpstream> {
    const u = new FaultUpstream(options);
    await u.listen();
    return u;
  }

  get port(): number {
    return this.boundPort;
  }

  /** host:port, as a cluster endpoint is written. */
  get address(): string {
    return `${this.host}:${this.boundPort}`;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  /** Changes faults from now on; requests already in progress keep their fate. */
  set(patch: Partial<FaultSettings>): void {
    this.settings = { ...this.settings, ...patch };
    this.deck = [];
    this.admitWaiting();
  }

  resetStats(): void {
    const inFlight = this.stats.inFlight;
    const queued = this.stats.queued;
    this.stats = emptyStats();
    this.stats.inFlight = inFlight;
    this.stats.queued = queued;
  }

  /** Closes the listener and every connection at once, as a crash would. */
  async kill(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.waiting.length = 0;
    this.stats.queued = 0;
    // In-flight counts drop as the destroyed connections report their close.
    await closed;
  }

  /** Listens again on the same port. */
  async restart(): Promise<void> {
    if (this.server) return;
    await this.listen();
  }

  async close(): Promise<void> {
    await this.kill();
  }

  private listen(): Promise<void> {
    const server = createServer({ keepAlive: true }, (req, res) => this.handle(req, res));
    server.keepAliveTimeout = 60_000;
    server.on('connection', (socket: Socket) => {
      this.stats.acceptedSockets++;
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.on('clientError', (_err, socket) => socket.destroy());
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort, this.host, () => {
        server.off('error', reject);
        this.boundPort = (server.address() as { port: number }).port;
        this.server = server;
        resolve();
      });
    });
  }

  private later(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  private count(status: number): void {
    this.stats.statuses.set(status, (this.stats.statuses.get(status) ?? 0) + 1);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const s = this.settings;
    const path = (req.url ?? '/').split('?')[0];
    if (path === s.healthPath && req.method === 'GET') {
      this.stats.healthChecks++;
      req.resume();
      if (s.health === 'hang') return;
      const status = s.health === 'ok' ? 200 : 503;
      res.writeHead(status, { 'content-type': 'text/plain', 'x-upstream': this.name });
      res.end(s.health === 'ok' ? 'ok' : 'unhealthy');
      return;
    }

    this.stats.requests++;
    const recent = this.stats.recentHeaders;
    recent.push(req.headers);
    if (recent.length > 100) recent.shift();

    // Who answered, and whether the client went away first.
    let done = false;
    let resetByUs = false;
    let processing = false;
    let queuedStart: (() => void) | undefined;
    res.once('close', () => {
      if (!res.writableFinished && !resetByUs) this.stats.clientAborts++;
      if (queuedStart) {
        const i = this.waiting.indexOf(queuedStart);
        if (i >= 0) {
          this.waiting.splice(i, 1);
          this.stats.queued--;
        }
      }
      finish();
    });
    const finish = () => {
      if (done) return;
      done = true;
      if (processing) {
        processing = false;
        this.stats.inFlight--;
        this.admitWaiting();
      }
    };

    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => {
      const key = header(req.headers['idempotency-key']) ?? header(req.headers['x-request-id']);
      if (key !== undefined && (chunks.length > 0 || req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH')) {
        this.stats.bodies.set(key, (this.stats.bodies.get(key) ?? 0) + 1);
      }
      if (done) return;
      const start = () => {
        queuedStart = undefined;
        if (done) return;
        processing = true;
        this.stats.inFlight++;
        if (this.stats.inFlight > this.stats.maxInFlight) this.stats.maxInFlight = this.stats.inFlight;
        this.process(req, res, () => {
          resetByUs = true;
        });
      };
      const cap = this.settings.capacity;
      if (cap === undefined || (this.stats.inFlight < cap && this.waiting.length === 0)) return start();
      if (this.settings.overflow === 'reject') {
        this.stats.rejectedOverCapacity++;
        this.count(503);
        res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1', 'x-upstream': this.name });
        res.end('over capacity');
        return;
      }
      queuedStart = start;
      this.stats.queued++;
      this.waiting.push(start);
    });
  }

  private admitWaiting(): void {
    const cap = this.settings.capacity;
    while (this.waiting.length > 0 && (cap === undefined || this.stats.inFlight < cap)) {
      const start = this.waiting.shift()!;
      this.stats.queued--;
      start();
    }
  }

  private drawFate(): Fate {
    const s = this.settings;
    if (s.fateDeck !== undefined) {
      if (this.deck.length === 0) this.deck = this.shuffledDeck(s.fateDeck);
      return this.deck.pop()!;
    }
    const r = this.random();
    if (r < s.resetRate) return 'reset';
    if (r < s.resetRate + s.hangRate) return 'hang';
    if (r < s.resetRate + s.hangRate + s.errorRate) return 'error';
    return 'ok';
  }

  private shuffledDeck(size: number): Fate[] {
    const s = this.settings;
    const deck: Fate[] = [];
    const add = (fate: Fate, rate: number) => {
      for (let n = Math.round(rate * size); n > 0 && deck.length < size; n--) deck.push(fate);
    };
    add('reset', s.resetRate);
    add('hang', s.hangRate);
    add('error', s.errorRate);
    while (deck.length < size) deck.push('ok');
    // Fisher-Yates on the seeded generator.
    for (let i = deck.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [deck[i], deck[j]] = [deck[j]!, deck[i]!];
    }
    return deck;
  }

  private drawLatency(): number {
    const l = this.settings.latency;
    if (typeof l === 'number') return l;
    if (typeof l === 'function') return Math.max(0, l(this.random));
    return l.min + (l.max - l.min) * this.random();
  }

  private process(req: IncomingMessage, res: ServerResponse, markReset: () => void): void {
    const s = this.settings;
    const fate = this.drawFate();
    if (fate === 'hang') {
      this.stats.hangs++;
      return;
    }
    const answer = () => {
      if (res.destroyed) return;
      if (fate === 'reset') {
        this.stats.resets++;
        markReset();
        if (s.resetAt === 'before') {
          req.socket.destroy();
          return;
        }
        const body = Buffer.alloc(64, 'x');
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(body.length * 2), 'x-upstream': this.name });
        res.write(body, () => req.socket.destroy());
        return;
      }
      if (fate === 'error') {
        this.count(s.errorStatus);
        const headers: Record<string, string> = { 'content-type': 'text/plain', 'x-upstream': this.name };
        if (s.errorRetryAfter !== undefined) headers['retry-after'] = s.errorRetryAfter;
        res.writeHead(s.errorStatus, headers);
        res.end('injected fault');
        return;
      }
      this.count(200);
      let body = JSON.stringify({ upstream: this.name, n: this.stats.requests });
      if (body.length + 9 < s.bodyBytes) body = body.slice(0, -1) + `,"pad":"${'x'.repeat(s.bodyBytes - body.length - 9)}"}`;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'x-upstream': this.name });
      res.end(body);
    };
    const ms = this.drawLatency();
    if (ms > 0) this.later(answer, ms);
    else answer();
  }
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Starts n upstreams named "<prefix>-<i>" with distinct seeds. */
export async function startFaultUpstreams(n: number, options: Omit<FaultUpstreamOptions, 'name' | 'seed'> & { prefix?: string; seed?: number } = {}): Promise<FaultUpstream[]> {
  const out: FaultUpstream[] = [];
  try {
    for (let i = 0; i < n; i++) out.push(await FaultUpstream.start({ ...options, name: `${options.prefix ?? 'upstream'}-${i}`, seed: (options.seed ?? 1) + i }));
  } catch (err) {
    await Promise.all(out.map((u) => u.close()));
    throw err;
  }
  return out;
}
