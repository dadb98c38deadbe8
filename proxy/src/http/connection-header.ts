// The Connection header: "close", "keep-alive", and the names of other hop-by-hop fields
// (RFC 9110 7.6.1), which the proxy removes along with it.
import { Byte, TCHAR } from './chars.js';
import { F, type MessageHead } from './head.js';

export const CONN_CLOSE = 1;
export const CONN_KEEP_ALIVE = 2;
export const CONN_OTHER = 4;
export const CONN_INVALID = 8;

function isWord(buf: Buffer, s: number, e: number, word: string): boolean {
  if (e - s !== word.length) return false;
  for (let i = 0; i < word.length; i++) if ((buf[s + i]! | 0x20) !== word.charCodeAt(i)) return false;
  return true;
}

/** Flags of a Connection value: a comma-separated list of tokens (empty elements allowed). */
export function parseConnection(buf: Buffer, start: number, end: number): number {
  let flags = 0;
  let i = start;
  while (i < end) {
    let c = buf[i];
    if (c === 0x2c || c === Byte.SP || c === Byte.HTAB) {
      i++;
      continue;
    }
    const s = i;
    while (i < end && TCHAR[buf[i]!] === 1) i++;
    if (i === s) return CONN_INVALID;
    if (isWord(buf, s, i, 'close')) flags |= CONN_CLOSE;
    else if (isWord(buf, s, i, 'keep-alive')) flags |= CONN_KEEP_ALIVE;
    else flags |= CONN_OTHER;
    while (i < end && ((c = buf[i]) === Byte.SP || c === Byte.HTAB)) i++;
    if (i < end && buf[i] !== 0x2c) return CONN_INVALID;
  }
  return flags;
}

/** Marks every field named in a Connection header as not to be forwarded. */
export function markConnectionTokens(head: MessageHead): void {
  const buf = head.buf;
  const f = head.f;
  const names: string[] = [];
  for (let k = 0; k < head.count; k++) {
    const s = f[k * F.SIZE + F.LINE]!;
    if (!isWord(buf, s, f[k * F.SIZE + F.NAME_END]!, 'connection')) continue;
    const value = buf.toString('latin1', f[k * F.SIZE + F.VALUE]!, f[k * F.SIZE + F.VALUE_END]!);
    for (const token of value.split(',')) {
      const t = token.trim().toLowerCase();
      if (t !== '' && t !== 'close' && t !== 'keep-alive') names.push(t);
    }
  }
  if (names.length === 0) return;
  for (let k = 0; k < head.count; k++) {
    const s = f[k * F.SIZE + F.LINE]!;
    const name = buf.toString('latin1', s, f[k * F.SIZE + F.NAME_END]!).toLowerCase();
    // Framing fields stay: dropping them because a client named them would desynchronise the body.
    if (name === 'content-length' || name === 'transfer-encoding' || name === 'host') continue;
    if (names.includes(name)) head.markDrop(k);
  }
}
