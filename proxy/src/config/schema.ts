// The one shape of a proxy's configuration: the YAML file, the control plane's stored
// documents and the snapshots it streams are all validated by this schema. Fields may be
// added; never renamed. Output values are normalised: durations in milliseconds, sizes in
// bytes, defaults filled in (Envoy's and Linkerd's defaults where the issue is silent).
import { z } from 'zod';
import { parseDuration, parseHostPort, parseSize } from './units.js';

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => {
  const msg = max === Number.MAX_SAFE_INTEGER ? `must be an integer >= ${min}` : `must be an integer from ${min} to ${max}`;
  return z.number({ error: msg }).int({ error: msg }).min(min, { error: msg }).max(max, { error: msg });
};

const num = (min: number, max: number) => {
  const msg = `must be a number from ${min} to ${max}`;
  return z.number({ error: msg }).min(min, { error: msg }).max(max, { error: msg });
};

const name = z
  .string({ error: 'must be a name' })
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, {
    error: 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit',
  });

/** A duration string such as 250ms, 2s, 1m; parsed into milliseconds. */
export const duration = z
  // YAML reads a bare `0` as a number; it is the one duration that needs no unit.
  .union([z.string(), z.literal(0)], { error: 'must be a duration like 250ms, 2s or 1m' })
  .transform((value, ctx) => {
    const text = String(value);
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `must be a duration like 250ms, 2s or 1m (got "${text}")` });
      return z.NEVER;
    }
    return ms;
  });

/** A byte size: a number, or a string such as 64KiB, 10MB; parsed into bytes. */
export const size = z
  .union([z.number(), z.string()], { error: 'must be a size like 65536, 64KiB or 10MB' })
  .transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `must be a size like 65536, 64KiB or 10MB (got ${JSON.stringify(value)})` });
      return z.NEVER;
    }
    return bytes;
  });

/** host:port; the port may be 0 (any free port) for listeners and admin. */
export const address = z.string({ error: 'must be an address like 127.0.0.1:8080' }).refine((s) => parseHostPort(s) !== undefined, {
  error: (issue) => `must be an address like 127.0.0.1:8080 (got ${JSON.stringify(issue.input)})`,
});

const endpointAddress = address.refine((s) => parseHostPort(s)!.port !== 0, { error: 'an endpoint port must not be 0' });

const regex = z.string({ error: 'must be a regular expression' }).superRefine((source, ctx) => {
  try {
    new RegExp(source);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `invalid regular expression: ${(err as Error).message}` });
  }
});

const HTTP_METHOD = /^[A-Z]+$/;

const pathMatch = z
  .strictObject({ exact: z.string().startsWith('/', { error: 'must start with /' }).optional(), prefix: z.string().startsWith('/', { error: 'must start with /' }).optional(), regex: regex.optional() })
  .refine((p) => [p.exact, p.prefix, p.regex].filter((v) => v !== undefined).length === 1, {
    error: 'must have exactly one of exact, prefix or regex',
  });

const headerMatch = z
  .strictObject({
    name: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { error: 'must be a header name' }).transform((s) => s.toLowerCase()),
    exact: z.string().optional(),
    regex: regex.optional(),
    present: z.boolean().optional(),
    invert: z.boolean().default(false),
  })
  .refine((h) => [h.exact, h.regex, h.present].filter((v) => v !== undefined).length === 1, {
    error: 'must have exactly one of exact, regex or present',
  });

export const routeMatch = z.strictObject({
  path: pathMatch.optional(),
  methods: z.array(z.string().regex(HTTP_METHOD, { error: 'must be an upper-case HTTP method' })).min(1).optional(),
  headers: z.array(headerMatch).optional(),
  /** Exact host ("api.example.com") or a leading wildcard ("*.example.com"); the port is ignored. */
  host: z.string().regex(/^(\*\.)?[A-Za-z0-9.-]+$/, { error: 'must be a host name, optionally starting with "*."' }).transform((s) => s.toLowerCase()).optional(),
});

export const RETRY_CONDITIONS = ['connect-failure', 'reset', 'gateway-error', 'retriable-status', 'timeout'] as const;

export const retryPolicy = z.strictObject({
  /** Retries after the first try. */
  attempts: int(0, 10).default(1),
  on: z.array(z.enum(RETRY_CONDITIONS, { error: `must be one of ${RETRY_CONDITIONS.join(', ')}` })).default(['connect-failure', 'reset', 'gateway-error']),
  retriableStatuses: z.array(int(100, 599)).default([]),
  perTryTimeout: duration.optional(),
  backoff: z.strictObject({ base: duration.default(25), max: duration.default(250) }).prefault({}),
  /**
   * Retry budget (policy/retry-budget.ts): retries may be at most `percent` % of the attempts
   * sent to the cluster in the last 10 s (percent / (100 - percent) retries per first try);
   * beyond that, `minConcurrent` is a floor for low traffic: while fewer retries are in flight
   * and the window holds fewer than minConcurrent x 10 retries beyond the ratio. While it is
   * enabled, circuitBreaker.maxRetries is ignored (as in Envoy); `enabled: false` falls back
   * to that fixed cap.
   */
  budget: z
    .strictObject({ enabled: z.boolean().default(true), percent: num(0, 100).default(20), minConcurrent: int(0).default(3) })
    .prefault({}),
  /** POST/PATCH are retried only with an Idempotency-Key header (or when nothing reached the upstream). */
  idempotentOnly: z.boolean().default(true),
  /** Largest request body kept in memory so that it can be sent again. */
  replayBufferBytes: size.default(64 * 1024),
});

