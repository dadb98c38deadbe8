// Node 20's net.Server builds each accepted socket as a Readable stream: every read allocates
// a 64 KiB buffer in C++, then runs push, emit('data') and a maybeReadMore tick. Client sockets
// can skip all of that with net's `onread` option (one caller-owned buffer, one callback per
// read); the server has no such option. So the accepted socket's handle, still paused, is
// wrapped again in a Socket built with `onread`: the same constructor net.Server itself calls,
// with the one option it does not pass. This reads `_handle`, which is not public API, so it is
// feature-checked and falls back to the stream when the shape differs (tested for both).
import { Socket, type Server } from 'node:net';
import type { ReadCallback } from './read-buffer.js';

interface StreamHandle {
  readStart(): number;
  readStop(): number;
}

/** `socket`'s handle when it looks like a TCP stream that can be re-wrapped (pausing on accept is the caller's part). */
function handleOf(socket: Socket): StreamHandle | undefined {
  const handle = (socket as unknown as { _handle?: unknown })._handle as Partial<StreamHandle> | null | undefined;
  if (handle === null || handle === undefined) return undefined;
  if (typeof handle.readStart !== 'function' || typeof handle.readStop !== 'function') return undefined;
  return handle as StreamHandle;
}

/**
 * A socket reading `socket`'s connection through `onread`, or undefined when the handle cannot
 * be taken over (the caller then reads `socket` as a stream). `socket` must come from a server
 * created with `pauseOnConnect: true` and must not be used afterwards.
 */
export function rewrapWithOnRead(socket: Socket, server: Server, buffer: Uint8Array, callback: ReadCallback): Socket | undefined {
  const handle = handleOf(socket);
  if (handle === undefined) return undefined;
  // Detach first: the old object must not close the descriptor when it is collected.
  (socket as unknown as { _handle: unknown })._handle = null;
  const options = { handle, readable: true, writable: true, onread: { buffer, callback } };
  const wrapped = new Socket(options as unknown as ConstructorParameters<typeof Socket>[0]);
  // The server counted the connection when it accepted it; the new socket's close uncounts it
  // (server.close() waits for that count to reach zero).
  (wrapped as unknown as { _server: Server })._server = server;
  (wrapped as unknown as { server: Server }).server = server;
  return wrapped;
}
