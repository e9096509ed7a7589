/**
 * The kernel's readahead window for our mount.
 *
 * The INIT reply's max_readahead only lowers the window: the kernel keeps
 * min(bdi default, max_readahead), and a FUSE mount's bdi starts at the default of 128 KiB
 * (VM_READAHEAD_PAGES) and INIT offers that as max_readahead, so a daemon asking for 1 MiB
 * still gets 128 KiB reads, 8 round trips per MiB (measured with strace: every read was
 * 131072 bytes). The window is the bdi's `read_ahead_kb` in sysfs, which root may raise
 * (the kernel then sends up to max_pages per READ: 1 MiB with our max_write). We raise it;
 * a daemon that may not write sysfs keeps the kernel's default and says so once.
 *
 * Only procfs and sysfs are read here, never the mountpoint itself: a stat of our own
 * mount from the daemon's process would wait for the daemon.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';

/** The device number ("major:minor") of the mount at `mountpoint`, from /proc/self/mountinfo. */
export function mountDevice(mountinfo: string, mountpoint: string): string | null {
  const mp = path.resolve(mountpoint);
  let dev: string | null = null;
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    // mountinfo escapes spaces and other specials in paths as octal (\040).
    const at = f[4]?.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    if (at === mp && / - fuse(\.|blk|\s)/.test(line)) dev = f[2]; // the last one is the topmost
  }
  return dev;
}

/** Sets the mount's readahead window to `bytes`; returns a message when it could not. */
export async function setReadahead(mountpoint: string, bytes: number): Promise<string | null> {
  const kb = Math.floor(bytes / 1024);
  try {
    const dev = mountDevice(await fsp.readFile('/proc/self/mountinfo', 'utf8'), mountpoint);
    if (!dev) return `readahead: ${mountpoint} is not in /proc/self/mountinfo; the kernel's window stays at its default`;
    await fsp.writeFile(`/sys/class/bdi/${dev}/read_ahead_kb`, `${kb}\n`);
    return null;
  } catch (e) {
    return `readahead: cannot raise the kernel's window to ${kb} KiB (${(e as Error).message}); it stays at its default`;
  }
}
