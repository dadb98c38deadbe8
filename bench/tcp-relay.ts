// The floor under tsmesh's request path: the proxy's own socket layer (client sockets re-wrapped
// to read through `onread`, reads copied out of the shared buffer, writes held per event-loop
// turn and sent straight to the handle) relaying bytes between each client connection and one
// upstream connection of its own, with no HTTP at all. `bench:overhead --floor` runs it beside
// tsmesh and nginx. Against the static upstream, floor / nginx is what the runtime and the
// socket layer cost against nginx, tsmesh / floor what the request path (parsing, routing,
// policies, pools, heads, metrics) costs on top. A benchmark baseline, not a proxy: no
// timeouts, no limits, no flow control, no HTTP checks.
//
// Usage: node dist/bench/tcp-relay.js LISTEN_PORT UPSTREAM_PORT [ACCEPT_DESCRIPTORS]
// (descriptors of the listening socket, as tsmesh's listener acceptDescriptors; default 1)
import { connect, createServer, type Server, type Socket } from 'node:net';
import { rewrapWithOnRead } from '../proxy/src/net/accepted-socket.js';
import { duplicateListenHandles } from '../proxy/src/net/listen-descriptors.js';
import { copyOfRead, READ_BUFFER } from '../proxy/src/net/read-buffer.js';
import { SocketWriter } from '../proxy/src/net/socket-writer.js';

const [listenPort, upstreamPort, descriptors = 1] = process.argv.slice(2).map(Number);
if (!listenPort || !upstreamPort || !(descriptors >= 1)) {
  console.error('usage: tcp-relay LISTEN_PORT UPSTREAM_PORT [ACCEPT_DESCRIPTORS]');
  process.exit(2);
}
const BACKLOG = 4096;

function noop(): void {}

/** One client connection and its upstream connection; each side's reads are written to the other. */
function relay(accepted: Socket, server: Server): void {
  let toClient: SocketWriter | undefined;
  const upstream = connect({
    host: '127.0.0.1',
    port: upstreamPort,
    noDelay: true,
    onread: {
      buffer: READ_BUFFER,
      callback: (nread: number, buf: Uint8Array) => {
        toClient?.write(copyOfRead(nread, buf));
        return true;
      },
    },
  });
  const toUpstream = new SocketWriter(upstream, noop);
  const onClientRead = (nread: number, buf: Uint8Array): boolean => {
    toUpstream.write(copyOfRead(nread, buf));
    return true;
  };
  // Where the handle cannot be taken over, the client is read as a stream (as the proxy does).
  const client = rewrapWithOnRead(accepted, server, READ_BUFFER, onClientRead) ?? accepted;
  if (client === accepted) {
    accepted.on('data', (chunk: Buffer) => toUpstream.write(chunk));
    accepted.resume();
  }
  client.setNoDelay(true);
  toClient = new SocketWriter(client, noop);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  for (const s of [client, upstream]) {
    s.on('error', noop);
    s.on('close', close);
  }
}

function acceptingServer(): Server {
  const server: Server = createServer({ pauseOnConnect: true }, (socket) => relay(socket, server));
  return server;
}

const server = acceptingServer();
server.listen(listenPort, '127.0.0.1', BACKLOG, () => {
  if (descriptors <= 1) return;
  duplicateListenHandles(server, descriptors - 1).then(
    (handles) => {
      for (const handle of handles) acceptingServer().listen(handle, BACKLOG);
    },
    (err: Error) => console.error(`tcp-relay: accepting on one descriptor only (${err.message})`),
  );
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(0));
