// The load ladder of bench/ladder.ts as a k6 script, for people who have k6 (it is not run
// in CI). Closed-model steps of N virtual users, each sending POST /query with varying
// queries in a loop, then one open-model step at a fixed arrival rate.
//
//   k6 run bench/k6/ladder.js                                   # against http://localhost:8080
//   k6 run -e BASE_URL=http://localhost:80 -e STEPS=10,50,100,200 -e STEP_SECONDS=30 bench/k6/ladder.js
//
// Environment: BASE_URL, STEPS (comma-separated users), STEP_SECONDS (default 5),
// OPEN_RATE (requests/s, 0 to skip; default 2000), OPEN_SECONDS (default STEP_SECONDS),
// TIMEOUT (per request, default 10s like the ladder; k6's own default is 60s),
// DISTINCT_QUERIES (default 1000), ERROR_PAUSE (seconds a VU sleeps after a failed request:
// a socket failure or an answer >= 400; default 0, k6's own behaviour; the ladder's
// --error-pause).
//
// Differences from `npm run bench:ladder`: k6 measures http_req_duration without the
// connect time and keeps connections per VU the same way; its constant-arrival-rate
// executor drops iterations when it runs out of VUs (reported as dropped_iterations) instead
// of counting them from their intended time.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';
import exec from 'k6/execution';

const BASE_URL = __ENV.BASE_URL || 'http://localhost:8080';
const STEPS = (__ENV.STEPS || '10,50,100,200,500,1000,2000,5000').split(',').map((s) => parseInt(s, 10));
const STEP_SECONDS = parseInt(__ENV.STEP_SECONDS || '5', 10);
const OPEN_RATE = parseInt(__ENV.OPEN_RATE || '2000', 10);
const OPEN_SECONDS = parseInt(__ENV.OPEN_SECONDS || String(STEP_SECONDS), 10);
const TIMEOUT = __ENV.TIMEOUT || '10s';
const TIMEOUT_SECONDS = parseInt(TIMEOUT, 10) || 10;
const DISTINCT_QUERIES = parseInt(__ENV.DISTINCT_QUERIES || '1000', 10);
const ERROR_PAUSE = parseFloat(__ENV.ERROR_PAUSE || '0');

// The words of examples/gateway/vocabulary.ts: the generated documents are made of them.
const WORDS = [
  'test', 'service', 'gateway', 'query', 'cache', 'database', 'request', 'response', 'latency', 'user',
  'mesh', 'proxy', 'network', 'server', 'client', 'error', 'timeout', 'retry', 'circuit', 'breaker',
  'load', 'balance', 'traffic', 'route', 'config', 'metric', 'trace', 'log', 'deploy', 'release',
  'cluster', 'node', 'pod', 'container', 'image', 'build', 'pipeline', 'queue', 'stream', 'event',
  'message', 'topic', 'index', 'search', 'document', 'record', 'table', 'schema', 'migration', 'backup',
  'replica', 'shard', 'partition', 'lock', 'transaction', 'commit', 'rollback', 'session', 'token', 'auth',
  'password', 'account', 'payment', 'order', 'invoice', 'product', 'catalog', 'price', 'cart', 'checkout',
  'shipping', 'customer', 'report', 'dashboard', 'alert', 'incident', 'monitor', 'health', 'status', 'version',
  'feature', 'flag', 'experiment', 'analytics', 'storage', 'bucket', 'object', 'file', 'upload', 'download',
  'memory', 'cpu', 'disk', 'thread', 'process', 'worker', 'job', 'schedule', 'cron', 'batch',
  'limit', 'quota', 'rate', 'burst', 'window', 'budget', 'capacity', 'scale', 'autoscale', 'instance',
  'region', 'zone', 'edge', 'origin', 'endpoint', 'socket', 'connection', 'pool', 'handshake', 'certificate',
  'secret', 'key', 'policy', 'rule', 'permission', 'role', 'group', 'team', 'project', 'workspace',
  'api', 'rest', 'grpc', 'json', 'protocol', 'header', 'payload', 'body', 'field', 'value',
  'profile', 'setting', 'preference', 'notification', 'email', 'webhook', 'callback', 'integration', 'plugin', 'module',
  'package', 'library', 'framework', 'runtime', 'compiler', 'benchmark', 'performance', 'throughput', 'overload', 'failure',
  'recovery', 'fallback', 'degraded', 'outage', 'maintenance', 'upgrade', 'patch', 'bug', 'fix', 'review',
  'merge', 'branch', 'tag', 'artifact', 'registry', 'mirror', 'snapshot', 'restore', 'archive', 'audit',
];

// Single words first, then word pairs, like bench/loadgen/bodies.ts (not the same pairs):
// i -> (i mod n, (37k + 11a) mod n) with k = floor(i / n) visits every pair once.
const QUERIES = WORDS.slice(0, Math.min(DISTINCT_QUERIES, WORDS.length));
const n = WORDS.length;
for (let i = 0; QUERIES.length < DISTINCT_QUERIES && i < n * n; i++) {
  const a = i % n;
  const b = (37 * Math.floor(i / n) + 11 * a) % n;
  QUERIES.push(`${WORDS[a]} ${WORDS[b]}`);
}

