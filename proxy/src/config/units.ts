// Durations and sizes as people write them in YAML ("250ms", "2s", "64KiB") and the
// numbers the proxy uses (milliseconds, bytes). One parser each, shared by the schema,
// the CLI and the control plane.

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses "250ms", "2s", "1.5s", "1m", "1h" (and "0") into milliseconds; undefined if malformed. */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const m = DURATION.exec(text);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * DURATION_UNIT_MS[m[2]!]!);
}

/** The shortest exact way to write a duration back ("1500ms" stays "1500ms", 2000 becomes "2s"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

const SIZE = /^(\d+)(B|KB|KiB|MB|MiB|GB|GiB)?$/;
const SIZE_UNIT: Record<string, number> = {
  B: 1, KB: 1000, KiB: 1024, MB: 1_000_000, MiB: 1024 ** 2, GB: 1_000_000_000, GiB: 1024 ** 3,
};

/** Parses a byte count given as a number or as "64KiB", "10MB"; undefined if malformed. */
export function parseSize(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  const m = SIZE.exec(value);
  if (!m) return undefined;
  return Number(m[1]) * SIZE_UNIT[m[2] ?? 'B']!;
}

export interface HostPort {
  host: string;
  port: number;
}

/** Parses "127.0.0.1:8080", "localhost:0" or "[::1]:8080"; undefined if malformed. */
export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2]!, port };
}
