// The mesh's processes: each a child `node dist/cli/tsmesh.js <command>` (or another script
// of ours) with its output split into lines and handed to one sink with the process's name.
//
// Children run in process groups of their own (`detached`), so a Ctrl-C typed in the
// terminal reaches only the parent, which then stops them in order (edge first, database
// last) instead of every process racing to exit at once. Whatever is still running when the
// parent exits is killed (SIGKILL to its process group) by an exit hook: on a normal exit, an
// uncaught error, and SIGINT/SIGTERM/SIGHUP (exit-hooks.ts turns those into an exit when
// nothing else handles them). A SIGKILL of the parent cannot be caught: its children then
// keep running.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { killGroup, killOnExit } from './exit-hooks.js';

/** The tsmesh CLI, compiled: dist/cli/tsmesh.js. */
export const TSMESH_CLI = fileURLToPath(new URL('../../cli/tsmesh.js', import.meta.url));

export type OutputStream = 'stdout' | 'stderr';
export type OutputSink = (process: string, stream: OutputStream, line: string) => void;

export interface ChildSpec {
  /** Name shown in front of its output and in errors, e.g. "gateway-1". */
  readonly name: string;
  /** Script run with this Node binary (default: the tsmesh CLI). */
  readonly script?: string;
  /** A program run with `args` instead of this Node binary and `script`. */
  readonly executable?: string;
  readonly args: readonly string[];
  /** Added to the parent's environment. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Lines kept per process for error messages. */
const KEEP_LINES = 40;

export class MeshProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly recent: string[] = [];
  private readonly watchers = new Set<(stream: OutputStream, line: string) => void>();
  private stopping: Promise<void> | undefined;
  /** Why it could not be started, when it could not. */
  private startError: Error | undefined;

  constructor(
    readonly spec: ChildSpec,
    sink: OutputSink,
  ) {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const [k, v] of Object.entries(spec.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    const [file, args] = spec.executable ? [spec.executable, spec.args] : [process.execPath, [spec.script ?? TSMESH_CLI, ...spec.args]];
    this.child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env });
    killOnExit(this.child);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => resolve({ code, signal }));
      // A failed spawn (no such program, EMFILE) emits 'error' and never 'exit': as far as
      // callers are concerned it exited. Errors of a started process ('exit' follows) are only
      // told.
      this.child.on('error', (err) => {
        const line = `${this.child.pid === undefined ? 'cannot start' : 'error'}: ${err.message}`;
        this.keep('stderr', line);
        sink(spec.name, 'stderr', line);
        if (this.child.pid === undefined && !this.startError) {
          this.startError = err;
          resolve({ code: null, signal: null });
        }
      });
    });
    for (const stream of ['stdout', 'stderr'] as const) {
      // Null when the spawn failed before its pipes were made (EMFILE).
      const out = this.child[stream];
      if (!out) continue;
      let buf = '';
      out.setEncoding('utf8');
      out.on('data', (d: string) => {
        buf += d;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          this.keep(stream, line);
          sink(spec.name, stream, line);
        }
      });
      out.on('end', () => {
        if (buf) {
          this.keep(stream, buf);
          sink(spec.name, stream, buf);
          buf = '';
        }
      });
    }
  }

  get name(): string {
    return this.spec.name;
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  get running(): boolean {
    return this.startError === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** How it ended: its exit code or signal, or that it could not be started. */
  get exitStatus(): string {
    if (this.startError) return `could not start: ${this.startError.message}`;
    return String(this.child.exitCode ?? this.child.signalCode ?? 'running');
  }

  private keep(stream: OutputStream, line: string): void {
    this.recent.push(line);
    if (this.recent.length > KEEP_LINES) this.recent.shift();
    for (const w of this.watchers) w(stream, line);
  }

  /** Its last lines of output, for an error message. */
  tail(): string {
    return this.recent.length ? this.recent.map((l) => `  ${l}`).join('\n') : '  (no output)';
  }

  /**
   * Resolves with the first output line (or the value `match` extracts from it) that `match`
   * accepts; rejects if the process exits first or nothing matched within timeoutMs.
   */
  waitForLine<T>(match: (line: string, stream: OutputStream) => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.watchers.delete(watch);
        fn();
      };
      const watch = (stream: OutputStream, line: string) => {
        const v = match(line, stream);
        if (v !== undefined) finish(() => resolve(v));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`${this.name}: no ${what} within ${timeoutMs / 1000} s; its output:\n${this.tail()}`))), timeoutMs);
      this.watchers.add(watch);
      void this.exited.then(() => finish(() => reject(new Error(`${this.name} exited (${this.exitStatus}) before ${what}; its output:\n${this.tail()}`))));
    });
  }

  /**
   * SIGTERM to the process (it drains and stops what it started), then SIGKILL to its whole
   * process group after graceMs. Once it has exited, SIGKILL to the group again: a grandchild
   * it did not stop (or could not, having been killed) must not outlive it.
   */
  stop(graceMs: number): Promise<void> {
    this.stopping ??= (async () => {
      if (this.running) {
        const kill = setTimeout(() => this.kill(), graceMs);
        this.signal('SIGTERM');
        await this.exited;
        clearTimeout(kill);
      }
      this.kill();
    })();
    return this.stopping;
  }

  /** Signals the process (not its group: a child that owns grandchildren stops them itself). */
  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  /** SIGKILL to its whole process group, at once (also after it exited: what is left of the group). */
  kill(): void {
    killGroup(this.child);
  }
}
