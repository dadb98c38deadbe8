import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ProxyConfig as WireProxyConfig } from '../../../proto/gen/tsmesh/config/v1/config.js';
import { parseYaml } from './load.js';
import { validateConfig } from './validate.js';
import { encodeSnapshot, fromWire, toWire, type ConfigDocument } from './wire.js';

/** Every field of the schema written once, with values other than the defaults. */
export const KITCHEN_SINK = `
admin: { address: 127.0.0.1:15100 }
listeners:
  - name: edge
    address: 127.0.0.1:18080
    maxConnections: 1234
    headerTimeout: 3s
    idleTimeout: 1m
    maxHeaderBytes: 16KiB
    maxBodyBytes: 1048576
    backlog: 511
    routes:
      - name: query
        match:
          path: { regex: "^/q/[0-9]+$" }
          methods: [GET, POST]
          headers:
            - { name: X-Tenant, exact: acme, invert: true }
            - { name: x-debug, present: true }
            - { name: x-v, regex: "^v[12]$" }
          host: "*.example.com"
        clusters: [{ name: gateway, weight: 90 }, { name: canary, weight: 10 }]
        timeout: 2500ms
        retry:
          attempts: 0
          on: [retriable-status, timeout]
          retriableStatuses: [503, 429]
          perTryTimeout: 500ms
          backoff: { base: 10ms, max: 1s }
          budget: { percent: 12.5, minConcurrent: 0 }
          idempotentOnly: false
          replayBufferBytes: 8KiB
        rateLimit: { requestsPerSecond: 0.5, burst: 3, key: { header: X-Client }, global: true, globalKey: q }
      - name: health
        match: { path: { exact: /health } }
        cluster: gateway
clusters:
  - name: gateway
    endpoints: [127.0.0.1:9001, "[::1]:9002"]
    loadBalancer: least-request
    connectTimeout: 100ms
    pool: { maxConnectionsPerEndpoint: 8, idleTimeout: 4s }
    circuitBreaker: { maxConnections: 10, maxPending: 0, maxRequests: 11, maxRetries: 0 }
    outlierDetection: { enabled: false, consecutiveFailures: 2, baseEjectionTime: 1s, maxEjectionTime: 9s, maxEjectionPercent: 33.3 }
    healthCheck: { path: /ready, interval: 2s, timeout: 300ms, unhealthyThreshold: 4, healthyThreshold: 1 }
    concurrency: { adaptive: { algorithm: vegas, initial: 8, min: 2, max: 64 }, queue: { max: 0, timeout: 5ms } }
  - name: canary
    endpoints: [127.0.0.1:9003]
    concurrency: { limit: 7 }
drain: { delay: "0", timeout: 1h }
accessLog: { enabled: true, path: stderr, sampleRate: 0.25 }
tracing: { enabled: true, endpoint: "http://127.0.0.1:4317", protocol: grpc, samplingRatio: 0.1, serviceName: edge }
controlPlane: { address: 127.0.0.1:15010, node: gateway-1, token: T, cacheDir: /tmp/x }
redis: { url: "redis://127.0.0.1:6379" }
`;

function doc(text: string): ConfigDocument {
  const parsed = parseYaml(text);
  assert.ok(parsed.ok);
  return parsed.value as ConfigDocument;
}

test('every field survives the wire: encode, decode and validate gives the same config as the file', () => {
  const raw = doc(KITCHEN_SINK);
  const direct = validateConfig(raw);
  assert.ok(direct.ok, direct.ok ? '' : direct.errors.join('\n'));
  const bytes = encodeSnapshot(toWire(raw));
  const back = fromWire(WireProxyConfig.decode(bytes));
  const viaWire = validateConfig(back);
  assert.ok(viaWire.ok, viaWire.ok ? '' : viaWire.errors.join('\n'));
  assert.deepEqual(viaWire.value, direct.value);
});

test('the example configs survive the wire, and absent fields stay absent so the proxy fills its defaults', () => {
  for (const file of ['edge.yaml']) {
    const raw = doc(readFileSync(new URL(`../../../../examples/configs/${file}`, import.meta.url), 'utf8'));
    const back = fromWire(WireProxyConfig.decode(encodeSnapshot(toWire(raw))));
    assert.deepEqual(back, JSON.parse(JSON.stringify(raw)), file);
  }
});

test('a snapshot with a bad value is refused by the same validator, with the same messages as a file', () => {
  const wire = toWire(doc(KITCHEN_SINK));
  wire.clusters[0]!.loadBalancer = 'random';
  wire.listeners[0]!.routes[0]!.timeout = '2 seconds';
  const r = validateConfig(fromWire(wire));
  assert.equal(r.ok, false);
  assert.deepEqual(r.ok ? [] : r.errors.sort(), [
    'clusters.gateway.loadBalancer: must be one of round-robin, least-request, peak-ewma',
    'listeners.edge.routes.query.timeout: must be a duration like 250ms, 2s or 1m (got "2 seconds")',
  ]);
});
