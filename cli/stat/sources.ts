// Where `tsmesh stat` finds proxies, and how it reads them. A source is any function that
// lists proxies with their admin addresses: the addresses given on the command line, or the
// proxies the control plane reports.
//
// The control plane source reads GET <server><statusPath> with `Authorization: Bearer <token>`
// and expects JSON listing the connected proxies, each with the address of its admin listener:
//
//   { "proxies": [ { "node": "gateway-1", "adminAddress": "10.0.0.5:15000", ... }, ... ] }
//
// It also accepts a top-level array, the list under "nodes", "admin": "host:port" or
// "admin": { "address": "host:port" } instead of "adminAddress", and "name"/"id" for "node".
// Proxies listed without an admin address are reported, not guessed.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { parsePromText } from '../../proxy/src/telemetry/prom-text.js';
import type { Scrape } from './compute.js';

export interface ProxyTarget {
  /** What to call it in messages: the node name, or the address. */
  readonly name: string;
  /** host:port, or an http(s):// URL of the admin listener. */
  readonly adminAddress: string;
}

export interface TargetList {
  readonly targets: ProxyTarget[];
  /** Proxies that could not be used, with why. */
  readonly problems: string[];
}

export type TargetSource = () => Promise<TargetList>;

export function staticTargets(addresses: readonly string[]): TargetSource {
  const targets = addresses.map((a) => ({ name: a, adminAddress: a }));
  return async () => ({ targets, problems: [] });
}

/** The control plane's GET /v1/status (control-plane/src/api/http-api.ts). */
export const DEFAULT_STATUS_PATH = '/v1/status';

export function controlPlaneTargets(server: string, token: string | undefined, statusPath = DEFAULT_STATUS_PATH, timeoutMs = 5000): TargetSource {
  return async () => {
    const url = new URL(statusPath, server.endsWith('/') ? server : `${server}/`).toString();
    let res: HttpAnswer;
    try {
      res = await httpGet(url, token ? { authorization: `Bearer ${token}` } : {}, timeoutMs);
    } catch (err) {
      throw new Error(`control plane ${url}: ${describe(err)}`);
    }
    const body = res.body;
    if (res.status !== 200) throw new Error(`control plane ${url}: HTTP ${res.status}${body ? `: ${body.slice(0, 200)}` : ''}`);
    let doc: unknown;
    try {
      doc = JSON.parse(body);
    } catch {
      throw new Error(`control plane ${url}: the answer is not JSON`);
    }
    return targetsFromStatus(doc, url);
  };
}

export function targetsFromStatus(doc: unknown, where = 'status'): TargetList {
  const o = doc as Record<string, unknown> | null;
  const list = Array.isArray(doc) ? doc : Array.isArray(o?.proxies) ? o.proxies : Array.isArray(o?.nodes) ? o.nodes : undefined;
  if (!list) throw new Error(`${where}: expected a list of proxies (an array, or {"proxies": [...]})`);
  const targets: ProxyTarget[] = [];
  const problems: string[] = [];
  list.forEach((entry: unknown, i) => {
    const e = (entry ?? {}) as Record<string, unknown>;
    const name = String(e.node ?? e.name ?? e.id ?? `proxies[${i}]`);
    const admin = e.admin as Record<string, unknown> | string | undefined;
    const address = e.adminAddress ?? (typeof admin === 'string' ? admin : admin?.address);
    if (typeof address !== 'string' || address === '') problems.push(`${name}: no adminAddress in the control plane's status`);
    else targets.push({ name, adminAddress: address });
  });
  return { targets, problems };
}

export function metricsUrl(adminAddress: string): string {
  const base = /^https?:\/\//.test(adminAddress) ? adminAddress : `http://${adminAddress}`;
  return new URL('/metrics', base).toString();
}

export type ScrapeResult = { ok: true; scrape: Scrape } | { ok: false; proxy: string; error: string };

/** Reads one proxy's /metrics; never throws. `now` stamps the scrape (injectable for tests). */
export async function scrapeTarget(target: ProxyTarget, now: () => number = Date.now, timeoutMs = 5000): Promise<ScrapeResult> {
  const url = metricsUrl(target.adminAddress);
  try {
    const res = await httpGet(url, {}, timeoutMs);
    if (res.status !== 200) return { ok: false, proxy: target.name, error: `${url}: HTTP ${res.status}` };
    const time = now();
    return { ok: true, scrape: { proxy: target.adminAddress, time, samples: parsePromText(res.body).samples } };
  } catch (err) {
    return { ok: false, proxy: target.name, error: `${url}: ${describe(err)}` };
  }
}

interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

/**
 * GET with node:http rather than fetch: fetch refuses the "bad ports" of the Fetch standard
 * (1, 9, 6000, 10080...), and an admin listener may sit on any port.
 */
function httpGet(url: string, headers: Record<string, string>, timeoutMs: number): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = request(url, { method: 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error('timed out'), { code: 'timed out' })));
    req.on('error', reject);
    req.end();
  });
}

function describe(err: unknown): string {
  const e = err as { message?: string; code?: string };
  return e?.code ?? e?.message ?? String(err);
}
