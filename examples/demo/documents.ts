// The mesh's config documents, made from the Kubernetes ones (examples/deploy/mesh/): the
// same policies, with this host's addresses written in.
//
// In Kubernetes one sidecar document (`selector: gateway-*`) serves every pod, because every
// pod has its own network namespace: each sidecar listens on :15001 and reaches its app on
// 127.0.0.1:9000. On one host every sidecar needs ports of its own, so the demo applies one
// document per instance, generated from that one template: `selector: gateway-1` with
// gateway-1's ports, `selector: gateway-2`, ... The edge document lists the sidecars'
// addresses as its endpoints instead of the StatefulSet's DNS names.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/** examples/deploy/mesh/ in the source tree (next to dist/). */
export const TEMPLATE_DIR = fileURLToPath(new URL('../../../examples/deploy/mesh/', import.meta.url));

/** A config document as the control plane's API takes it: plain data, durations as strings. */
export type MeshDocument = Record<string, unknown>;

export interface MeshTemplates {
  /** The edge's document (examples/deploy/mesh/edge.yaml). */
  readonly edge: MeshDocument;
  /** Every sidecar's document (examples/deploy/mesh/gateway-sidecars.yaml). */
  readonly sidecar: MeshDocument;
}

export interface InstanceAddresses {
  /** The sidecar's node name, also its document's selector: gateway-1, gateway-2, ... */
  readonly node: string;
  /** host:port of the gateway app. */
  readonly app: string;
  /** host:port the sidecar listens on. */
  readonly sidecar: string;
}

export interface EdgeAddresses {
  readonly node: string;
  /** host:port of the edge listener. */
  readonly listen: string;
}

export function loadTemplates(dir: string = TEMPLATE_DIR): MeshTemplates {
  const read = (file: string): MeshDocument => {
    const path = `${dir.replace(/\/$/, '')}/${file}`;
    const doc: unknown = parse(readFileSync(path, 'utf8'));
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error(`${path}: not a config document`);
    return doc as MeshDocument;
  };
  return { edge: read('edge.yaml'), sidecar: read('gateway-sidecars.yaml') };
}

function clone(doc: MeshDocument): MeshDocument {
  return structuredClone(doc);
}

type Item = Record<string, unknown>;

function only(doc: MeshDocument, field: 'listeners' | 'clusters', which: string): Item {
  const items = doc[field];
  if (!Array.isArray(items) || items.length !== 1) throw new Error(`the ${which} template must have exactly one entry in ${field} (it has ${Array.isArray(items) ? items.length : 0})`);
  return items[0] as Item;
}

/** gateway-1's sidecar document: the template with its selector, listener and app address. */
export function sidecarDocument(template: MeshDocument, inst: InstanceAddresses): MeshDocument {
  const doc = clone(template);
  doc.selector = inst.node;
  only(doc, 'listeners', 'sidecar').address = inst.sidecar;
  only(doc, 'clusters', 'sidecar').endpoints = [inst.app];
  return doc;
}

/**
 * The edge's document: the template with its selector, listener address and the sidecars as
 * endpoints; `redis.url` is the given Redis (global rate limits) or, without one, removed
 * (the proxy then counts its global limits locally, at the full rate).
 */
export function edgeDocument(template: MeshDocument, edge: EdgeAddresses, sidecars: readonly string[], redisUrl?: string): MeshDocument {
  const doc = clone(template);
  doc.selector = edge.node;
  only(doc, 'listeners', 'edge').address = edge.listen;
  only(doc, 'clusters', 'edge').endpoints = [...sidecars];
  if (redisUrl) doc.redis = { url: redisUrl };
  else delete doc.redis;
  return doc;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Deep-merges `patch` into `doc` (a copy): objects merge key by key; lists of named items
 * (listeners, routes, clusters) merge item by item by name; anything else replaces; `null`
 * removes the key. How the demo and the benchmark adjust the templates without copying them.
 */
export function mergeDocument<T>(doc: T, patch: unknown): T {
  if (patch === undefined) return doc;
  if (patch === null) return undefined as T;
  if (isPlainObject(doc) && isPlainObject(patch)) {
    const out: Record<string, unknown> = { ...doc };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete out[k];
      else out[k] = mergeDocument(out[k], v);
    }
    return out as T;
  }
  if (Array.isArray(doc) && Array.isArray(patch) && patch.every((p) => isPlainObject(p) && typeof p.name === 'string')) {
    const out = doc.map((item: unknown) => {
      const p = isPlainObject(item) ? patch.find((x) => (x as Item).name === item.name) : undefined;
      return p ? mergeDocument(item, p) : item;
    });
    for (const p of patch) if (!doc.some((item: unknown) => isPlainObject(item) && item.name === (p as Item).name)) out.push(structuredClone(p));
    return out as T;
  }
  return structuredClone(patch) as T;
}
