// The JSON access log: one line per request through pino and its asynchronous sonic-boom
// destination (the request path only formats an object; writing happens off it). Switched
// and sampled by the `accessLog` config; rejections and errors are always logged, successes
// at `sampleRate`.
import pino, { type Logger } from 'pino';
import type { AccessLogConfig } from '../config/schema.js';
import type { Reason } from '../reasons.js';

/** What a finished request tells the log (the core's Exchange implements it). */
export interface LoggedRequest {
  readonly requestHead: { readonly method: string; readonly target: string; readonly version: number; header(name: string): string | undefined };
  readonly status: number;
  readonly reason: Reason | undefined;
  readonly route: { readonly name: string } | undefined;
  readonly cluster: { readonly name: string } | undefined;
  readonly endpoint: { readonly address: string } | undefined;
  readonly attempts: number;
  readonly startTime: number;
  readonly upstreamMs: number;
  readonly received: number;
  readonly responseBytes: number;
  readonly requestId: string | undefined;
  readonly conn: { readonly remoteAddress: string };
}

export class AccessLog {
  readonly enabled: boolean;
  private readonly sampleRate: number;
  private readonly logger: Logger | undefined;
  private readonly destination: ReturnType<typeof pino.destination> | undefined;

  constructor(readonly config: AccessLogConfig) {
    this.enabled = config.enabled;
    this.sampleRate = config.sampleRate;
    if (!this.enabled) return;
    const dest = config.path === 'stdout' ? 1 : config.path === 'stderr' ? 2 : config.path;
    this.destination = pino.destination({ dest, sync: false, mkdir: typeof dest === 'string' });
    // No level field (every line is the same kind); the time goes first, where readers look.
    this.logger = pino({ base: undefined, timestamp: false, formatters: { level: () => ({ time: new Date().toISOString() }) } }, this.destination);
  }

  /** Records one finished request. */
  log(r: LoggedRequest, now: number, listener: string): void {
    if (!this.enabled) return;
    const rejected = r.reason !== undefined || r.status >= 500;
    if (!rejected && this.sampleRate < 1 && Math.random() >= this.sampleRate) return;
    const head = r.requestHead;
    this.logger!.info({
      listener,
      method: head.method,
      path: head.target,
      protocol: head.version === 10 ? 'HTTP/1.0' : 'HTTP/1.1',
      status: r.status,
      reason: r.reason ?? null,
      route: r.route?.name ?? null,
      cluster: r.cluster?.name ?? null,
      upstream: r.endpoint?.address ?? null,
      attempts: r.attempts,
      duration_ms: Math.round((now - r.startTime) * 1000) / 1000,
      upstream_ms: r.upstreamMs >= 0 ? Math.round(r.upstreamMs * 1000) / 1000 : null,
      request_bytes: r.received,
      response_bytes: r.responseBytes,
      request_id: r.requestId ?? head.header('x-request-id') ?? null,
      traceparent: head.header('traceparent') ?? null,
      client: r.conn.remoteAddress,
      user_agent: head.header('user-agent') ?? null,
    });
  }

  /** Flushes and closes the destination (when the proxy stops); stdout/stderr stay open. */
  async close(): Promise<void> {
    const d = this.destination;
    if (!d) return;
    const fd = this.config.path;
    if (fd === 'stdout' || fd === 'stderr') {
      await new Promise<void>((resolve) => d.flush(() => resolve()));
      return;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 2000);
      t.unref();
      d.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      d.end();
    });
  }
}
