/**
 * A loop-mounted ext4 image: the reference filesystem the mount tests compare pagefs
 * with, and a real block-device filesystem to put a store on. `cleanup` unmounts (lazily
 * if busy), detaches the loop device and removes the directory, whatever state it is in.
 * Below it, the small helpers that run one step on both and collect the answers.
 *
 * mkfs.ext4 picks 1 KiB blocks for images under 512 MiB; pass blockSize where the answer
 * depends on it (the maximum file size is (2^32 - 1) blocks, a symlink target one block).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
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
  /** Unmounts and mounts the image again (the kernel forgets every cached inode). */
  remount(): Promise<void>;
  cleanup(): Promise<void>;
}

export interface Ext4Options {
  prefix?: string;
  size?: string;
  blockSize?: number;
  mountOpts?: string;
  mkfsArgs?: string[];
}

export async function mountExt4(opts: Ext4Options = {}): Promise<Ext4> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), opts.prefix ?? 'pagefs-ext4-'));
  fs.chmodSync(dir, 0o755); // traversable by other users, for the permission cases
  const img = path.join(dir, 'ext4.img');
  const mp = path.join(dir, 'mnt');
  fs.mkdirSync(mp);
  let mounted = false;
  const mount = async () => {
    const r = await run('mount', ['-o', ['loop', ...(opts.mountOpts ? [opts.mountOpts] : [])].join(','), img, mp], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`mount ext4: ${r.stderr}`);
    mounted = true;
  };
  const umount = async () => {
    if (!mounted) return;
    mounted = false;
    const r = await run('umount', [mp], { timeoutMs: 30_000 });
    if (r.code !== 0) await run('umount', ['-l', mp], { timeoutMs: 10_000 });
  };
  const cleanup = async () => {
    await umount();
    // mount -o loop sets autoclear; detach explicitly in case it did not.
    const l = await run('losetup', ['-j', img], { timeoutMs: 10_000 });
    for (const line of l.stdout.split('\n')) {
      const dev = line.split(':')[0];
      if (dev.startsWith('/dev/loop')) await run('losetup', ['-d', dev], { timeoutMs: 10_000 });
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    let r = await run('truncate', ['-s', opts.size ?? '64M', img], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`truncate: ${r.stderr}`);
    const bs = opts.blockSize ? ['-b', String(opts.blockSize)] : [];
    r = await run('mkfs.ext4', ['-q', '-F', ...bs, ...(opts.mkfsArgs ?? []), img], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`mkfs.ext4: ${r.stderr}`);
    await mount();
    r = await run('findmnt', ['-n', '-o', 'SOURCE', mp], { timeoutMs: 10_000 });
    return { dir, img, mp, dev: path.basename(r.stdout.trim()), remount: async () => { await umount(); await mount(); }, cleanup };
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

/** The errno name a promise rejects with, or 'OK' (closing a FileHandle it resolves to). */
export async function code(p: Promise<unknown>): Promise<string> {
  try {
    const r: any = await p;
    if (r && typeof r.close === 'function' && typeof r.fd === 'number') await r.close();
    return 'OK';
  } catch (e: any) {
    return e?.code ?? String(e);
  }
}

/** The errno name a synchronous call throws (the `sys` module's calls), or what it returns. */
export function codeSync<T>(fn: () => T): T | string {
  try {
    return fn();
  } catch (e: any) {
    if (typeof e?.code !== 'string' || !e.code.startsWith('E')) throw e;
    return e.code;
  }
}

export type Where = 'pagefs' | 'ext4';

/**
 * Runs `fn` in a fresh directory `name` on the pagefs mount and on ext4, returning each
 * one's answer: `{ pagefs: ..., ext4: ... }`, compared by the caller in one expect so a
 * failure shows both.
 */
export async function onBoth<T>(m: Mounted, extMp: string, name: string, fn: (dir: string, where: Where) => Promise<T>): Promise<Record<Where, T>> {
  const out = {} as Record<Where, T>;
  for (const [where, root] of [['pagefs', m.mp], ['ext4', extMp]] as [Where, string][]) {
    const dir = path.join(root, name);
    await fsp.mkdir(dir);
    out[where] = await fn(dir, where);
  }
  return out;
}

export const both = <T>(c: T) => ({ pagefs: c, ext4: c });
