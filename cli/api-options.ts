// What the operator commands (apply, status, history, diff, rollback) share: the control
// plane's address and token, with environment twins, and plain-text tables.
import { Option, type Command } from 'commander';
import { hostname, userInfo } from 'node:os';
import { ApiClient, ApiError } from '../control-plane/src/api/client.js';

export const DEFAULT_SERVER = 'http://127.0.0.1:15011';

export interface ApiFlags {
  server: string;
  token?: string;
  json?: boolean;
}

export function withApiOptions(cmd: Command, opts: { json?: boolean } = {}): Command {
  cmd
    .addOption(new Option('--server <url>', 'the control plane HTTP API').env('TSMESH_SERVER').default(DEFAULT_SERVER))
    .addOption(new Option('--token <token>', 'the control plane bearer token').env('TSMESH_TOKEN'));
  if (opts.json) cmd.option('--json', "print the API's answer as JSON");
  return cmd;
}

function author(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `unknown@${hostname()}`;
  }
}

export function apiClient(flags: ApiFlags): ApiClient {
  return new ApiClient({ server: flags.server, token: flags.token, author: author() });
}

/** Prints an API failure (every problem of a refused document) and sets a failing exit code. */
export function reportFailure(err: unknown, context = 'tsmesh'): void {
  if (err instanceof ApiError) {
    console.error(`${context}: ${err.message}`);
    for (const e of err.errors) console.error(`  ${e}`);
  } else {
    console.error(`${context}: ${err instanceof Error ? err.message : String(err)}`);
  }
  process.exitCode = 1;
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function parseRevision(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new Error(`"${text}" is not a revision number`);
  return Number(text);
}

export function since(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}
