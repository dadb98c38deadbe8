// The proxies' side of the control plane: one bidirectional gRPC stream per proxy, state of
// the world as in xDS ADS (see proto/tsmesh/discovery/v1/discovery.proto for the exchange).
// Per stream it remembers the version last sent and its nonce, and sends a node a snapshot
// only when the node's version differs from that; a NACKed version is not sent again.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  AggregatedDiscoveryServiceService,
  type DiscoveryRequest,
  type DiscoveryResponse,
} from '../../../proto/gen/tsmesh/discovery/v1/discovery.js';
import type { TokenCheck } from '../auth.js';
import type { ControlPlaneMetrics } from '../metrics.js';
import type { ProxyStatusWriter, StreamState, StreamStatus } from '../store/proxy-status.js';
import type { ServiceSnapshot, SnapshotCache } from './snapshot-cache.js';

const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

type Call = grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>;

interface Stream {
  readonly id: number;
  readonly call: Call;
  readonly connectedSince: Date;
  node: string | undefined;
  /** The version the proxy says it runs. */
  version: string;
  /** The version last sent (or, before any send, the one the proxy reported). */
  sentVersion: string;
  sentRevisionAt: Date | undefined;
  nonce: string;
  selector: string | null;
  state: StreamState;
  lastError: string | null;
  nackedVersion: string | null;
  adminAddress: string | null;
}

export interface StreamView {
  readonly node: string;
  readonly selector: string | null;
  readonly version: string;
  readonly state: StreamState;
}

export class DiscoveryServer {
  private readonly streams = new Map<number, Stream>();
  private nextStream = 1;
  private nonceCounter = 0;

  constructor(
    private readonly cache: SnapshotCache,
    private readonly token: TokenCheck,
    private readonly metrics: ControlPlaneMetrics,
    private readonly status: ProxyStatusWriter,
    private readonly log: Logger,
    /** Nonces carry the replica so that a proxy moving between replicas never sees one twice. */
    private readonly noncePrefix: string,
  ) {}

  register(server: grpc.Server): void {
    server.addService(AggregatedDiscoveryServiceService, { streamConfig: (call: Call) => this.open(call) });
  }

  /** Pushes to every node whose version changed (after the cache took a new revision). */
  refresh(): void {
    for (const s of this.streams.values()) if (s.node !== undefined) this.sync(s);
  }

  /** Streams connected now (for the apply answer's warnings). */
  connected(): StreamView[] {
    return [...this.streams.values()].filter((s) => s.node !== undefined).map((s) => ({ node: s.node!, selector: s.selector, version: s.version, state: s.state }));
  }

