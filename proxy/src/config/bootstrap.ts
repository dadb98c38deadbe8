// How a proxy that takes its config from the control plane starts, from a bootstrap file:
//
//   admin: { address: 127.0.0.1:15000 }
//   controlPlane: { address: 127.0.0.1:15010, node: gateway-1, token: T, cacheDir: /var/lib/tsmesh }
//
// `tsmesh proxy` calls `startFromControlPlane` with its ConfigTarget: the stream client starts
// at once; if no snapshot has been applied when the control plane turns out to be unreachable
// (the first attempt failed, or nothing came within `initialFetchTimeoutMs`), the disk copy
// of the last applied snapshot is applied (source disk-cache), and the client keeps trying
// and brings the proxy up to date when the control plane answers.
//
// The bootstrap's admin and controlPlane always win over those of a streamed document.
import { ControlPlaneClient, type ControlPlaneClientOptions, type ControlPlaneClientStatus } from './control-plane-client.js';
import { DiskCache } from './disk-cache.js';
import { readFile } from 'node:fs/promises';
import { parseYaml } from './load.js';
import type { ProxyConfig } from './schema.js';
import type { ConfigTarget } from './target.js';
import { validateConfig, type ValidationResult } from './validate.js';

export type BootedFrom = 'control-plane' | 'disk-cache' | 'none';

export interface ControlPlaneBoot {
  readonly client: ControlPlaneClient;
  readonly cache: DiskCache | undefined;
  /** Where the first config came from; 'none' when neither had one (the client keeps trying). */
  readonly bootedFrom: BootedFrom;
  /** Why (e.g. the disk-cache version, or why the cache was not used). */
  readonly reason: string;
  stop(): Promise<void>;
}

export interface BootOptions extends Omit<ControlPlaneClientOptions, 'target' | 'bootstrap' | 'cache'> {
  /** Longest wait for the first snapshot before falling back to the disk cache (default 5 s). */
  readonly initialFetchTimeoutMs?: number;
  /** Called with the client before it starts (e.g. to show its status while the first snapshot is awaited). */
  readonly onClient?: (client: ControlPlaneClient) => void;
}

/** True when a validated config is a bootstrap (its listeners come from the control plane). */
export function isBootstrap(config: ProxyConfig): boolean {
  return config.controlPlane !== undefined;
}

/**
 * Checks a validated config used as a bootstrap file: with a controlPlane, listeners and
 * clusters come from the control plane, so writing them in the file is a mistake to report.
 */
export function checkBootstrap(config: ProxyConfig, raw: Record<string, unknown>): ValidationResult<ProxyConfig> {
  const errors: string[] = [];
  if (!config.controlPlane) errors.push('controlPlane: is required in a bootstrap file');
  for (const field of ['listeners', 'clusters'] as const) {
    if (raw[field] !== undefined) errors.push(`${field}: comes from the control plane; remove it from the bootstrap file (or remove controlPlane to run from this file alone)`);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: config };
}

/**
 * Values given on the command line (or their environment twins) for the bootstrap's
 * controlPlane block; each wins over the file's. `node` lets a Kubernetes pod pass its own
 * name (`--node $(POD_NAME)`) to a bootstrap shared by all replicas.
 */
export interface BootstrapOverrides {
  readonly address?: string;
  readonly node?: string;
  readonly token?: string;
  readonly cacheDir?: string;
}

/** What `tsmesh proxy --config FILE` runs: a full config file, or a bootstrap naming the control plane. */
export type ProxyFile = { readonly kind: 'static' | 'bootstrap'; readonly config: ProxyConfig };

const OVERRIDE_FLAGS: Record<keyof BootstrapOverrides, string> = { address: '--control-plane', node: '--node', token: '--token', cacheDir: '--cache-dir' };

/**
 * Reads a proxy's file: a bootstrap when it has a controlPlane block or the control plane's
 * address is given as an override, else a static config. Overrides fill the controlPlane block
 * before validation, so a bootstrap without `node` is valid when `--node` gives it.
 */
