// A small mesh for end-to-end tests of the control plane: real proxies that take their
// config from it (in process through runControlPlaneProxy, the code `tsmesh proxy` runs, or
// as `tsmesh proxy` processes), the `tsmesh` CLI as a process, and client load that records
// every answer with its time so that a test can count what a phase of a run admitted.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { runControlPlaneProxy, type RunningProxy } from '../../proxy/src/boot.js';
import type { ProxyConfig } from '../../proxy/src/config/schema.js';
import { validateConfig } from '../../proxy/src/config/validate.js';
import { POLICY_BUILDERS } from '../../proxy/src/policy/chain.js';
import { waitFor } from './servers.js';

export const TSMESH = fileURLToPath(new URL('../../cli/tsmesh.js', import.meta.url));

/** The real policy chain in its order (rate limit first): chain.ts's default since resilience-e2e wired it. */
export const ALL_POLICIES = POLICY_BUILDERS;

export function bootstrap(node: string, grpcAddress: string, opts: { token: string; cacheDir?: string; admin?: string }): ProxyConfig {
  const v = validateConfig({
    admin: { address: opts.admin ?? '127.0.0.1:0' },
    drain: { delay: '0', timeout: '2s' },
    controlPlane: { address: grpcAddress, node, token: opts.token, ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}) },
  });
  if (!v.ok) throw new Error(v.errors.join('; '));
  return v.value;
}

/** A proxy in this process, booted from a bootstrap like `tsmesh proxy` (fast reconnects for tests). */
export function startMeshProxy(node: string, grpcAddress: string, opts: { token: string; cacheDir?: string; initialFetchTimeoutMs?: number }): Promise<RunningProxy> {
  return runControlPlaneProxy(bootstrap(node, grpcAddress, opts), {
    policies: ALL_POLICIES,
    rateLimiterGraceMs: 1000,
    boot: { backoff: { baseMs: 50, maxMs: 400 }, initialFetchTimeoutMs: opts.initialFetchTimeoutMs ?? 3000 },
  });
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [TSMESH, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A `tsmesh` process (control plane or proxy) with its output kept. */
export class TsmeshProcess {
  readonly output: string[] = [];
  readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    const keep = (d: Buffer) => this.output.push(...d.toString().split('\n').filter((l) => l !== ''));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static spawn(args: string[], env: Record<string, string>): TsmeshProcess {
    return new TsmeshProcess(spawn(process.execPath, [TSMESH, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  get text(): string {
    return this.output.join('\n');
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first match of `re` in the output, once it appears. */
  async waitForLine(re: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
    let m: RegExpExecArray | null = null;
    await waitFor(`${re} in the output of tsmesh ${this.child.spawnargs.slice(2, 3).join(' ')}:\n${this.text}`, async () => {
      if (!this.running && !(m = re.exec(this.text))) throw new Error(`exited: ${this.text}`);
      return (m = re.exec(this.text)) !== null;
    }, timeoutMs);
    return m!;
  }

  async kill(signal: NodeJS.Signals): Promise<number | null> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }
}

/** `tsmesh control-plane` on a real PostgreSQL; resolves once it is ready, with its HTTP address. */
export async function startControlPlaneProcess(databaseUrl: string, grpcPort: number, token: string, replica = 'proc'): Promise<{ proc: TsmeshProcess; http: string }> {
  const { DATABASE_URL: _, ...env } = process.env;
  const proc = TsmeshProcess.spawn(['control-plane', '--grpc', `127.0.0.1:${grpcPort}`, '--http', '127.0.0.1:0', '--replica', replica], {
    ...(env as Record<string, string>),
    DATABASE_URL: databaseUrl,
    TSMESH_TOKEN: token,
  });
  const m = await proc.waitForLine(/"http":"([^"]+)".*"msg":"control plane ready"/, 60_000);
  return { proc, http: m[1]! };
}

export interface Answer {
  /** performance.now() when the answer (or the failure) came. */
  readonly at: number;
  /** HTTP status, or 0 for a failure without an answer. */
  readonly status: number;
  readonly error?: string;
}

/** Answers to a load in a time window: by status, with failures (no answer) apart. */
export function tally(answers: readonly Answer[], from = -Infinity, to = Infinity): { total: number; byStatus: Record<number, number>; failures: string[]; ok: number; server5xx: number } {
  const byStatus: Record<number, number> = {};
  const failures: string[] = [];
  let total = 0;
  for (const a of answers) {
    if (a.at < from || a.at >= to) continue;
    total++;
    if (a.status === 0) failures.push(a.error ?? 'failed');
    else byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
  }
  const server5xx = Object.entries(byStatus).reduce((n, [s, c]) => n + (Number(s) >= 500 ? c : 0), 0);
  return { total, byStatus, failures, ok: byStatus[200] ?? 0, server5xx };
}

/**
 * Client load on one port over keep-alive connections, until stop(): either `users` loops
 * each sending its next request when the last one is answered (closed), or `rate` requests
 * per second whatever the answers (paced), on at most `connections` sockets.
 */
export class Load {
  readonly answers: Answer[] = [];
  private readonly agent: Agent;
  private stopped = false;
  private readonly running = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly port: number,
    private readonly opts: { path?: string; headers?: Record<string, string>; users?: number; rate?: number; connections?: number; timeoutMs?: number } = {},
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: opts.connections ?? opts.users ?? 8 });
    if (opts.rate !== undefined) this.pace(opts.rate);
    else for (let i = 0; i < (opts.users ?? 2); i++) this.track(this.loop());
  }

  private track(p: Promise<void>): void {
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  private async loop(): Promise<void> {
    while (!this.stopped) await this.once();
  }

  private pace(rate: number): void {
    const start = performance.now();
    let sent = 0;
    const tick = () => {
      if (this.stopped) return;
      const due = Math.floor(((performance.now() - start) * rate) / 1000);
      // After a stall, at most a tenth of a second is made up at once.
      if (due - sent > rate / 10) sent = due - Math.ceil(rate / 10);
      while (sent < due) {
        sent++;
        this.track(this.once());
      }
      this.timer = setTimeout(tick, 5);
    };
    tick();
  }

  private once(): Promise<void> {
    return new Promise((resolve) => {
      const done = (status: number, error?: string) => {
        this.answers.push({ at: performance.now(), status, ...(error ? { error } : {}) });
        resolve();
      };
      const req = request({ host: '127.0.0.1', port: this.port, path: this.opts.path ?? '/', headers: this.opts.headers, agent: this.agent, timeout: this.opts.timeoutMs ?? 10_000 }, (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode ?? 0));
        res.on('error', (err) => done(0, err.message));
      });
      req.on('timeout', () => req.destroy(new Error('client timeout')));
      req.on('error', (err) => done(0, (err as NodeJS.ErrnoException).code ?? err.message));
      req.end();
    });
  }

  /** Stops sending and waits for the answers in flight. */
  async stop(): Promise<Answer[]> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    while (this.running.size > 0) await Promise.all([...this.running]);
    this.agent.destroy();
    return this.answers;
  }
}

/** Reads a proxy's admin endpoint (its real HTTP listener, like an operator would). */
export async function admin(p: RunningProxy | string, path: string): Promise<{ status: number; text: string }> {
  const address = typeof p === 'string' ? p : p.runtime.addresses.admin;
  const res = await fetch(`http://${address}${path}`);
  return { status: res.status, text: await res.text() };
}

/** The sum of a metric's samples whose labels include `labels`, from a /metrics text. */
export function metricIn(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let total: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total = (total ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
