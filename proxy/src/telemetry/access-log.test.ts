import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../../test/support/repo.js';
import { descriptorsTo } from '../../../test/support/descriptors.js';
import { waitFor } from '../../../test/support/servers.js';
import { accessLog as accessLogSchema } from '../config/schema.js';
import type { Reason } from '../reasons.js';
import { ACCESS_LOG_FIELDS, AccessLog, type LoggedRequest } from './access-log.js';

interface DocField {
  readonly name: string;
  readonly type: string;
  readonly always: boolean;
}

/** The "Fields" table of docs/access-log.md. */
function documentedFields(): DocField[] {
  const text = readFileSync(join(repoRoot(), 'docs', 'access-log.md'), 'utf8');
  const section = text.slice(text.indexOf('## Fields'));
  const rows = section.split('\n').filter((l) => /^\| `[a-z_]+` \|/.test(l));
  return rows.map((row) => {
    const cells = row.split('|').map((c) => c.trim());
    return { name: cells[1]!.replace(/`/g, ''), type: cells[2]!, always: cells[3] === 'yes' };
  });
}

const head = (method: string, target: string, headers: Record<string, string> = {}) => ({ method, target, version: 11, header: (n: string) => headers[n] });

function request(over: Partial<LoggedRequest>): LoggedRequest {
  return {
    requestHead: head('GET', '/query?x=1'),
    status: 200,
    reason: undefined,
    route: { name: 'query' },
    cluster: { name: 'gateway' },
    endpoint: { address: '127.0.0.1:9002' },
    attempts: 1,
    startTime: 1000,
    upstreamMs: 1.25,
    received: 0,
    responseBytes: 15,
    requestId: 'abc1',
    conn: { remoteAddress: '10.0.0.8', socket: { remotePort: 40112 } },
    ...over,
  };
}

async function written(config: Record<string, unknown>, requests: LoggedRequest[]): Promise<{ lines: Array<Record<string, unknown>>; exists: boolean }> {
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-access-log-'));
  const path = join(dir, 'access.log');
  try {
    const log = new AccessLog(accessLogSchema.parse({ path, ...config }));
    for (const r of requests) log.log(r, r.startTime + 3.2, 'edge');
    await log.close();
    if (!existsSync(path)) return { lines: [], exists: false };
    const text = readFileSync(path, 'utf8').trim();
    return { lines: text === '' ? [] : text.split('\n').map((l) => JSON.parse(l) as Record<string, unknown>), exists: true };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('docs/access-log.md documents exactly the fields the log writes', () => {
  assert.deepEqual(
    documentedFields().map((f) => f.name),
    [...ACCESS_LOG_FIELDS],
  );
});

test('every line has the always-present fields with their documented types, never null, and only documented fields', async () => {
  const rejected = (reason: Reason, status: number) =>
    request({ status, reason, route: undefined, cluster: undefined, endpoint: undefined, attempts: 0, upstreamMs: -1, requestId: undefined });
  const { lines } = await written({ enabled: true }, [
    request({ requestHead: head('POST', '/query', { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' }), received: 17 }),
    rejected('no_route', 404),
    request({ status: 503, reason: 'upstream_connect_failure', attempts: 2, upstreamMs: -1, span: { traceId: '0af7651916cd43dd8448eb211c80319c' } }),
    request({ conn: { remoteAddress: '::1', socket: { remotePort: 51000 } } }),
  ]);
  assert.equal(lines.length, 4);
  const fields = documentedFields();
  for (const line of lines) {
    assert.deepEqual(Object.keys(line).filter((k) => !(ACCESS_LOG_FIELDS as readonly string[]).includes(k)), [], 'undocumented fields');
    assert.equal(Object.keys(line)[0], 'time', 'the time comes first');
    for (const f of fields) {
      const v = line[f.name];
      if (f.always) assert.notEqual(v, undefined, `${f.name} is always present`);
      if (v !== undefined) assert.equal(typeof v, f.type, `${f.name} is a ${f.type}`);
    }
    assert.ok(!Object.values(line).includes(null));
  }
  const [ok, noRoute, failed, v6] = lines;
  assert.deepEqual(
    { ...ok, time: 0 },
    {
      time: 0,
      method: 'POST',
      path: '/query',
      protocol: 'HTTP/1.1',
      status: 200,
      reason: 'none',
      listener: 'edge',
      route: 'query',
      cluster: 'gateway',
      endpoint: '127.0.0.1:9002',
      attempts: 1,
      duration_ms: 3.2,
      upstream_ms: 1.25,
      request_bytes: 17,
      response_bytes: 15,
      request_id: 'abc1',
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      client: '10.0.0.8:40112',
    },
  );
  assert.deepEqual(Object.keys(noRoute!).sort(), ['attempts', 'client', 'duration_ms', 'listener', 'method', 'path', 'protocol', 'reason', 'request_bytes', 'response_bytes', 'status', 'time'].sort());
  assert.equal(noRoute!.reason, 'no_route');
  assert.equal(failed!.reason, 'upstream_connect_failure');
  assert.equal(failed!.trace_id, '0af7651916cd43dd8448eb211c80319c', "the span's trace id");
  assert.equal(failed!.upstream_ms, undefined, 'no upstream answered');
  assert.equal(v6!.client, '[::1]:51000');
});

test('off writes nothing; sampled logs rejections and 5xx always, successes at the rate', async () => {
  const off = await written({ enabled: false }, [request({})]);
  assert.equal(off.exists, false);

  const many = Array.from({ length: 200 }, () => request({}));
  const sampled = await written({ enabled: true, sampleRate: 0 }, [
    ...many,
    request({ status: 429, reason: 'rate_limited', attempts: 0 }),
    request({ status: 500 }),
  ]);
  assert.deepEqual(
    sampled.lines.map((l) => [l.status, l.reason]),
    [
      [429, 'rate_limited'],
      [500, 'none'],
    ],
  );

  const half = await written({ enabled: true, sampleRate: 0.5 }, many);
  assert.ok(half.lines.length > 50 && half.lines.length < 150, `${half.lines.length} of 200 at 0.5`);
});

test('a destination that stops reading costs a bounded buffer: lines beyond it are dropped and counted', { skip: process.platform !== 'linux' }, async () => {
  // A FIFO whose reader never reads: this test holds its read end open and never reads it.
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-access-log-'));
  const fifo = join(dir, 'access.fifo');
  execFileSync('mkfifo', [fifo]);
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  let dropped = 0;
  const log = new AccessLog(accessLogSchema.parse({ enabled: true, path: fifo }), { onDrop: () => dropped++, maxBufferedBytes: 256 * 1024 });
  try {
    for (let i = 0; i < 5000; i++) log.log(request({ startTime: 1000 + i }), 1003 + i, 'edge');
    // ~1.2 MB of lines against 256 KiB waiting (and the pipe's 64 KiB): the rest is dropped at
    // once, without waiting.
    assert.ok(dropped > 3000, `dropped ${dropped}`);
    assert.ok(dropped < 5000, `some lines were kept (dropped ${dropped})`);
  } finally {
    // Once the writer has the FIFO open (its open waits for a reader), closing the only reader
    // makes its blocked write fail with EPIPE instead of hanging the process.
    await waitFor('the log to open the FIFO', async () => descriptorsTo(fifo) >= 2, 5000);
    closeSync(reader);
    // close() gives a stuck destination 2 s on an unref'd timer; this test keeps the loop up.
    const keepAlive = setTimeout(() => {}, 5000);
    await log.close();
    clearTimeout(keepAlive);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a path that cannot be opened: one warning, lines counted as dropped, nothing thrown', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-access-log-'));
  const file = join(dir, 'a-file');
  writeFileSync(file, '');
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  let dropped = 0;
  try {
    const log = new AccessLog(accessLogSchema.parse({ enabled: true, path: join(file, 'access.log') }), { onDrop: () => dropped++ });
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 10; i++) log.log(request({ startTime: 1000 + i }), 1003 + i, 'edge');
    await log.flush();
    await log.close();
    await new Promise((r) => setImmediate(r));
    assert.equal(dropped, 10);
    assert.equal(warnings.filter((w) => w.startsWith('access log ')).length, 1, warnings.join('; '));
  } finally {
    process.off('warning', onWarning);
    rmSync(dir, { recursive: true, force: true });
  }
});
