// N example gateway instances, each its own `tsmesh gateway` process on a free loopback
// port (separate processes like the original system's containers, and off the process that
// runs the benchmark).
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { BackingServices } from './types.js';

const CLI = fileURLToPath(new URL('../../cli/tsmesh.js', import.meta.url));

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

export interface GatewayProcess {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
}

export interface GatewayFleet {
  readonly instances: readonly GatewayProcess[];
  stop(): Promise<void>;
}

function startOne(index: number, backing: BackingServices, seedDocuments: number | undefined): Promise<{ child: ChildProcess; proc: GatewayProcess }> {
  const args = [CLI, 'gateway', '--listen', '127.0.0.1:0', '--database-url', backing.databaseUrl, '--redis-url', backing.redisUrl, '--name', `gateway-${index + 1}`];
  if (seedDocuments !== undefined) args.push('--seed-documents', String(seedDocuments));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`gateway-${index + 1} did not start in 60 s: ${lines.join('\n')}`)), 60_000);
    child.stderr!.on('data', (d: Buffer) => lines.push(d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (lines.length < 50) lines.push(line);
        let rec: { msg?: string; url?: string };
        try {
          rec = JSON.parse(line) as typeof rec;
        } catch {
          continue;
        }
        if (rec.msg === 'listening' && rec.url) {
          clearTimeout(timer);
          resolve({ child, proc: { url: rec.url, port: Number(new URL(rec.url).port), pid: child.pid! } });
        }
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`gateway-${index + 1} exited (${code ?? signal}) before listening: ${lines.join('\n')}`));
    });
  });
}

function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Starts `count` instances at once (their migrations serialise on an advisory lock). */
export async function startGatewayFleet(count: number, backing: BackingServices, seedDocuments?: number): Promise<GatewayFleet> {
  const settled = await Promise.allSettled(Array.from({ length: count }, (_, i) => startOne(i, backing, seedDocuments)));
  const children = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value.child] : []));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  const stop = async () => {
    await Promise.all(children.map((c) => stopChild(c, 15_000)));
  };
  if (failed) {
    await stop();
    throw failed.reason;
  }
  return { instances: settled.map((s) => (s as PromiseFulfilledResult<{ proc: GatewayProcess }>).value.proc), stop };
}
