// A real Prometheus for tests (Debian's `prometheus` binary, installed by
// scripts/ensure-system-deps.sh): on a free loopback port, with a temporary config and data
// directory, scraping the given targets at a short interval; queried through its HTTP API.
// And `promtool`, to lint metrics text, rules and configs.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './servers.js';

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

export interface PromSample {
  readonly metric: Readonly<Record<string, string>>;
  /** [unix seconds, value as text] */
  readonly value: readonly [number, string];
}

export interface PromSeries {
  readonly metric: Readonly<Record<string, string>>;
  readonly values: ReadonlyArray<readonly [number, string]>;
}

export interface PrometheusServer {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** Instant query; `time` in unix seconds (default: now). Vector results only. */
  query(expr: string, time?: number): Promise<PromSample[]>;
  /** Instant query of a range selector (e.g. `x[30s]`): the raw samples. */
  querySamples(expr: string, time?: number): Promise<PromSeries[]>;
  /** The scrape targets as Prometheus sees them (health, lastError, lastScrape). */
  targets(): Promise<Array<{ scrapeUrl: string; health: string; lastError: string; lastScrape: string }>>;
  /**
   * Resolves once every target has been scraped successfully about `n` times (its last scrape
   * at least n-1 intervals after the first seen up). Prometheus 2.x hands new targets to its
   * scrapers only every 5 s, so the first scrape comes about 5 s after start.
   */
  waitForScrapes(n?: number, timeoutMs?: number): Promise<void>;
  /** Its log so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** host:port of each /metrics server to scrape. */
  readonly targets: readonly string[];
  /** Scrape (and rule evaluation) interval, e.g. "250ms". */
  readonly scrapeInterval?: string;
  readonly metricsPath?: string;
  readonly job?: string;
  /** Rule files to load (absolute paths). */
  readonly ruleFiles?: readonly string[];
}

export async function startPrometheus(o: PrometheusOptions): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tsmesh-prometheus-'));
  const interval = o.scrapeInterval ?? '250ms';
  const config = [
    'global:',
    `  scrape_interval: ${interval}`,
    `  scrape_timeout: ${interval}`,
    `  evaluation_interval: ${interval}`,
    ...(o.ruleFiles?.length ? ['rule_files:', ...o.ruleFiles.map((f) => `  - ${JSON.stringify(f)}`)] : []),
    'scrape_configs:',
    `  - job_name: ${JSON.stringify(o.job ?? 'tsmesh')}`,
    `    metrics_path: ${JSON.stringify(o.metricsPath ?? '/metrics')}`,
    '    static_configs:',
    `      - targets: [${o.targets.map((t) => JSON.stringify(t)).join(', ')}]`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const logLines: string[] = [];
  const child = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir },
  );
  children.add(child);
  child.stdout.on('data', (d: Buffer) => logLines.push(d.toString()));
  child.stderr.on('data', (d: Buffer) => logLines.push(d.toString()));
  child.once('exit', () => children.delete(child));
  const spawnError = new Promise<never>((_, reject) => child.once('error', (e) => reject(new Error(`prometheus: ${e.message} (run scripts/ensure-system-deps.sh)`))));
  spawnError.catch(() => undefined);

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      });
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await Promise.race([
      spawnError,
      waitFor(
        `prometheus on ${port}`,
        async () => {
          if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}): ${logLines.join('')}`);
          const res = await fetch(`${url}/-/ready`);
          return res.status === 200;
        },
        30_000,
      ),
    ]);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${logLines.join('')}`);
  }

  const api = async <T>(path: string, params: Record<string, string>): Promise<T> => {
    const res = await fetch(`${url}${path}?${new URLSearchParams(params)}`);
    const body = (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path} ${JSON.stringify(params)}: ${body.errorType}: ${body.error}`);
    return body.data;
  };
  const instant = async (expr: string, time?: number) => {
    const params: Record<string, string> = { query: expr };
    if (time !== undefined) params.time = String(time);
    return api<{ resultType: string; result: unknown }>('/api/v1/query', params);
  };
  const intervalMs = parseMs(interval);

  const server: PrometheusServer = {
    url,
    async query(expr, time) {
      const data = await instant(expr, time);
      if (data.resultType !== 'vector') throw new Error(`${expr}: expected a vector, got ${data.resultType}`);
      return data.result as PromSample[];
    },
    async querySamples(expr, time) {
      const data = await instant(expr, time);
      if (data.resultType !== 'matrix') throw new Error(`${expr}: expected a range vector, got ${data.resultType}`);
      return data.result as PromSeries[];
    },
    async targets() {
      const data = await api<{ activeTargets: Array<{ scrapeUrl: string; health: string; lastError: string; lastScrape: string }> }>('/api/v1/targets', {});
      return data.activeTargets;
    },
    async waitForScrapes(n = 2, timeoutMs = 20_000) {
      let firstUp: number | undefined;
      await waitFor(
        `${n} scrapes of ${o.targets.join(', ')}`,
        async () => {
          const ts = await server.targets();
          if (ts.length !== o.targets.length || !ts.every((t) => t.health === 'up')) return false;
          const last = Math.min(...ts.map((t) => Date.parse(t.lastScrape)));
          firstUp ??= last;
          return last >= firstUp + (n - 1) * intervalMs;
        },
        timeoutMs,
      );
    },
    log: () => logLines.join(''),
    stop,
  };
  return server;
}

function parseMs(d: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(d);
  if (!m) throw new Error(`unsupported interval ${d}`);
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000);
}

export interface ToolResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs promtool with `args`, feeding `input` on stdin. */
export function promtool(args: readonly string[], input?: string, cwd?: string): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', args, { stdio: ['pipe', 'pipe', 'pipe'], cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.once('error', (e) => reject(new Error(`promtool: ${e.message} (run scripts/ensure-system-deps.sh)`)));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

/** `promtool check metrics` on an exposition text: ok, or the linter's complaints. */
export async function checkMetrics(text: string): Promise<{ ok: boolean; problems: string[] }> {
  const r = await promtool(['check', 'metrics'], text);
  const problems = `${r.stdout}${r.stderr}`.split('\n').map((l) => l.trim()).filter(Boolean);
  return { ok: r.code === 0, problems };
}