const CLASSES = ['refused', 'reset', 'timeout', 'socketOther', 'http5xx', 'http4xx', 'tsmesh'];
const errorClass = new Counter('error_class');

// One scenario per step, one after another: each starts when the previous one's requests
// have had their time-out to finish.
const scenarios = {};
const thresholds = {};
let start = 0;
const names = [];
for (const vus of STEPS) {
  const name = `users_${vus}`;
  scenarios[name] = { executor: 'constant-vus', vus, duration: `${STEP_SECONDS}s`, startTime: `${start}s`, gracefulStop: TIMEOUT };
  names.push(name);
  start += STEP_SECONDS + TIMEOUT_SECONDS + 1;
}
if (OPEN_RATE > 0) {
  const name = `open_${OPEN_RATE}`;
  scenarios[name] = {
    executor: 'constant-arrival-rate',
    rate: OPEN_RATE,
    timeUnit: '1s',
    duration: `${OPEN_SECONDS}s`,
    preAllocatedVUs: Math.min(OPEN_RATE, 200),
    maxVUs: 1000,
    startTime: `${start}s`,
    gracefulStop: TIMEOUT,
  };
  names.push(name);
}
// Per-step sub-metrics exist in the summary only when a threshold names them; the report's
// targets (p95 < 200 ms, < 5 % errors) are the thresholds.
for (const name of names) {
  thresholds[`http_req_duration{scenario:${name},expected_response:true}`] = ['p(95)<200'];
  thresholds[`http_req_failed{scenario:${name}}`] = ['rate<0.05'];
  thresholds[`http_reqs{scenario:${name}}`] = ['count>=0'];
  for (const c of CLASSES) thresholds[`error_class{scenario:${name},class:${c}}`] = ['count>=0'];
}

export const options = { scenarios, thresholds, discardResponseBodies: true, summaryTrendStats: ['p(50)', 'p(95)', 'p(99)', 'max'] };

function classify(res) {
  if (res.status === 0) {
    const e = String(res.error || '').toLowerCase();
    if (e.includes('refused')) return 'refused';
    if (e.includes('reset') || e.includes('broken pipe') || e.includes('eof')) return 'reset';
    if (e.includes('timeout')) return 'timeout';
    return 'socketOther';
  }
  if (res.headers['X-Tsmesh-Reason']) return 'tsmesh';
  if (res.status >= 500) return 'http5xx';
  if (res.status >= 400) return 'http4xx';
  return undefined;
}

export default function () {
  const query = QUERIES[Math.floor(Math.random() * QUERIES.length)];
  const res = http.post(`${BASE_URL}/query`, JSON.stringify({ query }), {
    headers: { 'Content-Type': 'application/json' },
    timeout: TIMEOUT,
    tags: { name: 'POST /query' },
  });
  const cls = classify(res);
  if (cls) errorClass.add(1, { class: cls, reason: res.headers['X-Tsmesh-Reason'] || '' });
  check(res, { 'status 200': (r) => r.status === 200 });
  // Like the ladder's --error-pause: after a socket failure (status 0) or an error answer,
  // only in the closed steps (an arrival-rate iteration ends here anyway).
  if ((res.status === 0 || res.status >= 400) && ERROR_PAUSE > 0 && exec.scenario.name.startsWith('users_')) sleep(ERROR_PAUSE);
}

function metric(data, key, field) {
  const m = data.metrics[key];
  return m && m.values && m.values[field] !== undefined ? m.values[field] : 0;
}

// A table like the ladder's, on stdout, and the whole summary as JSON.
export function handleSummary(data) {
  const head = ['step', 'requests', 'req/s', 'success %', 'p50 ms', 'p95 ms', 'p99 ms', ...CLASSES];
  const rows = [head, head.map(() => '---')];
  for (const name of names) {
    const s = scenarios[name];
    const seconds = s.duration ? parseInt(s.duration, 10) : 1;
    const reqs = metric(data, `http_reqs{scenario:${name}}`, 'count');
    const failed = metric(data, `http_req_failed{scenario:${name}}`, 'rate');
    const d = `http_req_duration{scenario:${name},expected_response:true}`;
    rows.push([
      name,
      String(reqs),
      String(Math.round(reqs / seconds)),
      (100 * (1 - failed)).toFixed(1),
      metric(data, d, 'p(50)').toFixed(2),
      metric(data, d, 'p(95)').toFixed(2),
      metric(data, d, 'p(99)').toFixed(2),
      ...CLASSES.map((c) => String(metric(data, `error_class{scenario:${name},class:${c}}`, 'count'))),
    ]);
  }
  const table = rows.map((r) => `| ${r.join(' | ')} |`).join('\n');
  return { stdout: `\n${table}\n\n`, 'ladder-k6-summary.json': JSON.stringify(data, null, 2) };
}
