// Which snapshot each node should run, in memory on every replica: the latest revision of
// every selector, its snapshot converted to the wire once (not once per proxy), and the
// resolution of a node name to one of them (selector.ts). Like go-control-plane's snapshot
// cache, proxies are answered from here; the store only feeds it.
import type { ProxyConfig as WireProxyConfig } from '../../../proto/gen/tsmesh/config/v1/config.js';
import { toSnapshot } from '../document.js';
import type { Revision } from '../store/revisions.js';
import { compileSelector, resolveNode, type CompiledSelector } from '../selector.js';

export interface ServiceSnapshot {
  readonly selector: string;
  readonly compiled: CompiledSelector;
  readonly firstRevision: number;
  readonly revision: number;
  /** The version proxies report: the revision number. */
  readonly version: string;
  readonly createdAt: Date;
  readonly snapshot: WireProxyConfig;
}

export class SnapshotCache {
  private readonly services = new Map<string, ServiceSnapshot>();

  /** Takes a revision if it is newer than what its selector has; true when something changed. */
  set(rev: Revision, firstRevision: number): boolean {
    const known = this.services.get(rev.selector);
    if (known && known.revision >= rev.revision) return false;
    this.services.set(rev.selector, {
      selector: rev.selector,
      compiled: known?.compiled ?? compileSelector(rev.selector),
      firstRevision: Math.min(firstRevision, known?.firstRevision ?? firstRevision),
      revision: rev.revision,
      version: String(rev.revision),
      createdAt: rev.createdAt,
      snapshot: toSnapshot(rev.document),
    });
    return true;
  }

  /** Highest revision known: revisions up to it have been seen. */
  get latestRevision(): number {
    let max = 0;
    for (const s of this.services.values()) max = Math.max(max, s.revision);
    return max;
  }

  resolve(node: string): ServiceSnapshot | undefined {
    return resolveNode(node, this.services.values());
  }

  get size(): number {
    return this.services.size;
  }
}
