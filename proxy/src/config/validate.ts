// Validates a whole config document and lists every problem by path, naming list items
// by their `name` ("clusters.gateway.retry.attempts: must be an integer >= 0") so that an
// operator can find the line without counting array indices.
import type { z } from 'zod';
import { parseHostPort } from './units.js';
import { proxyConfig, type ProxyConfig } from './schema.js';

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; errors: string[] };

type Raw = Record<string, unknown>;
const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Renders a path through the raw document, using item names where items have one. */
export function formatPath(doc: unknown, path: readonly PropertyKey[]): string {
  let out = '';
  let node: unknown = doc;
  for (const key of path) {
    if (typeof key === 'number' && Array.isArray(node)) {
      const item = node[key];
      out += isObject(item) && typeof item.name === 'string' && item.name !== '' ? `${out ? '.' : ''}${item.name}` : `[${key}]`;
      node = item;
    } else {
      out += `${out ? '.' : ''}${String(key)}`;
      node = isObject(node) ? node[key as string] : undefined;
    }
  }
  return out || '(document)';
}

function issueMessages(doc: unknown, issues: readonly z.core.$ZodIssue[]): string[] {
  const out: string[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push(`${formatPath(doc, [...issue.path, key])}: unknown field`);
    } else if (issue.code === 'invalid_union' && issue.errors.length > 0 && issue.message === 'Invalid input') {
      out.push(`${formatPath(doc, issue.path)}: ${issue.errors[0]![0]?.message ?? issue.message}`);
    } else {
      const msg = issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : issue.message;
      out.push(`${formatPath(doc, issue.path)}: ${msg}`);
    }
  }
  return out;
}

/** Checks across items that one field's schema cannot see: unique names, references, addresses. */
function crossChecks(doc: unknown): string[] {
  const errors: string[] = [];
  if (!isObject(doc)) return errors;
  const listeners = Array.isArray(doc.listeners) ? doc.listeners.filter(isObject) : [];
  const clusters = Array.isArray(doc.clusters) ? doc.clusters.filter(isObject) : [];

  const clusterNames = new Set<string>();
  for (const c of clusters) {
    if (typeof c.name !== 'string') continue;
    if (clusterNames.has(c.name)) errors.push(`clusters.${c.name}: duplicate cluster name`);
    clusterNames.add(c.name);
  }

  const listenerNames = new Set<string>();
  const addresses = new Map<string, string>();
  const adminAddress = isObject(doc.admin) && typeof doc.admin.address === 'string' ? doc.admin.address : undefined;
  const routeNames = new Set<string>();
  for (const l of listeners) {
    const lname = typeof l.name === 'string' ? l.name : '?';
    if (listenerNames.has(lname)) errors.push(`listeners.${lname}: duplicate listener name`);
    listenerNames.add(lname);
    if (typeof l.address === 'string' && parseHostPort(l.address)?.port !== 0) {
      const other = addresses.get(l.address);
      if (other !== undefined) errors.push(`listeners.${lname}.address: ${l.address} is also used by listener ${other}`);
      else addresses.set(l.address, lname);
      if (l.address === adminAddress) errors.push(`listeners.${lname}.address: ${l.address} is also the admin address`);
    }
    const routes = Array.isArray(l.routes) ? l.routes.filter(isObject) : [];
    for (const r of routes) {
      const rname = typeof r.name === 'string' ? r.name : '?';
      const at = `listeners.${lname}.routes.${rname}`;
      // Route names label metrics, so they must be unique in the whole proxy, not only per listener.
      if (routeNames.has(rname)) errors.push(`${at}: duplicate route name (route names are unique across listeners)`);
      routeNames.add(rname);
      const hasOne = r.cluster !== undefined;
      const hasMany = r.clusters !== undefined;
      if (hasOne === hasMany) errors.push(`${at}: must have exactly one of cluster or clusters`);
      if (typeof r.cluster === 'string' && !clusterNames.has(r.cluster)) errors.push(`${at}.cluster: unknown cluster "${r.cluster}"`);
      if (Array.isArray(r.clusters)) {
        let total = 0;
        r.clusters.filter(isObject).forEach((w, i) => {
          if (typeof w.name === 'string' && !clusterNames.has(w.name)) errors.push(`${at}.clusters[${i}].name: unknown cluster "${w.name}"`);
          if (typeof w.weight === 'number') total += w.weight;
        });
        if (r.clusters.length > 0 && total <= 0) errors.push(`${at}.clusters: weights must add up to more than 0`);
      }
      const retry = isObject(r.retry) ? r.retry : undefined;
      if (retry && Array.isArray(retry.on) && retry.on.includes('retriable-status') && !(Array.isArray(retry.retriableStatuses) && retry.retriableStatuses.length > 0)) {
        errors.push(`${at}.retry.retriableStatuses: must list statuses when "on" has retriable-status`);
      }
    }
  }
  if (listeners.length === 0 && doc.controlPlane === undefined) {
    errors.push('listeners: a config needs at least one listener, or a controlPlane to take them from');
  }
  return errors;
}

/** Validates a parsed YAML/JSON document as a proxy config. */
export function validateConfig(doc: unknown): ValidationResult<ProxyConfig> {
  return validateWith(proxyConfig, doc);
}

/** Validates with a schema that extends the proxy config (e.g. the control plane's documents). */
export function validateWith<S extends z.ZodType>(schema: S, doc: unknown): ValidationResult<z.output<S>> {
  const parsed = schema.safeParse(doc ?? {});
  const errors = [...(parsed.success ? [] : issueMessages(doc, parsed.error.issues)), ...crossChecks(doc)];
  if (errors.length > 0 || !parsed.success) return { ok: false, errors: [...new Set(errors)] };
  return { ok: true, value: parsed.data };
}
