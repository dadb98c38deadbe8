import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePromText, select, sumOf, PromTextError } from './prom-text.js';
import { ProxyMetrics } from './metrics.js';

test('parses families, labels with escapes, special values and timestamps', () => {
  const text = [
    '# HELP http_requests_total The total number\\nof requests \\\\ served.',
    '# TYPE http_requests_total counter',
    'http_requests_total{method="post",code="200"} 1027 1395066363000',
    'http_requests_total{method="post",code="400",} 3',
    '# a plain comment',
    '',
    'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9',
    'metric_without_timestamp_and_labels 12.47',
    'something_weird{problem="division by zero"} +Inf -3982045',
    '# TYPE rpc_duration_seconds histogram',
    'rpc_duration_seconds_bucket{le="0.05"} 24054',
    'rpc_duration_seconds_bucket{le="+Inf"} 144320',
    'rpc_duration_seconds_sum 53423',
    'rpc_duration_seconds_count 144320',
    'nan_value NaN',
    'neg_inf\t-Inf',
  ].join('\n');
  const { families, samples } = parsePromText(text);
  assert.equal(samples.length, 11);
  const req = families.get('http_requests_total')!;
  assert.equal(req.type, 'counter');
  assert.equal(req.help, 'The total number\nof requests \\ served.');
  assert.deepEqual(req.samples[0], { name: 'http_requests_total', labels: { method: 'post', code: '200' }, value: 1027, timestamp: 1395066363000 });
  assert.deepEqual(req.samples[1]!.labels, { method: 'post', code: '400' });
  const msdos = families.get('msdos_file_access_time_seconds')!;
  assert.deepEqual(msdos.samples[0]!.labels, { path: 'C:\\DIR\\FILE.TXT', error: 'Cannot find file:\n"FILE.TXT"' });
  assert.equal(msdos.samples[0]!.value, 1.458255915e9);
  assert.equal(msdos.type, 'untyped');
  assert.equal(families.get('something_weird')!.samples[0]!.value, Infinity);
  assert.equal(families.get('something_weird')!.samples[0]!.timestamp, -3982045);
  const rpc = families.get('rpc_duration_seconds')!;
  assert.equal(rpc.type, 'histogram');
  assert.deepEqual(
    rpc.samples.map((s) => s.name),
    ['rpc_duration_seconds_bucket', 'rpc_duration_seconds_bucket', 'rpc_duration_seconds_sum', 'rpc_duration_seconds_count'],
  );
  assert.equal(rpc.samples[1]!.labels.le, '+Inf');
  assert.ok(Number.isNaN(families.get('nan_value')!.samples[0]!.value));
  assert.equal(families.get('neg_inf')!.samples[0]!.value, -Infinity);
  assert.equal(sumOf(samples, 'http_requests_total', { method: 'post' }), 1030);
  assert.equal(sumOf(samples, 'http_requests_total', { code: '500' }), 0);
  assert.equal(select(samples, 'rpc_duration_seconds_bucket', { le: '0.05' })[0]!.value, 24054);
});

test('rejects what is not the format, naming the line', () => {
  const cases: Array<[string, RegExp]> = [
    ['ok 1\n9bad 1', /line 2: expected a metric name/],
    ['m{a="1" 1', /line 1: expected "," or "}" after label a/],
    ['m{a="1} 1', /unterminated value of label a/],
    ['m{a=1} 1', /expected a quoted value for label a/],
    ['m{a="\\t"} 1', /invalid escape "\\t" in label a/],
    ['m{a="1",a="2"} 1', /label "a" repeated/],
    ['m{1a="x"} 1', /expected a label name/],
    ['m', /no value for m/],
    ['m abc', /invalid value "abc"/],
    ['m 1 2 3', /unexpected "3"/],
    ['m 1 1.5', /invalid timestamp "1.5"/],
    ['m{a="1"}x 1', /unexpected "x" after m/],
    ['# TYPE m countr', /unknown type "countr"/],
    ['# TYPE m counter\n# TYPE m gauge', /line 2: second # TYPE for m/],
    ['# HELP m a\n# HELP m b', /second # HELP/],
    ['m 1\n# TYPE m counter', /line 2: # TYPE for m after its samples/],
    ['# HELP m bad \\t escape', /invalid escape/],
    ['# TYPE 1m counter', /invalid metric name "1m"/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parsePromText(text), (err: unknown) => err instanceof PromTextError && message.test(err.message), text);
  }
});

test('reads a real ProxyMetrics registry exactly', async () => {
  const m = new ProxyMetrics();
  m.requests.labels('edge', 'query', 'gateway', '200', 'none').inc(7);
  m.requests.labels('edge', 'query', 'gateway', '503', 'overloaded').inc(2);
  m.requestDuration.labels('query', 'gateway').observe(0.003);
  m.configInfo.labels('v1 "quoted"\\', 'file').set(1);
  const { families, samples } = parsePromText(await m.registry.metrics());
  assert.equal(families.get('tsmesh_requests_total')!.type, 'counter');
  assert.equal(families.get('tsmesh_request_duration_seconds')!.type, 'histogram');
  assert.equal(sumOf(samples, 'tsmesh_requests_total', { route: 'query' }), 9);
  assert.equal(sumOf(samples, 'tsmesh_requests_total', { reason: 'overloaded' }), 2);
  assert.equal(sumOf(samples, 'tsmesh_request_duration_seconds_bucket', { le: '0.005' }), 1);
  assert.equal(sumOf(samples, 'tsmesh_request_duration_seconds_bucket', { le: '0.0025' }), 0);
  assert.equal(sumOf(samples, 'tsmesh_request_duration_seconds_count'), 1);
  assert.equal(select(samples, 'tsmesh_config_info')[0]!.labels.version, 'v1 "quoted"\\');
  assert.ok(families.get('tsmesh_process_cpu_seconds_total'));
});