export const rateLimit = z.strictObject({
  requestsPerSecond: num(0.001, 1e9),
  burst: int(1).optional(),
  /** Separate buckets per value of this request header (missing header: one shared bucket). */
  key: z.strictObject({ header: z.string().min(1).transform((s) => s.toLowerCase()) }).optional(),
  /** Counted across all proxies in Redis (see control plane); falls back to a local share. */
  global: z.boolean().default(false),
  /** Name of the shared counter in Redis; defaults to the route name. */
  globalKey: z.string().min(1).optional(),
  /** Most keys (header values) with a bucket of their own; the least recently used is evicted beyond it. */
  maxKeys: int(1, 10_000_000).default(10_000),
});

const weightedCluster = z.strictObject({ name, weight: int(0, 1_000_000) });

export const route = z.strictObject({
  name,
  match: routeMatch.prefault({}),
  cluster: name.optional(),
  clusters: z.array(weightedCluster).min(1).optional(),
  /** Covers the whole request, retries included. */
  timeout: duration.default(15_000),
  retry: retryPolicy.optional(),
  rateLimit: rateLimit.optional(),
});

export const listener = z.strictObject({
  name,
  address,
  maxConnections: int(1, 1_000_000).default(10_000),
  /** Time a client has to send a complete request head. */
  headerTimeout: duration.default(10_000),
  /** Keep-alive idle time for client connections. */
  idleTimeout: duration.default(60_000),
  maxHeaderBytes: size.default(32 * 1024),
  maxBodyBytes: size.default(10 * 1024 * 1024),
  /** Accept queue length asked of the kernel (capped by net.core.somaxconn). */
  backlog: int(1, 1_000_000).default(65_535),
  /**
   * Descriptors of the listening socket the event loop watches (Linux): a busy Node 20 loop
   * accepts one connection per descriptor per poll, so more of them drain a connection storm
   * faster (net/listen-descriptors.ts). 1: the socket alone. Like backlog, it is set when the
   * listener is bound.
   */
  acceptDescriptors: int(1, 64).default(1),
  routes: z.array(route).default([]),
});

export const LOAD_BALANCERS = ['round-robin', 'least-request', 'peak-ewma'] as const;

export const circuitBreaker = z.strictObject({
  maxConnections: int(1).default(1024),
  maxPending: int(0).default(1024),
  maxRequests: int(1).default(1024),
  maxRetries: int(0).default(3),
});

export const outlierDetection = z.strictObject({
  enabled: z.boolean().default(true),
  consecutiveFailures: int(1).default(5),
  baseEjectionTime: duration.default(30_000),
  maxEjectionTime: duration.default(300_000),
  maxEjectionPercent: num(0, 100).default(50),
});

export const healthCheck = z.strictObject({
  path: z.string().startsWith('/', { error: 'must start with /' }).default('/health'),
  interval: duration.default(5000),
  timeout: duration.default(1000),
  unhealthyThreshold: int(1).default(3),
  healthyThreshold: int(1).default(2),
});

export const CONCURRENCY_ALGORITHMS = ['gradient2', 'vegas'] as const;

export const concurrency = z
  .strictObject({
    limit: int(1).optional(),
    adaptive: z
      .strictObject({
        algorithm: z.enum(CONCURRENCY_ALGORITHMS, { error: `must be one of ${CONCURRENCY_ALGORITHMS.join(', ')}` }).default('gradient2'),
        initial: int(1).default(20),
        min: int(1).default(4),
        max: int(1).default(1000),
      })
      .optional(),
    /**
     * Requests waiting for a slot past the limit. None by default (as Envoy's adaptive
     * concurrency filter and Netflix's SimpleLimiter): under sustained overload a queue is always
     * full, so its wait is added to every admitted request and its time-outs are rejections
     * answered late (docs/policies.md, "Overload benchmark"). Set max for bursts above a static limit.
     */
    queue: z.strictObject({ max: int(0).default(0), timeout: duration.default(50) }).prefault({}),
  })
  .refine((c) => (c.limit === undefined) !== (c.adaptive === undefined), { error: 'must have exactly one of limit or adaptive' })
  .refine((c) => !c.adaptive || (c.adaptive.min <= c.adaptive.initial && c.adaptive.initial <= c.adaptive.max), {
    error: 'adaptive limits must satisfy min <= initial <= max',
  });

