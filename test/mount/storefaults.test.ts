/**
 * Faults of the store's file under a running daemon (src/store/faults.ts has the errno
 * decisions): its filesystem fills up (ENOSPC to the writer), the file cannot be written
 * (EIO), it is removed (EIO, never a silent loss), another process holds SQLite's lock
 * (waited out up to busy_timeout, then EIO). In each case the daemon keeps running and
 * serving committed data, logs one line per fault, and nothing fsynced is lost.
 */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { mountFresh, makeStore, run, pagefs, expectCleanLog, testDirPrefix, forceClear, fuseMountAt, ROOT, type Mounted } from '../helpers/mount.js';
import { mountExt4, type Ext4 } from '../helpers/ext4.js';
import { dropCaches } from './lib.js';

let m: Mounted | null = null;
let small = '';
let ext4: Ext4 | null = null;
let holder: ChildProcess | null = null;
let bgMount = '';
/**
 * Handles a test opened on a mount: closed before the mount goes, so that a failed test
 * does not leave one for the garbage collector to close on a dead connection (ENOTCONN
 * thrown from nowhere, in whichever test runs then).
 */
const handles: fs.promises.FileHandle[] = [];
async function openOnMount(p: string, flags: string): Promise<fs.promises.FileHandle> {
  const fh = await fs.promises.open(p, flags);
  handles.push(fh);
  return fh;
}
afterEach(async () => {
  for (const fh of handles.splice(0)) await fh.close().catch(() => undefined);
  if (bgMount) await forceClear(bgMount);
  bgMount = '';
  if (holder && holder.exitCode === null && holder.signalCode === null) holder.kill('SIGKILL');
  holder = null;
  await m?.cleanup();
  m = null;
  if (small) {
    await run('umount', ['-l', small]);
    fs.rmSync(path.dirname(small), { recursive: true, force: true });
    small = '';
  }
  if (ext4) {
    await run('chattr', ['-R', '-i', ext4.mp]);
    await ext4.cleanup();
    ext4 = null;
  }
}, 120_000);

/** The errno name an async call rejects with, or 'OK'. */
async function errnoOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (e: any) {
    return e?.code ?? String(e);
  }
}

