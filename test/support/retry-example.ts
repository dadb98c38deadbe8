/** Issue 3's example retry block, as a route's `retry` config (the resilience scenarios and bench:overload). */
export const ISSUE3_RETRY = {
  attempts: 2,
  on: ['connect-failure', 'reset', 'gateway-error', 'retriable-status'],
  retriableStatuses: [503],
  perTryTimeout: '500ms',
  backoff: { base: '25ms', max: '250ms' },
  budget: { percent: 20, minConcurrent: 3 },
  idempotentOnly: true,
};
