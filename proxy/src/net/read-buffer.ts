// Sockets read through net's `onread` option (upstream connections, and client connections
// re-wrapped by accepted-socket.ts) all read into this one buffer: no Readable stream machinery
// and no 64 KiB allocation per read. Reads happen one at a time on this thread and each is
// copied out at its exact size before its callback returns, so one buffer serves every socket.
import { copyBytes, nodeCopy } from '../http/chars.js';

export const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
/** READ_BUFFER's backing store, read once: its `buffer` getter is a call into C++. */
const READ_STORE = READ_BUFFER.buffer;
const READ_OFFSET = READ_BUFFER.byteOffset;

/** Called with the bytes of each read; they must be copied if kept after the call returns. Returns true (keep reading). */
export type ReadCallback = (nread: number, buf: Uint8Array) => boolean;

/** The bytes of one read, copied out of the shared buffer. */
export function copyOfRead(nread: number, buf: Uint8Array): Buffer {
  const chunk = Buffer.allocUnsafe(nread);
  // Without Node's copy function, copyBytes would read READ_BUFFER's store through the getter.
  if (buf === READ_BUFFER && nodeCopy === undefined) chunk.set(new Uint8Array(READ_STORE, READ_OFFSET, nread), 0);
  else copyBytes(buf as Buffer, 0, nread, chunk, 0);
  return chunk;
}