export async function loadProxyFile(path: string, overrides: BootstrapOverrides = {}): Promise<ValidationResult<ProxyFile>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return { ok: false, errors: [`${path}: ${(err as Error).message}`] };
  }
  const parsed = parseYaml(text, path);
  if (!parsed.ok) return parsed;
  const raw: Record<string, unknown> = typeof parsed.value === 'object' && parsed.value !== null && !Array.isArray(parsed.value) ? { ...(parsed.value as Record<string, unknown>) } : {};
  const bootstrap = raw.controlPlane !== undefined || overrides.address !== undefined;
  if (!bootstrap) {
    const checked = validateConfig(parsed.value);
    return checked.ok ? { ok: true, value: { kind: 'static', config: checked.value } } : checked;
  }
  const given = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined && v !== ''));
  if (typeof raw.controlPlane === 'object' && raw.controlPlane !== null && !Array.isArray(raw.controlPlane)) {
    raw.controlPlane = { ...(raw.controlPlane as Record<string, unknown>), ...given };
  } else if (raw.controlPlane === undefined || raw.controlPlane === null) {
    raw.controlPlane = given;
  }
  const checked = validateConfig(raw);
  if (!checked.ok) {
    // Fields that can come from a flag say so, so that an operator knows both ways to give them.
    const errors = checked.errors.map((e) => {
      const m = /^controlPlane\.(address|node|token|cacheDir): is required$/.exec(e);
      return m ? `${e} (in the file, or with ${OVERRIDE_FLAGS[m[1] as keyof BootstrapOverrides]})` : e;
    });
    return { ok: false, errors };
  }
  const r = checkBootstrap(checked.value, raw);
  return r.ok ? { ok: true, value: { kind: 'bootstrap', config: r.value } } : r;
}

export async function loadBootstrapFile(path: string, overrides: BootstrapOverrides = {}): Promise<ValidationResult<ProxyConfig>> {
  const r = await loadProxyFile(path, overrides);
  if (!r.ok) return r;
  if (r.value.kind !== 'bootstrap') return { ok: false, errors: ['controlPlane: is required in a bootstrap file'] };
  return { ok: true, value: r.value.config };
}

export async function startFromControlPlane(bootstrap: ProxyConfig, target: ConfigTarget, opts: BootOptions = {}): Promise<ControlPlaneBoot> {
  const cp = bootstrap.controlPlane;
  if (!cp) throw new Error('startFromControlPlane: the bootstrap config has no controlPlane');
  const cache = cp.cacheDir ? new DiskCache(cp.cacheDir) : undefined;
  const { onClient, initialFetchTimeoutMs, ...clientOpts } = opts;
  const client = new ControlPlaneClient({
    ...clientOpts,
    target,
    cache,
    bootstrap: { admin: { address: bootstrap.admin.address }, controlPlane: { address: cp.address, node: cp.node, token: cp.token, cacheDir: cp.cacheDir } },
  });

  let cleanup = () => {};
  const firstOutcome = new Promise<'applied' | 'unreachable'>((resolve) => {
    const unsubscribe = client.onStatus((s: ControlPlaneClientStatus) => {
      if (s.lastAckedVersion !== undefined) resolve('applied');
      else if (s.state === 'disconnected' || s.state === 'stopped') resolve('unreachable');
    });
    const timer = setTimeout(() => resolve('unreachable'), initialFetchTimeoutMs ?? 5000);
    cleanup = () => {
      unsubscribe();
      clearTimeout(timer);
    };
  });
  onClient?.(client);
  client.start();
  const outcome = await firstOutcome;
  cleanup();

  let bootedFrom: BootedFrom = 'none';
  let reason = '';
  if (outcome === 'applied' && target.current?.source === 'control-plane') {
    bootedFrom = 'control-plane';
    reason = `version ${target.current.version}`;
  } else {
    const r = await client.bootFromCache();
    if (r.applied) bootedFrom = 'disk-cache';
    else if (target.current?.source === 'control-plane') bootedFrom = 'control-plane';
    reason = r.reason;
  }
  return { client, cache, bootedFrom, reason, stop: () => client.stop() };
}
