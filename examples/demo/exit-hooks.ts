// What makes sure our child processes do not outlive us. Node runs no 'exit' listeners when
// a signal's default action ends the process (a Ctrl-C, a SIGTERM from a supervisor, a SIGHUP
// when the terminal closes), so an exit hook alone is not enough: exitOnSignals() turns those
// signals into process.exit(128 + n), which runs the hooks. SIGKILL cannot be caught: children
// of a SIGKILLed process keep running (those spawned detached lead process groups of their
// own and can be killed with `kill -- -PID`).
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';

export const EXIT_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

let signalsHooked = false;

/**
 * On SIGINT, SIGTERM or SIGHUP, exit with 130, 143 or 129 so that exit hooks run, unless
 * something else listens for that signal (the demo stops its mesh in order itself). Once per
 * process; later calls do nothing.
 */
export function exitOnSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const sig of EXIT_SIGNALS) {
    process.on(sig, () => {
      if (process.listenerCount(sig) > 1) return;
      process.exit(128 + constants.signals[sig]);
    });
  }
}

/**
 * SIGKILL to the child's process group (a child spawned `detached` leads one: its own
 * children go with it, e.g. nginx's workers) or, when it leads none, to the child alone.
 */
export function killGroup(child: ChildProcess): void {
  if (!child.pid) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

const live = new Set<ChildProcess>();
let exitHooked = false;

/**
 * Kills the child (killGroup) if it still runs when this process exits, and makes the
 * signals that would end this process without exit hooks run them (exitOnSignals).
 */
export function killOnExit(child: ChildProcess): void {
  exitOnSignals();
  if (!exitHooked) {
    exitHooked = true;
    process.once('exit', () => {
      for (const c of live) killGroup(c);
    });
  }
  if (child.exitCode !== null || child.signalCode !== null) return;
  live.add(child);
  child.once('exit', () => live.delete(child));
  // A child that never started emits 'error' and 'close' but no 'exit'. (No 'error' listener
  // here: an unhandled spawn error stays the caller's.)
  child.once('close', () => live.delete(child));
}
