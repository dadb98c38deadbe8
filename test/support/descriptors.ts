import { readdirSync, readlinkSync } from 'node:fs';

/** Descriptors of this process whose /proc/self/fd link is `target` (a path, or `socket:[inode]`); Linux only. */
export function descriptorsTo(target: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === target;
    } catch {
      return false;
    }
  }).length;
}
