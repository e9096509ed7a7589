/** Reading /proc/self/mountinfo: which FUSE mounts exist, their source and connection. */
import fs from 'node:fs';
import path from 'node:path';

export interface MountInfo {
  mountpoint: string;
  fstype: string;
  source: string;
  /** /sys/fs/fuse/connections/<conn> for FUSE mounts: the minor of the superblock's device. */
  conn: number;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}

export function mounts(): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const [pre, post] = line.split(' - ');
    const f = pre.split(' ');
    const g = post.split(' ');
    out.push({ mountpoint: unescape(f[4]), fstype: g[0], source: unescape(g[1]), conn: Number(f[2].split(':')[1]) });
  }
  return out;
}

export function findMount(mountpoint: string): MountInfo | undefined {
  const abs = path.resolve(mountpoint);
  return mounts().reverse().find((m) => m.mountpoint === abs);
}

export function isPagefsMount(m: MountInfo): boolean {
  return m.fstype === 'fuse.pagefs';
}
