/**
 * A loop-mounted ext4 image: the reference filesystem the mount tests compare pagefs
 * with, and a real block-device filesystem to put a store on. `cleanup` unmounts (lazily
 * if busy), detaches the loop device and removes the directory, whatever state it is in.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, afterAll } from 'vitest';
import { run, mountFresh, type Mounted, type MountOptions } from './mount.js';

export interface Ext4 {
  /** The directory holding the image and the mountpoint. */
  dir: string;
  img: string;
  mp: string;
  /** The loop device's name (loop3), as under /sys/fs/ext4/. */
  dev: string;
  cleanup(): Promise<void>;
}

export async function mountExt4(opts: { prefix?: string; size?: string; mountOpts?: string; mkfsArgs?: string[] } = {}): Promise<Ext4> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), opts.prefix ?? 'pagefs-ext4-'));
  fs.chmodSync(dir, 0o755); // traversable by other users, for the permission cases
  const img = path.join(dir, 'ext4.img');
  const mp = path.join(dir, 'mnt');
  fs.mkdirSync(mp);
  let mounted = false;
  const cleanup = async () => {
    if (mounted) {
      mounted = false;
      const r = await run('umount', [mp], { timeoutMs: 30_000 });
      if (r.code !== 0) await run('umount', ['-l', mp], { timeoutMs: 10_000 });
      // mount -o loop sets autoclear; detach explicitly in case it did not.
      const l = await run('losetup', ['-j', img], { timeoutMs: 10_000 });
      for (const line of l.stdout.split('\n')) {
        const dev = line.split(':')[0];
        if (dev.startsWith('/dev/loop')) await run('losetup', ['-d', dev], { timeoutMs: 10_000 });
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    let r = await run('truncate', ['-s', opts.size ?? '64M', img], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`truncate: ${r.stderr}`);
    r = await run('mkfs.ext4', ['-q', '-F', ...(opts.mkfsArgs ?? []), img], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`mkfs.ext4: ${r.stderr}`);
    r = await run('mount', ['-o', ['loop', ...(opts.mountOpts ? [opts.mountOpts] : [])].join(','), img, mp], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`mount ext4: ${r.stderr}`);
    mounted = true;
    r = await run('findmnt', ['-n', '-o', 'SOURCE', mp], { timeoutMs: 10_000 });
    return { dir, img, mp, dev: path.basename(r.stdout.trim()), cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

export interface SideBySide {
  m: Mounted;
  ext4: Ext4;
}

/**
 * For a test file that runs each step on pagefs and on ext4: registers a beforeAll that
 * mounts a fresh pagefs and an ext4 image at once, and an afterAll that removes both.
 * Read `.m` and `.ext4` inside the tests.
 */
export function pagefsAndExt4(pagefsOpts: MountOptions = {}, ext4Opts: Parameters<typeof mountExt4>[0] = {}): SideBySide {
  const both = {} as SideBySide;
  beforeAll(async () => {
    [both.m, both.ext4] = await Promise.all([mountFresh(pagefsOpts), mountExt4(ext4Opts)]);
  }, 120_000);
  afterAll(async () => {
    await both.m?.cleanup();
    await both.ext4?.cleanup();
  }, 90_000);
  return both;
}