/** Writes `data` to a new file and fsyncs it. */
async function writeSynced(p: string, data: Buffer): Promise<void> {
  const fh = await fs.promises.open(p, 'w');
  try {
    await fh.write(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const faultLines = (log: string) => log.split('\n').filter((l) => /store fault:/.test(l));

/**
 * During a fault: fsync of the dirty handle, mkdir and a new file get EIO (twice, to see
 * it last), the committed file `a` is still read from the store, one log line says why.
 */
async function expectFaulty(mm: Mounted, dirty: fs.promises.FileHandle, a: string, dataA: Buffer, line: RegExp): Promise<void> {
  expect(await errnoOf(dirty.sync())).toBe('EIO');
  expect(await errnoOf(fs.promises.mkdir(path.join(mm.mp, 'd')))).toBe('EIO');
  expect(await errnoOf(writeSynced(path.join(mm.mp, 'c'), Buffer.from('c')))).toBe('EIO');
  expect(await errnoOf(dirty.sync())).toBe('EIO');
  // Committed data is still served, from the store (the kernel's cache dropped).
  await dropCaches();
  expect((await fs.promises.readFile(a)).equals(dataA)).toBe(true);
  expect(faultLines(mm.log())).toHaveLength(1);
  expect(mm.log()).toMatch(line);
}

/** Unmount, fsck clean, mount again: what the store holds is what a later mount sees. */
async function remountAndFsck(mm: Mounted): Promise<void> {
  // umount can meet EBUSY from a process of the shared machine passing through the mount
  // for a moment (seen once in ~10 runs, with nothing of this test left open): try again.
  for (let i = 0; ; i++) {
    try {
      await mm.unmount();
      break;
    } catch (e) {
      if (i >= 4 || !/target is busy/.test(String(e))) throw e;
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
  const f = await pagefs(['fsck', mm.store]);
  expect(f.stdout + f.stderr).toMatch(/clean/);
  expect(f.code).toBe(0);
  await mm.remount();
}

describe('store faults', () => {
  it('a full store filesystem gives ENOSPC to fsync, keeps the daemon serving, and writes work again after deleting', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), testDirPrefix() + 'small-'));
    small = path.join(dir, 'fs');
    fs.mkdirSync(small);
    expect((await run('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', small])).code).toBe(0);
    // The store may hold 1 GiB of blocks, but its filesystem holds 24 MiB.
    const store = await makeStore(small, { capacity: '1G' });
    m = await mountFresh({ store });
    const big = path.join(m.mp, 'big');
    const dd = await run('dd', ['if=/dev/urandom', `of=${big}`, 'bs=1M', 'count=64', 'conv=fsync', 'status=none'], { timeoutMs: 60_000 });
    expect(dd.code).not.toBe(0);
    expect(dd.stderr).toMatch(/No space left on device/);
    // The daemon still answers, and after deleting, new data is stored and read back.
    await fs.promises.unlink(big);
    const data = Buffer.alloc(2 << 20, 7);
    const fh = await openOnMount(path.join(m.mp, 'small'), 'w');
    await fh.write(data);
    await fh.sync();
    await fh.close();
    expect((await fs.promises.readFile(path.join(m.mp, 'small'))).equals(data)).toBe(true);
    expect(m.log()).toMatch(/the store's filesystem is full/);
    expectCleanLog(m);
    await m.unmount();
    const f = await pagefs(['fsck', store]);
    expect(f.stdout).toMatch(/clean/);
    expect(f.stdout).not.toMatch(/orphan/);
    expect(f.code).toBe(0);
  });
});

describe('store faults: the store cannot be written', () => {
  // `mount -o remount,ro` of the store's filesystem is refused (EBUSY) while the daemon
  // holds the store open for writing, so the file is made immutable instead (chattr +i
  // on ext4: a write on an open descriptor then fails, even for root), and made
  // writable again with chattr -i. The -shm file stays writable: SQLite maps it, and a
  // store through a mapping of an immutable file is a SIGBUS, not an error.
  it('writes and fsync get EIO with one log line, committed data stays readable, and after the fault nothing fsynced is lost', async () => {
    ext4 = await mountExt4({ prefix: testDirPrefix() + 'ro-ext4-' });
    const store = await makeStore(ext4.mp, { capacity: '256M' });
    // Every periodic writeback takes the dirty data, young or not, so that the one below tries and fails.
    m = await mountFresh({ store, mountArgs: ['--dirty-expire', '0'] });
    const a = path.join(m.mp, 'a');
    const b = path.join(m.mp, 'b');
    const dataA = Buffer.alloc(1 << 20, 0xa1);
    await writeSynced(a, dataA);
    const dataB = Buffer.alloc(256 << 10, 0xb2);
    const fhB = await openOnMount(b, 'w');
    await fhB.write(dataB, 0, dataB.length, 0);
    // e is written back by close (a commit with synchronous=NORMAL, maybe not synced yet).
    const e = path.join(m.mp, 'e');
    await fs.promises.writeFile(e, 'e');
    const files = [store, `${store}-wal`];
    expect((await run('chattr', ['+i', ...files])).code).toBe(0);
    // Its fsync has nothing new to write but must sync the WAL, so it must write too: EIO,
    // not a success that promised nothing.
    const fhE = await openOnMount(e, 'r+');
    expect(await errnoOf(fhE.sync())).toBe('EIO');
    await fhE.close();

    // With dirty data (a write lands in the cache, its space reserved: the store is not
    // touched): fsync and metadata changes fail with EIO, and keep failing.
    await fhB.write(dataB, 0, dataB.length, dataB.length);
    await expectFaulty(m, fhB, a, dataA, /store fault: the store's file cannot be written \(SQLITE_IOERR/);

    // Idle: the periodic writeback (every 5 s) keeps failing and says nothing more.
    await new Promise((r) => setTimeout(r, 6_000));
    expect(faultLines(m.log())).toHaveLength(1);
    expect(m.proc.exitCode).toBe(null);

    // Writable again: the next fsync writes everything, new files work.
    expect((await run('chattr', ['-i', ...files])).code).toBe(0);
    expect(await errnoOf(fhB.sync())).toBe('OK');
    await fhB.close();
    await writeSynced(path.join(m.mp, 'c2'), Buffer.from('c2'));
    expect(m.log()).toMatch(/store fault over: the store takes writes again/);
    expect(m.log()).not.toMatch(/internal error|at .*\.js:\d+/);
    expectCleanLog(m);

    await remountAndFsck(m);
    expect((await fs.promises.readFile(a)).equals(dataA)).toBe(true);
    expect((await fs.promises.readFile(b)).equals(Buffer.concat([dataB, dataB]))).toBe(true);
    expect(await fs.promises.readFile(path.join(m.mp, 'c2'), 'utf8')).toBe('c2');
  }, 120_000);
});

describe('store faults: the store\'s filesystem turns read-only (ext4 errors=remount-ro)', () => {
  // What a failing disk does to ext4 mounted errors=remount-ro: every write on it, on
  // descriptors already open too, gets EROFS, and only an unmount undoes it. The daemon
  // runs as `pagefs mount` runs it (in the background, its log STORE.log beside the
  // store, so on the same read-only filesystem: writing that log must not kill it).
  it('writes and fsync get EIO, the daemon lives and serves committed data; after the ext4 is mounted again fsck is clean and fsynced data is there', async () => {
    ext4 = await mountExt4({ prefix: testDirPrefix() + 'erofs-ext4-', size: '128M', mountOpts: 'errors=remount-ro' });
    const store = await makeStore(ext4.mp, { capacity: '256M' });
    const mp = path.join(ext4.dir, 'pagefs');
    fs.mkdirSync(mp);
    const r = await pagefs(['mount', store, mp, '--dirty-expire', '0'], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    bgMount = mp;
    const a = path.join(mp, 'a');
    const dataA = Buffer.alloc(1 << 20, 0x3c);
    await writeSynced(a, dataA);
    const fhB = await openOnMount(path.join(mp, 'b'), 'w');
    await fhB.write(Buffer.alloc(64 << 10, 2));
    fs.writeFileSync(`/sys/fs/ext4/${ext4.dev}/trigger_fs_error`, '1');

    expect(await errnoOf(fhB.sync())).toBe('EIO');
    expect(await errnoOf(fs.promises.mkdir(path.join(mp, 'd')))).toBe('EIO');
    await dropCaches();
    expect((await fs.promises.readFile(a)).equals(dataA)).toBe(true);
    // Through a few periodic writebacks (every 5 s), still alive and serving.
    await new Promise((res) => setTimeout(res, 6_000));
    expect(fuseMountAt(mp)).toBeDefined();
    expect(await errnoOf(fhB.sync())).toBe('EIO');
    await dropCaches();
    expect((await fs.promises.readFile(a)).equals(dataA)).toBe(true);
    await fhB.close().catch(() => undefined);
    const u = await pagefs(['umount', mp], { timeoutMs: 60_000 });
    expect(u.code, u.stderr).toBe(0);
    bgMount = '';

    // The filesystem comes back only through an unmount; then the store is whole.
    expect((await run('umount', [ext4.mp], { timeoutMs: 30_000 })).code).toBe(0);
    expect((await run('mount', ['-o', 'loop', ext4.img, ext4.mp], { timeoutMs: 30_000 })).code).toBe(0);
    // (STORE.log is empty now: what the daemon logged after the mount sat in the page cache
    // of a filesystem whose journal was aborted. Its lines are checked in the tests above.)
    const f = await pagefs(['fsck', store]);
    expect(f.stdout + f.stderr).toMatch(/clean/);
    expect(f.code).toBe(0);
    m = await mountFresh({ store });
    expect((await fs.promises.readFile(path.join(m.mp, 'a'))).equals(dataA)).toBe(true);
    expectCleanLog(m);
  }, 120_000);
});

describe('store faults: the store is removed', () => {
  // SQLite keeps its descriptors and, in WAL mode, does not notice: every commit would go
  // to a file nobody can open again and vanish at unmount. The daemon checks the link
  // count of its own descriptor of the store before each transaction.
  it('writes and fsync get EIO with one log line instead of vanishing; reads of committed data go on; unmount says what was lost', async () => {
    m = await mountFresh();
    const a = path.join(m!.mp, 'a');
    const dataA = Buffer.alloc(512 << 10, 0x5a);
    await writeSynced(a, dataA);
    const fhB = await openOnMount(path.join(m!.mp, 'b'), 'w');
    await fhB.write(Buffer.alloc(64 << 10, 1));
    await fs.promises.unlink(m!.store);
    await expectFaulty(m, fhB, a, dataA, /store fault: the store .* was removed \(unlinked\) under the running daemon/);
    expectCleanLog(m!);
    await fhB.close().catch(() => undefined);
    // The dirty data of b cannot be kept: the daemon says so and exits non-zero.
    await expect(m!.unmount()).rejects.toThrow(/did not exit cleanly \(1\)/);
    expect(m!.log()).toMatch(/shutdown: the store could not be written, whatever was still dirty is lost/);
  }, 60_000);
});

/** A node process that opens the store with better-sqlite3 and holds a lock until killed or for `ms`. */
function holdStore(store: string, how: 'write' | 'read', ms: number): Promise<ChildProcess> {
  const script = `
    const Database = require(${JSON.stringify(path.join(ROOT, 'node_modules', 'better-sqlite3'))});
    const db = new Database(process.argv[1]);
    db.exec(process.argv[2] === 'write' ? 'BEGIN IMMEDIATE' : 'BEGIN');
    db.prepare('SELECT count(*) FROM inodes').get(); // a read transaction starts at its first read
    process.stdout.write('held\\n');
    setTimeout(() => { db.exec('COMMIT'); process.stdout.write('released\\n'); db.close(); }, Number(process.argv[3]));`;
  const child = spawn(process.execPath, ['-e', script, store, how, String(ms)], { stdio: ['ignore', 'pipe', 'pipe'] });
  holder = child;
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  (child as any).output = () => out;
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', () => { if (out.includes('held')) resolve(child); });
    child.on('exit', (c) => reject(new Error(`store holder exited (${c}) before holding: ${out}`)));
  });
}
const holderOut = (c: ChildProcess): string => (c as any).output();

/** Mounts a fresh store with file f open and 128 KiB of dirty data in it. */
async function mountWithDirtyFile(fill: number): Promise<{ fh: fs.promises.FileHandle; data: Buffer }> {
  m = await mountFresh();
  const fh = await openOnMount(path.join(m!.mp, 'f'), 'w');
  const data = Buffer.alloc(128 << 10, fill);
  await fh.write(data);
  return { fh, data };
}

describe('store faults: another process holds the store', () => {
  it('a writer holding the lock for 2 s: the daemon waits, and writes, fsync and mkdir succeed', async () => {
    const { fh, data } = await mountWithDirtyFile(3);
    const h = await holdStore(m!.store, 'write', 2_000);
    // The writeback of f and the mkdir must wait for the lock (fsync needs a transaction).
    expect(await errnoOf(fh.sync())).toBe('OK');
    expect(holderOut(h)).toMatch(/released/);
    expect(await errnoOf(fs.promises.mkdir(path.join(m!.mp, 'd')))).toBe('OK');
    await fh.close();
    expect(faultLines(m!.log())).toHaveLength(0);
    expectCleanLog(m!);
    await remountAndFsck(m!);
    expect((await fs.promises.readFile(path.join(m!.mp, 'f'))).equals(data)).toBe(true);
  }, 60_000);

  it('a reader holding a read transaction does not block the daemon (WAL)', async () => {
    m = await mountFresh();
    const h = await holdStore(m.store, 'read', 60_000);
    const data = Buffer.alloc(256 << 10, 4);
    await writeSynced(path.join(m.mp, 'f'), data);
    await fs.promises.mkdir(path.join(m.mp, 'd'));
    await fs.promises.rename(path.join(m.mp, 'f'), path.join(m.mp, 'd', 'g'));
    // All of that committed while the reader still held its snapshot.
    expect(holderOut(h)).not.toMatch(/released/);
    expect(h.exitCode).toBe(null);
    h.kill('SIGKILL');
    expect(faultLines(m.log())).toHaveLength(0);
    expectCleanLog(m);
    await remountAndFsck(m);
    expect((await fs.promises.readFile(path.join(m.mp, 'd', 'g'))).equals(data)).toBe(true);
  }, 60_000);

  it('a writer holding the lock past busy_timeout (5 s): EIO and one log line, then writes work again', async () => {
    const { fh, data } = await mountWithDirtyFile(5);
    const h = await holdStore(m!.store, 'write', 60_000);
    expect(await errnoOf(fh.sync())).toBe('EIO');
    expect(faultLines(m!.log())).toHaveLength(1);
    expect(m!.log()).toMatch(/store fault: another process held the store's write lock for more than 5 s \(SQLITE_BUSY/);
    h.kill('SIGKILL');
    await new Promise((r) => h.once('exit', r));
    // The pages stayed dirty: this fsync writes them.
    expect(await errnoOf(fh.sync())).toBe('OK');
    await fh.close();
    expect(m!.log()).toMatch(/store fault over/);
    expectCleanLog(m!);
    await remountAndFsck(m!);
    expect((await fs.promises.readFile(path.join(m!.mp, 'f'))).equals(data)).toBe(true);
  }, 90_000);
});