  /** Ends every stream (UNAVAILABLE, so proxies reconnect, to another replica if there is one). */
  closeAll(): void {
    for (const s of this.streams.values()) s.call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'control plane shutting down' });
    this.streams.clear();
    this.metrics.connectedProxies.set(0);
  }

  private open(call: Call): void {
    const auth = call.metadata.get('authorization')[0];
    if (!this.token.accepts(typeof auth === 'string' ? auth : undefined)) {
      this.metrics.authFailures.inc({ api: 'grpc' });
      this.log.warn({ peer: call.getPeer() }, 'proxy stream refused: missing or wrong token');
      call.emit('error', {
        code: grpc.status.UNAUTHENTICATED,
        details: auth === undefined ? 'missing token: send metadata "authorization: Bearer <token>"' : 'wrong token',
      });
      return;
    }
    // Headers now, so that the proxy knows at once it is connected and accepted.
    call.sendMetadata(new grpc.Metadata());
    const s: Stream = {
      id: this.nextStream++,
      call,
      connectedSince: new Date(),
      node: undefined,
      version: '',
      sentVersion: '',
      sentRevisionAt: undefined,
      nonce: '',
      selector: null,
      state: 'connecting',
      lastError: null,
      nackedVersion: null,
      adminAddress: null,
    };
    this.streams.set(s.id, s);
    call.on('data', (req: DiscoveryRequest) => this.onRequest(s, req));
    call.on('end', () => {
      this.close(s);
      call.end();
    });
    call.on('error', () => this.close(s));
    call.on('cancelled', () => this.close(s));
  }

  private close(s: Stream): void {
    if (!this.streams.delete(s.id)) return;
    if (s.node !== undefined) {
      this.metrics.connectedProxies.dec();
      this.status.remove(s.id);
      this.log.info({ node: s.node, stream: s.id }, 'proxy disconnected');
    }
  }

  private onRequest(s: Stream, req: DiscoveryRequest): void {
    if (s.node === undefined) {
      const node = req.node?.id ?? '';
      if (!NODE_NAME.test(node)) {
        s.call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `the first request must carry node.id, a node name (got ${JSON.stringify(node)})` });
        this.streams.delete(s.id);
        return;
      }
      s.node = node;
      s.adminAddress = adminAddressOf(req.node?.metadata?.adminAddress, s.call.getPeer());
      s.version = req.versionInfo;
      s.sentVersion = req.versionInfo;
      this.metrics.connectedProxies.inc();
      this.log.info({ node, stream: s.id, version: req.versionInfo, metadata: req.node?.metadata }, 'proxy connected');
      this.sync(s);
      if (s.state === 'connecting') s.state = s.selector === null ? 'no-config' : 'acked';
      this.report(s);
      return;
    }
    // An answer to an older response: the proxy will answer the newest one too.
    if (req.responseNonce !== s.nonce) return;
    s.version = req.versionInfo;
    if (req.errorDetail) {
      s.state = 'nacked';
      s.nackedVersion = s.sentVersion;
      const details = req.errorDetail.details.length > 0 ? `: ${req.errorDetail.details.join('; ')}` : '';
      s.lastError = `${req.errorDetail.message}${details}`;
      this.metrics.nacks.inc();
      this.log.warn({ node: s.node, version: s.sentVersion, error: s.lastError }, 'proxy refused a snapshot (NACK)');
    } else {
      s.state = 'acked';
      this.metrics.acks.inc();
      if (req.versionInfo === s.sentVersion && s.sentRevisionAt) {
        this.metrics.applyToAck.observe(Math.max(0, Date.now() - s.sentRevisionAt.getTime()) / 1000);
      }
    }
    this.report(s);
  }

  private sync(s: Stream): void {
    const target = this.cache.resolve(s.node!);
    if (!target) {
      if (s.selector !== null) {
        s.selector = null;
        this.report(s);
      }
      return;
    }
    const moved = s.selector !== target.selector;
    s.selector = target.selector;
    if (target.version === s.sentVersion) {
      if (moved) this.report(s);
      return;
    }
    this.send(s, target);
  }

  private send(s: Stream, target: ServiceSnapshot): void {
    s.nonce = `${this.noncePrefix}-${++this.nonceCounter}`;
    s.sentVersion = target.version;
    s.sentRevisionAt = target.createdAt;
    s.state = 'pending';
    s.call.write({ versionInfo: target.version, nonce: s.nonce, snapshot: target.snapshot, selector: target.selector });
    this.metrics.pushes.inc();
    this.report(s);
  }

  private report(s: Stream): void {
    const st: StreamStatus = {
      stream: s.id,
      node: s.node!,
      selector: s.selector,
      version: s.version,
      state: s.state,
      lastError: s.lastError,
      nackedVersion: s.nackedVersion,
      connectedSince: s.connectedSince,
      adminAddress: s.adminAddress,
    };
    this.status.update(st);
  }
}

/**
 * The admin address a proxy reported in its node metadata (`adminAddress`, host:port), as
 * others can reach it: a wildcard host (0.0.0.0, ::) is replaced by the host the stream comes
 * from (grpc-js gives the peer as `address:port`, IPv6 unbracketed), since a proxy listening on
 * every interface is reachable at the address it connected from. Anything that is not
 * host:port is ignored.
 */
export function adminAddressOf(reported: string | undefined, peer: string): string | null {
  if (!reported) return null;
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(reported.trim());
  if (!m || Number(m[2]) > 65535) return null;
  const [, host, port] = m as unknown as [string, string, string];
  if (host !== '0.0.0.0' && !/^\[(::|::0|0:0:0:0:0:0:0:0)\]$/.test(host)) return `${host}:${port}`;
  const cut = peer.lastIndexOf(':');
  let from = cut > 0 && /^\d+$/.test(peer.slice(cut + 1)) ? peer.slice(0, cut) : '';
  if (from.startsWith('[') && from.endsWith(']')) from = from.slice(1, -1);
  if (from === '' || from === 'unknown') return `${host}:${port}`;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(from);
  if (mapped) return `${mapped[1]}:${port}`;
  return from.includes(':') ? `[${from}]:${port}` : `${from}:${port}`;
}