export const cluster = z.strictObject({
  name,
  endpoints: z.array(endpointAddress).min(1, { error: 'must list at least one endpoint' }),
  loadBalancer: z.enum(LOAD_BALANCERS, { error: `must be one of ${LOAD_BALANCERS.join(', ')}` }).default('peak-ewma'),
  connectTimeout: duration.default(1000),
  pool: z
    .strictObject({
      maxConnectionsPerEndpoint: int(1).default(128),
      /** Kept below the upstream's keep-alive timeout; an upstream's "Keep-Alive: timeout=N" lowers it further. */
      idleTimeout: duration.default(30_000),
    })
    .prefault({}),
  circuitBreaker: circuitBreaker.prefault({}),
  outlierDetection: outlierDetection.prefault({}),
  healthCheck: healthCheck.optional(),
  concurrency: concurrency.optional(),
});

export const admin = z.strictObject({ address: address.default('127.0.0.1:15000') });

export const drain = z.strictObject({
  /** After SIGTERM: /ready is 503 at once, traffic is still served this long (endpoints leave load balancers). */
  delay: duration.default(5000),
  /** Longest wait for in-flight requests after the listeners close. */
  timeout: duration.default(25_000),
});

export const accessLog = z.strictObject({
  enabled: z.boolean().default(false),
  /** "stdout", "stderr" or a file path. */
  path: z.string().min(1).default('stdout'),
  /** Fraction of successful requests logged; rejections and errors are always logged. */
  sampleRate: num(0, 1).default(1),
});

/** OTLP transports: "http" is OTLP/HTTP with protobuf bodies (the OTLP default), like "http/protobuf". */
export const TRACING_PROTOCOLS = ['http', 'http/protobuf', 'http/json', 'grpc'] as const;

export const tracing = z.strictObject({
  enabled: z.boolean().default(false),
  /** OTLP/HTTP: the full URL (…/v1/traces); gRPC: http://host:4317. */
  endpoint: z.string().url({ error: 'must be a URL' }).default('http://127.0.0.1:4318/v1/traces'),
  protocol: z.enum(TRACING_PROTOCOLS, { error: `must be one of ${TRACING_PROTOCOLS.join(', ')}` }).default('http'),
  /** Fraction of new traces recorded; a request whose caller sampled (or not) follows its caller. */
  samplingRatio: num(0, 1).default(1),
  serviceName: z.string().min(1).default('tsmesh-proxy'),
  /** Sent with every export (HTTP headers, or gRPC metadata), e.g. a collector's API key. */
  headers: z.record(z.string(), z.string()).default({}),
  /** Longest time a finished span waits before it is exported (spans go in batches). */
  exportInterval: duration.default(5000),
  /** Longest time one export may take, retries included; then its spans are dropped. */
  exportTimeout: duration.default(10_000),
});

export const controlPlane = z.strictObject({
  address,
  node: name,
  token: z.string().min(1).optional(),
  /** Where the last applied snapshot is kept, to boot from when the control plane is away. */
  cacheDir: z.string().min(1).optional(),
});

/** Where global rate limits are counted. Without it, `global: true` limits run locally. */
export const redis = z.strictObject({ url: z.string().regex(/^rediss?:\/\//, { error: 'must be a redis:// URL' }) });

/** Fields of a proxy config object; the control plane extends them (e.g. with `selector`). */
export const proxyConfigShape = {
  admin: admin.prefault({}),
  listeners: z.array(listener).default([]),
  clusters: z.array(cluster).default([]),
  drain: drain.prefault({}),
  accessLog: accessLog.prefault({}),
  tracing: tracing.prefault({}),
  controlPlane: controlPlane.optional(),
  redis: redis.optional(),
};

export const proxyConfig = z.strictObject(proxyConfigShape);

export type ProxyConfig = z.output<typeof proxyConfig>;
export type ListenerConfig = ProxyConfig['listeners'][number];
export type RouteConfig = ListenerConfig['routes'][number];
export type RouteMatchConfig = RouteConfig['match'];
export type ClusterConfig = ProxyConfig['clusters'][number];
export type RetryConfig = z.output<typeof retryPolicy>;
export type RetryCondition = (typeof RETRY_CONDITIONS)[number];
export type RateLimitConfig = z.output<typeof rateLimit>;
export type CircuitBreakerConfig = z.output<typeof circuitBreaker>;
export type OutlierDetectionConfig = z.output<typeof outlierDetection>;
export type HealthCheckConfig = z.output<typeof healthCheck>;
export type ConcurrencyConfig = z.output<typeof concurrency>;
export type LoadBalancerKind = (typeof LOAD_BALANCERS)[number];
export type ControlPlaneConfig = z.output<typeof controlPlane>;
export type AccessLogConfig = z.output<typeof accessLog>;
export type TracingConfig = z.output<typeof tracing>;
export type DrainConfig = z.output<typeof drain>;
