// The stable codes the proxy puts in `x-tsmesh-reason` on every response it makes itself,
// and under which it counts them. Extend, never rename (DESIGN.md, "Rejections are explained").

export const REASON_STATUS = {
  no_route: 404,
  rate_limited: 429,
  overloaded: 503,
  circuit_open: 503,
  upstream_connect_failure: 503,
  upstream_reset: 502,
  upstream_timeout: 504,
  bad_request: 400,
  draining: 503,
  client_closed: 499,
} as const;

export type Reason = keyof typeof REASON_STATUS;

export const REASONS = Object.keys(REASON_STATUS) as Reason[];

export const REASON_HEADER = 'x-tsmesh-reason';
export const ATTEMPTS_HEADER = 'x-tsmesh-attempts';
export const TIMEOUT_HEADER = 'x-tsmesh-timeout-ms';
