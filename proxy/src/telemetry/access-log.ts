// The JSON access log: one line per request through pino and its asynchronous sonic-boom
// destination (the request path only formats an object; writing happens off it). Switched
// and sampled by the `accessLog` config; rejections and errors are always logged, successes
// at `sampleRate`. The fields are documented in docs/access-log.md (access-log.test.ts holds
// the two together): fixed snake_case names, absent rather than null when not applicable.
import pino, { type Logger } from 'pino';
import type { AccessLogConfig } from '../config/schema.js';
import type { Reason } from '../reasons.js';
import { traceIdOf } from './tracing.js';

/**
 * Bytes of lines that may wait for a destination that does not keep up (a stalled log
 * collector on the other end of stdout, a slow disk). Beyond it lines are dropped and counted,
 * instead of the proxy's memory growing with every request (measured before this bound: about
 * 400 bytes of heap per request, 100 MB per 255 000 requests, with a stdout nobody read).
 */
export const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

export interface AccessLogOptions {
  /** Called for every line dropped because MAX_BUFFERED_BYTES (or `maxBufferedBytes`) were waiting. */
  onDrop?: () => void;
  maxBufferedBytes?: number;
}

/** `reason` of a response the upstream gave (the metrics' `reason="none"`). */
const NO_REASON = 'none';

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
  readonly conn: { readonly remoteAddress: string; readonly socket?: { readonly remotePort?: number } };
  /** The request's server span when tracing is on: its trace id is logged. */
  readonly span?: { readonly traceId: string } | undefined;
}

/** Every field a line may have, in the order written; docs/access-log.md documents each (access-log.test.ts checks). */
export const ACCESS_LOG_FIELDS = [
  'time',
  'method',
  'path',
  'protocol',
  'status',
  'reason',
  'listener',
  'route',
  'cluster',
  'endpoint',
  'attempts',
  'duration_ms',
  'upstream_ms',
  'request_bytes',
  'response_bytes',
  'request_id',
  'trace_id',
  'client',
] as const;

/** One access-log line, as written (docs/access-log.md, "Fields"). */
export interface AccessLogLine {
  time: number;
  method: string;
  path: string;
  protocol: string;
  status: number;
  reason: string;
  listener: string;
  route?: string;
  cluster?: string;
  endpoint?: string;
  attempts: number;
  duration_ms: number;
  upstream_ms?: number;
  request_bytes: number;
  response_bytes: number;
  request_id?: string;
  trace_id?: string;
  client: string;
}

export class AccessLog {
  readonly enabled: boolean;
  private readonly sampleRate: number;
  private readonly logger: Logger | undefined;
  private readonly destination: ReturnType<typeof pino.destination> | undefined;
  private readonly onDrop: (() => void) | undefined;
  /** The destination reported an error: nothing more is written. */
  private failed = false;

  constructor(
    readonly config: AccessLogConfig,
    options: AccessLogOptions = {},
  ) {
    this.enabled = config.enabled;
    this.sampleRate = config.sampleRate;
    if (!this.enabled) return;
    const dest = config.path === 'stdout' ? 1 : config.path === 'stderr' ? 2 : config.path;
    this.destination = pino.destination({ dest, sync: false, mkdir: typeof dest === 'string', maxLength: options.maxBufferedBytes ?? MAX_BUFFERED_BYTES });
    const onDrop = options.onDrop;
    this.onDrop = onDrop;
    if (onDrop) this.destination.on('drop', () => onDrop());
    // pino stops logging on EPIPE and re-emits any other error (a path that cannot be opened,
    // a full disk), after which every write would throw in the request path. The proxy keeps
    // serving: the error is reported once and later lines are counted as dropped.
    this.destination.on('error', (err: Error) => {
      if (this.failed) return;
      this.failed = true;
      // Abandoned: pino's exit hook skips a destroyed destination instead of flushing one
      // that never opened (which throws while the process exits).
      (this.destination as unknown as { destroyed: boolean }).destroyed = true;
      process.emitWarning(`access log ${config.path}: ${err.message}; lines are dropped from now on`);
    });
    // No level field (every line is the same kind); the time (epoch milliseconds, pino's
    // cheapest timestamp) goes first, where readers look.
    // (Through the level formatter: pino's own timestamp option cannot lead the line without a level.)
    this.logger = pino({ base: undefined, timestamp: false, formatters: { level: () => ({ time: Date.now() }) } }, this.destination);
  }

  /** Records one finished request. */
  log(r: LoggedRequest, now: number, listener: string): void {
    if (!this.enabled) return;
    const rejected = r.reason !== undefined || r.status >= 500;
    if (!rejected && this.sampleRate < 1 && Math.random() >= this.sampleRate) return;
    if (this.failed) {
      this.onDrop?.();
      return;
    }
    this.logger!.info(accessLogLine(r, now, listener));
  }

  /** Flushes what was written so far (tests read the file while the proxy runs). */
  flush(): Promise<void> {
    const d = this.destination;
    if (!d || this.failed) return Promise.resolve();
    return new Promise<void>((resolve) => d.flush(() => resolve()));
  }

  /** Flushes and closes the destination (when the proxy stops); stdout/stderr stay open. */
  async close(): Promise<void> {
    const d = this.destination;
    if (!d || this.failed) return;
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

/** The fields of one line (without `time`, which pino adds first); undefined fields are left out by JSON. */
export function accessLogLine(r: LoggedRequest, now: number, listener: string): Omit<AccessLogLine, 'time'> {
  const head = r.requestHead;
  const port = r.conn.socket?.remotePort;
  const addr = r.conn.remoteAddress;
  return {
    method: head.method,
    path: head.target,
    protocol: head.version === 10 ? 'HTTP/1.0' : 'HTTP/1.1',
    status: r.status,
    reason: r.reason ?? NO_REASON,
    listener,
    route: r.route?.name,
    cluster: r.cluster?.name,
    endpoint: r.endpoint?.address,
    attempts: r.attempts,
    duration_ms: Math.round((now - r.startTime) * 1000) / 1000,
    upstream_ms: r.upstreamMs >= 0 ? Math.round(r.upstreamMs * 1000) / 1000 : undefined,
    request_bytes: r.received,
    response_bytes: r.responseBytes,
    request_id: r.requestId ?? head.header('x-request-id'),
    trace_id: r.span?.traceId ?? traceIdOf(head.header('traceparent')),
    client: port === undefined ? addr : addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`,
  };
}
