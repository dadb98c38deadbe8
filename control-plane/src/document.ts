// A document the control plane stores and streams: the proxy config of the core issue plus
// a top-level `selector` naming the proxies it is for. It is validated with the proxy's own
// schema (extended, not copied) so that `tsmesh apply` and `tsmesh validate` agree.
//
// What a document's fields mean here:
// - `selector`: which proxies run it (see selector.ts for overlaps).
// - `admin` and `controlPlane`: accepted, so that one file shape serves both, but never
//   streamed: a proxy's admin address and its control-plane connection come from its own
//   bootstrap file, and the bootstrap values always win.
// - everything else is streamed as written; the proxy fills defaults when it validates.
import { z } from 'zod';
import { isDeepStrictEqual } from 'node:util';
import { proxyConfigShape } from '../../proxy/src/config/schema.js';
import { parseYaml } from '../../proxy/src/config/load.js';
import { validateConfig, validateWith, type ValidationResult } from '../../proxy/src/config/validate.js';
import { fromWire, toWire, type ConfigDocument } from '../../proxy/src/config/wire.js';
import type { ProxyConfig as WireProxyConfig } from '../../proto/gen/tsmesh/config/v1/config.js';
import { SELECTOR_PATTERN } from './selector.js';

export const selector = z
  .string({ error: 'must name the proxies this document is for, e.g. gateway-* (a glob on node names)' })
  .regex(SELECTOR_PATTERN, { error: 'must be 1-63 letters, digits, "_", ".", "-" and the wildcards "*" and "?"' });

export const controlPlaneDocument = z.strictObject({ ...proxyConfigShape, selector });

export interface AcceptedDocument {
  readonly selector: string;
  /** The document as written (YAML-shaped, selector included): what history and diff show. */
  readonly document: Record<string, unknown>;
}

/** The part of a document that is streamed to proxies, as a YAML-shaped document. */
export function streamedPart(document: Record<string, unknown>): ConfigDocument {
  const { selector: _s, admin: _a, controlPlane: _c, ...rest } = document;
  return rest as ConfigDocument;
}

export function toSnapshot(document: Record<string, unknown>): WireProxyConfig {
  return toWire(streamedPart(document));
}

/**
 * Problems a valid document would meet on the wire: the proxy must read exactly what was
 * applied. proto3 cannot tell an empty list from an absent one, so e.g. `retry.on: []`
 * (retry on nothing) would reach the proxy as "retry on the defaults".
 */
export function wireRoundTripProblems(document: Record<string, unknown>): string[] {
  const part = streamedPart(document);
  const before = validateConfig({ ...part, controlPlane: { address: '127.0.0.1:1', node: 'check' } });
  const after = validateConfig({ ...fromWire(toWire(part)), controlPlane: { address: '127.0.0.1:1', node: 'check' } });
  if (!before.ok) return [];
  if (!after.ok) return after.errors.map((e) => `${e} (after conversion to the wire format)`);
  if (isDeepStrictEqual(before.value, after.value)) return [];
  const path = firstDifference(before.value, after.value, []);
  return [`${path || '(document)'}: cannot be streamed as written (an empty list reads as absent on the wire; remove the field or set what you mean, e.g. retry.attempts: 0)`];
}

function firstDifference(a: unknown, b: unknown, path: string[]): string | undefined {
  if (isDeepStrictEqual(a, b)) return undefined;
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    for (let i = 0; i < a.length; i++) {
      const item = a[i] as { name?: unknown };
      const d = firstDifference(a[i], b[i], [...path, typeof item?.name === 'string' ? item.name : `[${i}]`]);
      if (d !== undefined) return d;
    }
  }
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], [...path, key]);
      if (d !== undefined) return d;
    }
  }
  return path.join('.');
}

/**
 * Validates a document given as YAML/JSON text or as an already parsed value: every
 * problem by path, YAML syntax errors with line and column.
 */
export function validateDocument(input: unknown, source = 'document'): ValidationResult<AcceptedDocument> {
  let raw = input;
  if (typeof input === 'string') {
    const parsed = parseYaml(input, source);
    if (!parsed.ok) return parsed;
    raw = parsed.value;
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, errors: ['(document): must be a mapping of config fields with a selector'] };
  }
  const result = validateWith(controlPlaneDocument, raw);
  if (!result.ok) return result;
  const document = raw as Record<string, unknown>;
  const wireProblems = wireRoundTripProblems(document);
  if (wireProblems.length > 0) return { ok: false, errors: wireProblems };
  return { ok: true, value: { selector: result.value.selector, document } };
}
