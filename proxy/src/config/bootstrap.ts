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

export async function loadBootstrapFile(path: string): Promise<ValidationResult<ProxyConfig>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return { ok: false, errors: [`${path}: ${(err as Error).message}`] };
  }
  const raw = parseYaml(text, path);
  if (!raw.ok) return raw;
  const checked = validateConfig(raw.value);
  if (!checked.ok) return checked;
  return checkBootstrap(checked.value, typeof raw.value === 'object' && raw.value !== null ? (raw.value as Record<string, unknown>) : {});
}

export async function startFromControlPlane(bootstrap: ProxyConfig, target: ConfigTarget, opts: BootOptions = {}): Promise<ControlPlaneBoot> {
  const cp = bootstrap.controlPlane;
  if (!cp) throw new Error('startFromControlPlane: the bootstrap config has no controlPlane');
  const cache = cp.cacheDir ? new DiskCache(cp.cacheDir) : undefined;
  const client = new ControlPlaneClient({
    ...opts,
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
    const timer = setTimeout(() => resolve('unreachable'), opts.initialFetchTimeoutMs ?? 5000);
    cleanup = () => {
      unsubscribe();
      clearTimeout(timer);
    };
  });
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
