// The admin listener (node:http is fine here: it is off the request path): readiness for
// load balancers and drains, Prometheus metrics, the running config, and a drain trigger.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { parseHostPort } from './config/units.js';
import type { ProxyRuntime } from './runtime.js';

export class AdminServer {
  private readonly server: Server;

  constructor(
    private readonly runtime: ProxyRuntime,
    readonly address: string,
  ) {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`internal error: ${err instanceof Error ? err.message : String(err)}\n`);
      });
    });
    this.server.keepAliveTimeout = 5000;
  }

  get port(): number {
    const a = this.server.address();
    return a !== null && typeof a !== 'string' ? a.port : 0;
  }

  get boundAddress(): string {
    const a = this.server.address();
    if (a === null || typeof a === 'string') return this.address;
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  listen(): Promise<void> {
    const hp = parseHostPort(this.address)!;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(hp.port, hp.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const rt = this.runtime;
    if (req.method === 'GET' && path === '/ready') {
      const ready = rt.ready;
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(ready ? 'ready\n' : rt.draining ? 'draining\n' : 'not ready\n');
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      const text = await rt.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': rt.metrics.registry.contentType });
      res.end(text);
      return;
    }
    if (req.method === 'GET' && path === '/config_dump') {
      const cur = rt.current;
      const body = {
        version: cur?.version ?? null,
        source: cur?.source ?? null,
        appliedAt: cur?.appliedAt.toISOString() ?? null,
        draining: rt.draining,
        addresses: rt.addresses,
        // The stream's state: connecting | connected | disconnected | stopped, since when,
        // the last error, and the last ACKed and NACKed versions (with the NACK's reasons).
        controlPlane: rt.controlPlane ? Object.fromEntries(Object.entries(rt.controlPlane.status).map(([k, v]) => [k, v ?? null])) : null,
        config: cur?.config ?? null,
      };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body, null, 2) + '\n');
      return;
    }
    if (path === '/drain') {
      if (req.method !== 'POST') {
        res.writeHead(405, { allow: 'POST', 'content-type': 'text/plain' });
        res.end('use POST /drain\n');
        return;
      }
      void rt.drain();
      res.writeHead(202, { 'content-type': 'text/plain' });
      res.end('draining\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found: try /ready, /metrics, /config_dump or POST /drain\n');
  }
}
