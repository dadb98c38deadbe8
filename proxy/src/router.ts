// Routes compiled once per config snapshot: each route becomes a flat list of checks (host,
// path, methods, headers), tried in order; the first route whose checks all pass wins. A
// route that splits traffic picks its cluster by weight. Path and header regexes match the
// whole value (anchored), as Envoy's safe_regex does; paths are matched without the query.
import type { RouteConfig } from './config/schema.js';

/** What the router reads of a request. */
export interface RoutableRequest {
  readonly method: string;
  /** Host header (or absolute-form authority), possibly with a port. */
  readonly host: string;
  readonly path: string;
  header(lowerName: string): string | undefined;
}

const enum PathKind {
  Any,
  Exact,
  Prefix,
  Regex,
}

interface HeaderCheck {
  readonly name: string;
  readonly exact: string | undefined;
  readonly regex: RegExp | undefined;
  readonly present: boolean | undefined;
  readonly invert: boolean;
}

export interface CompiledRoute<T> {
  readonly config: RouteConfig;
  /** The targets a request on this route may go to, with cumulative weights. */
  readonly targets: readonly T[];
  readonly cumulative: readonly number[];
  readonly totalWeight: number;
  readonly hostExact: string | undefined;
  /** For "*.example.com": ".example.com". */
  readonly hostSuffix: string | undefined;
  readonly pathKind: PathKind;
  readonly pathValue: string;
  readonly pathRegex: RegExp | undefined;
  readonly methods: ReadonlySet<string> | undefined;
  readonly headers: readonly HeaderCheck[];
}

/** The host without port, in lower case ("[::1]:80" → "[::1]"). */
export function normaliseHost(host: string): string {
  let end = host.length;
  if (host.charCodeAt(0) === 0x5b) {
    const close = host.indexOf(']');
    end = close < 0 ? end : close + 1;
  } else {
    const colon = host.lastIndexOf(':');
    if (colon >= 0) end = colon;
  }
  const h = end === host.length ? host : host.slice(0, end);
  return h.toLowerCase();
}

function anchored(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}

export class Router<T> {
  readonly routes: readonly CompiledRoute<T>[];
  private readonly needsHost: boolean;

  /**
   * `bind(route, clusterName)` makes the per-(route, cluster) target (e.g. its handler chain
   * and metric children) once, here, never per request.
   */
  constructor(routes: readonly RouteConfig[], bind: (route: RouteConfig, cluster: string) => T, private readonly random: () => number = Math.random) {
    this.routes = routes.map((r) => compileRoute(r, bind));
    this.needsHost = this.routes.some((r) => r.hostExact !== undefined || r.hostSuffix !== undefined);
  }

  /** The first matching route, or undefined (404 no_route). */
  match(req: RoutableRequest): CompiledRoute<T> | undefined {
    const host = this.needsHost ? normaliseHost(req.host) : '';
    const routes = this.routes;
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i]!;
      if (matches(r, req, host)) return r;
    }
    return undefined;
  }

  /** The target of a matched route: its single cluster, or one chosen by weight. */
  pick(route: CompiledRoute<T>): T {
    const targets = route.targets;
    if (targets.length === 1) return targets[0]!;
    const x = this.random() * route.totalWeight;
    const c = route.cumulative;
    for (let i = 0; i < c.length; i++) if (x < c[i]!) return targets[i]!;
    return targets[targets.length - 1]!;
  }
}

function compileRoute<T>(config: RouteConfig, bind: (route: RouteConfig, cluster: string) => T): CompiledRoute<T> {
  const m = config.match;
  const weighted = config.clusters ?? [{ name: config.cluster!, weight: 1 }];
  const live = weighted.filter((w) => w.weight > 0);
  const targets = live.map((w) => bind(config, w.name));
  const cumulative: number[] = [];
  let total = 0;
  for (const w of live) cumulative.push((total += w.weight));

  let pathKind = PathKind.Any;
  let pathValue = '';
  let pathRegex: RegExp | undefined;
  if (m.path?.exact !== undefined) {
    pathKind = PathKind.Exact;
    pathValue = m.path.exact;
  } else if (m.path?.prefix !== undefined) {
    pathKind = m.path.prefix === '/' ? PathKind.Any : PathKind.Prefix;
    pathValue = m.path.prefix;
  } else if (m.path?.regex !== undefined) {
    pathKind = PathKind.Regex;
    pathRegex = anchored(m.path.regex);
  }
  const host = m.host;
  return {
    config,
    targets,
    cumulative,
    totalWeight: total,
    hostExact: host !== undefined && !host.startsWith('*.') ? host : undefined,
    hostSuffix: host !== undefined && host.startsWith('*.') ? host.slice(1) : undefined,
    pathKind,
    pathValue,
    pathRegex,
    methods: m.methods ? new Set(m.methods) : undefined,
    headers: (m.headers ?? []).map((h) => ({
      name: h.name,
      exact: h.exact,
      regex: h.regex !== undefined ? anchored(h.regex) : undefined,
      present: h.present,
      invert: h.invert,
    })),
  };
}

function matches<T>(r: CompiledRoute<T>, req: RoutableRequest, host: string): boolean {
  if (r.hostExact !== undefined && host !== r.hostExact) return false;
  if (r.hostSuffix !== undefined && !(host.length > r.hostSuffix.length && host.endsWith(r.hostSuffix))) return false;
  switch (r.pathKind) {
    case PathKind.Exact:
      if (req.path !== r.pathValue) return false;
      break;
    case PathKind.Prefix:
      if (!req.path.startsWith(r.pathValue)) return false;
      break;
    case PathKind.Regex:
      if (!r.pathRegex!.test(req.path)) return false;
      break;
  }
  if (r.methods !== undefined && !r.methods.has(req.method)) return false;
  const hs = r.headers;
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i]!;
    const v = req.header(h.name);
    let ok: boolean;
    if (h.present !== undefined) ok = (v !== undefined) === h.present;
    else if (v === undefined) ok = false;
    else if (h.exact !== undefined) ok = v === h.exact;
    else ok = h.regex!.test(v);
    if (ok === h.invert) return false;
  }
  return true;
}
