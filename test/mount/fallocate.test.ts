/**
 * fallocate, lseek SEEK_DATA/SEEK_HOLE and COLLAPSE_RANGE/INSERT_RANGE through the real
 * mount. Every case is made on pagefs and, with the same calls, on a loop-mounted ext4
 * image (4 KiB blocks; 1 KiB blocks for the last block), and both must give the same
 * contents, sizes, allocation, hole map and errno wherever ext4 supports the call.
 *
 * Every syscall on the FUSE mount runs in a child process (test/helpers/sysd.ts) with a
 * timeout; ext4 files go through the same child, so both sides see the same syscalls.
 *
 * Where ext4's answers depend on more than the file (never relaxed for pagefs):
 * - SEEK_DATA on ext4 reports an unwritten (preallocated, zeroed) block as data while an
 *   uptodate folio holding it is in the page cache, and folios can be larger than a
 *   block (1 KiB blocks; large folios over 4 KiB blocks). ext4 contents are read with
 *   O_DIRECT (no zero pages enter its cache), and before every hole-map comparison the
 *   ext4 file is fsynced and its clean pages dropped (Fd.settle), so ext4 answers from its
 *   extent map. pagefs is asked as it is, dirty pages included.
 * - ext4's st_blocks counts its extent-tree block once a file has more than four extents;
 *   Fd.stat reports ext4's data blocks from its extent map (filefrag) instead, and
 *   freeBlocks() takes that block out of statfs deltas.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { FALLOC, SEEK_DATA, SEEK_HOLE, PROT_READ, MAP_SHARED } from '../../src/sys/index.js';
import { PAGEFS_IOC_COLLAPSE_RANGE, PAGEFS_IOC_INSERT_RANGE, encodeRange } from '../../src/vfs/shift.js';
import { mountFresh, run, pagefs, expectCleanLog, BIN, type Mounted } from '../helpers/mount.js';
import { expectNoMountUnder } from './lib.js';
import { Sysd } from '../helpers/sysd.js';
import { fcParams } from '../helpers/fc.js';
import { mountExt4, type Ext4 } from '../helpers/ext4.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const TiB = 2 ** 40;
const K = FALLOC.KEEP_SIZE;
const P = FALLOC.PUNCH_HOLE;
const Z = FALLOC.ZERO_RANGE;
const FALLOC_FL_WRITE_ZEROES = 0x80; // Linux 6.17+: passes the VFS, refused by FUSE
const O_RDONLY = fs.constants.O_RDONLY;

type Where = 'pagefs' | 'ext4';
const WHERES: Where[] = ['pagefs', 'ext4'];

/** One open file, on one side. */
class Fd {
  constructor(readonly sd: Sysd, readonly fd: number, readonly path: string, readonly where: Where) {}
  static async open(sd: Sysd, p: string, where: Where, flags: string | number = 'w+'): Promise<Fd> {
    return new Fd(sd, await sd.call('open', p, flags), p, where);
  }
  falloc(mode: number, off: number | bigint, len: number | bigint): Promise<string> {
    return this.sd.outcome('fallocate', this.fd, mode, off, len);
  }
  async seek(off: number | bigint, whence: number): Promise<number | string> {
    const r = await this.sd.raw('lseek', [this.fd, off, whence]);
    return r.ok ? r.v : r.code!;
  }
  /**
   * [SEEK_DATA, SEEK_HOLE] answer (offset or errno name) for each offset. ext4 is settled
   * first (see settle()); pagefs is asked as it is, dirty pages and all.
   */
  async seeks(offs: number[]): Promise<[number | string, number | string][]> {
    await this.settle();
    return this.sd.call('seeks', this.fd, offs);
  }
  ioctl(cmd: number, arg: Buffer | null): Promise<string> {
    return this.sd.outcome('ioctl', this.fd, cmd, arg ? arg.toString('hex') : null);
  }
  async write(data: Buffer, off: number): Promise<void> {
    expect(await this.sd.call('pwrite', this.fd, data.toString('base64'), off)).toBe(data.length);
  }
  async read(len: number, off: number): Promise<Buffer> {
    return Buffer.from(await this.sd.call('pread', this.fd, len, off), 'base64');
  }
  truncate(len: number): Promise<string> { return this.sd.outcome('ftruncate', this.fd, len); }
  /** fstat's size and st_blocks. */
  rawStat(): Promise<{ size: number; blocks: number }> { return this.sd.call('fstat', this.fd); }
  /**
   * Size and the 512-byte sectors of the file's data blocks (written, unwritten and
   * delayed). On pagefs that is st_blocks. On ext4, st_blocks also counts the extent-tree
   * block ext4 adds once a file has more than four extents, which is metadata pagefs does
   * not have; the data blocks come from the extent map (filefrag) instead.
   */
  async stat(): Promise<{ size: number; blocks: number }> {
    const st = await this.rawStat();
    return this.where === 'ext4' ? { size: st.size, blocks: await ext4DataSectors(this.path) } : st;
  }
  /** ext4's extent-tree blocks of this file (0 on pagefs), to take out of statfs deltas. */
  async metaBlocks(): Promise<number> {
    if (this.where === 'pagefs') return 0;
    const raw = (await this.rawStat()).blocks;
    const bs = (await this.sd.call('statfs', path.dirname(this.path))).bsize;
    return (raw - await ext4DataSectors(this.path)) / (bs / 512);
  }
  /**
   * ext4 only: fsync, then drop the file's (now clean) pages from the page cache. ext4's
   * SEEK_DATA reports an unwritten block as data whenever the folio holding it is
   * uptodate in the page cache, and folios are larger than a block: 4 KiB pages over
   * 1 KiB blocks, and large folios (ext4 has them since Linux 6.16) over 4 KiB blocks. So
   * after a write, a ZERO_RANGE or a punch next to an unwritten block, ext4 reports data
   * for it or not depending on its cache (seen: write 8 KiB, ZERO_RANGE the first 4 KiB,
   * write 1 byte at 4096 -> ext4 says data at 0 until the folio is dropped). Settled, ext4
   * answers from its extent map, which is what pagefs answers from at any time; this
   * only ever takes data answers away from ext4, so it makes the comparison stricter for
   * pagefs, never looser. pagefs itself is not synced: its dirty pages must count as data.
   */
  async settle(): Promise<void> {
    if (this.where !== 'ext4') return;
    await this.sync();
    // dd with iflag=nocache and count=0: posix_fadvise(POSIX_FADV_DONTNEED) of the whole file.
    const r = await run('dd', [`if=${this.path}`, 'iflag=nocache', 'count=0', 'status=none'], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`fadvise ${this.path}: ${r.stderr}`);
  }
  async sync(): Promise<void> { await this.sd.call('fsync', this.fd); }
  close(): Promise<void> { return this.sd.call('close', this.fd); }
  /**
   * The whole file. ext4 is read with O_DIRECT so that no zero page of an unwritten
   * extent enters its page cache (which SEEK_DATA would then report as data).
   */
  async contents(): Promise<Buffer> {
    return Buffer.from(await this.sd.call('readFile', this.path, this.where === 'ext4'), 'base64');
  }
}

// ---------------------------------------------------------------------------------------
// ext4 images

/** An explicit block size: mkfs.ext4 picks 1 KiB blocks by itself for images this small. */
function makeExt4(blockSize: number): Promise<Ext4> {
  return mountExt4({ blockSize, size: '256M', mkfsArgs: ['-E', 'lazy_itable_init=0,lazy_journal_init=0'] });
}

let ext4: Ext4 | undefined;

beforeAll(async () => {
  ext4 = await makeExt4(4096);
}, 120_000);

afterAll(async () => {
  await ext4?.cleanup();
  // Only our own ext4 mount can be checked here; the FUSE mounts are checked per describe.
  if (ext4) await expectNoMountUnder(ext4.dir);
}, 120_000);

// ---------------------------------------------------------------------------------------
// Helpers

/** Deterministic pseudo-random bytes (no long zero runs). */
function randomBytes(n: number, seed: number): Buffer {
  let x = (Math.imul(seed + 1, 2654435761) >>> 0) || 1;
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = (x & 0xff) | 1; // never 0, so that a zeroed byte is always visible
  }
  return b;
}

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** Byte equality with a message naming the first difference. */
function expectSameBytes(actual: Buffer, expected: Buffer, what: string): void {
  if (actual.equals(expected)) return;
  let i = 0;
  while (i < Math.min(actual.length, expected.length) && actual[i] === expected[i]) i++;
  expect.fail(`${what}: contents differ: lengths ${actual.length} vs ${expected.length}, first difference at byte ${i} ` +
    `(actual ${actual.subarray(i, i + 8).toString('hex')} vs expected ${expected.subarray(i, i + 8).toString('hex')})`);
}

/** The offsets at which hole maps are compared: every block start, one unaligned offset per block, EOF and around it. */
function seekOffsets(size: number, bs = 4096): number[] {
  const offs = new Set<number>();
  for (let o = 0; o <= size + bs; o += bs) {
    offs.add(o);
    offs.add(o + ((o / bs) * 997 + 123) % bs);
  }
  for (const o of [size - 1, size, size + 1, 2 * TiB]) if (o >= 0) offs.add(o);
  return [...offs].sort((a, b) => a - b);
}

/** The SEEK_DATA/SEEK_HOLE answers a file of `size` bytes whose data blocks are `data` must give. */
function expectedSeeks(size: number, data: (fb: number) => boolean, offs: number[], bs = 4096): [number | string, number | string][] {
  const last = Math.ceil(size / bs) - 1;
  return offs.map((o) => {
    if (o >= size) return ['ENXIO', 'ENXIO'];
    let d: number | string = 'ENXIO';
    for (let fb = Math.floor(o / bs); fb <= last; fb++) if (data(fb)) { d = Math.max(o, fb * bs); break; }
    let h: number | string = size;
    for (let fb = Math.floor(o / bs); fb <= last; fb++) if (!data(fb)) { h = Math.max(o, fb * bs); break; }
    return [d, h];
  });
}

/**
 * Runs `fn` on a fresh file `f` in a fresh directory `name` on pagefs and on ext4, and
 * returns each side's answer, to be compared by the caller.
 */
async function onBoth<T>(sd: Sysd, roots: Record<Where, string>, name: string,
  fn: (f: Fd, where: Where, dir: string) => Promise<T>): Promise<Record<Where, T>> {
  const out = {} as Record<Where, T>;
  for (const where of WHERES) {
    const dir = path.join(roots[where], name);
    await fsp.mkdir(dir);
    const f = await Fd.open(sd, path.join(dir, 'f'), where);
    try {
      out[where] = await fn(f, where, dir);
    } finally {
      await f.close().catch(() => undefined);
    }
  }
  return out;
}

/** The 512-byte sectors of an ext4 file's data blocks, from its extent map (delayed extents included). */
async function ext4DataSectors(p: string): Promise<number> {
  const r = await run('filefrag', ['-v', p], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`filefrag ${p}: ${r.stderr}`);
  const bs = Number(/blocks of (\d+) bytes/.exec(r.stdout)![1]);
  let n = 0;
  for (const line of r.stdout.split('\n')) {
    const e = /^\s*\d+:\s+(\d+)\.\.\s*(\d+):/.exec(line);
    if (e) n += Number(e[2]) - Number(e[1]) + 1;
  }
  return (n * bs) / 512;
}

/**
 * Free blocks of the filesystem holding `f`, plus `f`'s own ext4 extent-tree blocks: the
 * difference of two readings is the data blocks allocated or freed meanwhile.
 */
async function freeBlocks(f: Fd): Promise<number> {
  return (await f.sd.call('statfs', path.dirname(f.path))).bfree + await f.metaBlocks();
}

async function duB1(p: string): Promise<number> {
  const r = await run('du', ['-B1', p], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`du ${p}: ${r.stderr}`);
  return Number(r.stdout.split(/\s+/)[0]);
}

/** The end of every describe block: no fd left open, unmount cleanly, clean daemon log, clean fsck, no mount left. */
async function finish(m: Mounted, sd: Sysd): Promise<void> {
  await sd.stop();
  try {
    await m.unmount();
  } catch (e: any) {
    const who = await run('fuser', ['-vm', m.mp], { timeoutMs: 10_000 });
    throw new Error(`${e.message}\nfuser -vm: ${who.stdout}${who.stderr}`);
  }
  expectCleanLog(m);
  const r = await pagefs(['fsck', m.store], { timeoutMs: 120_000 });
  expect(r.stdout + r.stderr).toMatch(/clean/);
  expect(r.code).toBe(0);
  await expectNoMountUnder(m.dir);
}

// ---------------------------------------------------------------------------------------

describe('fallocate modes (pagefs vs ext4, 4 KiB blocks)', () => {
  let m: Mounted;
  let sd: Sysd;
  let roots: Record<Where, string>;
  beforeAll(async () => {
    m = await mountFresh();
    sd = new Sysd();
    roots = { pagefs: path.join(m.mp, 'modes'), ext4: path.join(ext4!.mp, 'modes') };
    await fsp.mkdir(roots.pagefs);
    await fsp.mkdir(roots.ext4);
  });
  afterAll(async () => {
    await sd?.stop();
    await m?.cleanup();
  });

  it('mode 0: extends the size, the new range reads zeros, st_blocks grows, statfs free drops', async () => {
    const head = randomBytes(10000, 1);
    const end = 8192 + MiB + 100;
    const res = await onBoth(sd, roots, 'mode0', async (f, where, dir) => {
      await f.write(head, 0);
      await f.sync();
      const before = await f.stat();
      const free0 = (await freeBlocks(f));
      const r = await f.falloc(0, 8192, MiB + 100);
      const after = await f.stat();
      const freed = free0 - (await freeBlocks(f));
      const seeks = await f.seeks(seekOffsets(after.size));
      const data = await f.contents();
      // Allocating again over the allocated range changes nothing.
      const again = await f.falloc(0, 0, 64 * KiB);
      const freedAgain = free0 - (await freeBlocks(f));
      return { r, before, after, freed, seeks, data, again, freedAgain, afterAgain: await f.stat() };
    });
    const want = Buffer.concat([head, Buffer.alloc(end - head.length)]);
    const p = res.pagefs;
    expectSameBytes(p.data, want, 'pagefs');
    expectSameBytes(res.ext4.data, want, 'ext4');
    expect({ ...p, data: undefined }).toEqual({
      r: 'OK', before: { size: 10000, blocks: 24 }, after: { size: end, blocks: Math.ceil(end / 4096) * 8 },
      freed: Math.ceil(end / 4096) - 3, data: undefined,
      // Preallocated blocks are holes for SEEK_DATA (unwritten), as on ext4.
      seeks: expectedSeeks(end, (fb) => fb < 3, seekOffsets(end)),
      again: 'OK', freedAgain: Math.ceil(end / 4096) - 3, afterAgain: { size: end, blocks: Math.ceil(end / 4096) * 8 },
    });
    expect({ ...res.ext4, data: sha(res.ext4.data) }).toEqual({ ...p, data: sha(p.data) });
  });

  it('KEEP_SIZE: the size stays, st_blocks grows, also past EOF; a write there uses the preallocated block', async () => {
    const head = randomBytes(5000, 2);
    const tail = randomBytes(100, 3);
    const res = await onBoth(sd, roots, 'keep', async (f, where, dir) => {
      await f.write(head, 0);
      await f.sync();
      const free0 = (await freeBlocks(f));
      const st0 = await f.stat();
      const r1 = await f.falloc(K, 0, 64 * KiB);
      const st1 = await f.stat();
      const r2 = await f.falloc(K, MiB, 64 * KiB); // entirely past EOF
      const st2 = await f.stat();
      const freed2 = free0 - (await freeBlocks(f));
      const seeks2 = await f.seeks(seekOffsets(st2.size));
      const data2 = await f.contents();
      await f.write(tail, MiB + 100); // into the preallocated range: the size grows, no new block
      await f.sync();
      const st3 = await f.stat();
      const freed3 = free0 - (await freeBlocks(f));
      const seeks3 = await f.seeks(seekOffsets(st3.size));
      const data3 = await f.contents();
      return { r1, r2, st0, st1, st2, freed2, seeks2, data2: sha(data2), st3, freed3, seeks3, data3: sha(data3), raw2: data2, raw3: data3 };
    });
    const p = res.pagefs;
    expectSameBytes(p.raw2, head, 'pagefs after KEEP_SIZE');
    const want3 = Buffer.concat([head, Buffer.alloc(MiB + 100 - 5000), tail]);
    expectSameBytes(p.raw3, want3, 'pagefs after the write past the old EOF');
    const size3 = MiB + 200;
    expect({ ...p, raw2: undefined, raw3: undefined }).toMatchObject({
      r1: 'OK', r2: 'OK',
      st0: { size: 5000, blocks: 16 }, st1: { size: 5000, blocks: 128 }, st2: { size: 5000, blocks: 256 }, freed2: 30,
      seeks2: expectedSeeks(5000, (fb) => fb < 2, seekOffsets(5000)),
      st3: { size: size3, blocks: 256 }, freed3: 30,
      seeks3: expectedSeeks(size3, (fb) => fb < 2 || fb === 256, seekOffsets(size3)),
    });
    expect({ ...res.ext4, raw2: undefined, raw3: undefined }).toEqual({ ...p, raw2: undefined, raw3: undefined });
  });

  it('PUNCH_HOLE|KEEP_SIZE: whole blocks are freed, partial blocks zeroed in place, neighbours intact, past EOF a no-op', async () => {
    const size = 256 * KiB;
    const orig = randomBytes(size, 4);
    const punches: [number, number][] = [
      [8192, 65536], // 16 whole blocks
      [100000, 5000], // two partial blocks, no whole one
      [150001, 3 * 4096 + 10], // partial, two whole, partial
      [MiB, 64 * KiB], // past EOF
      [250000, 100000], // across EOF: partial, then whole blocks to EOF
    ];
    const res = await onBoth(sd, roots, 'punch', async (f, where, dir) => {
      await f.write(orig, 0);
      await f.sync();
      const free0 = (await freeBlocks(f));
      const steps: unknown[] = [await f.stat()];
      for (const [off, len] of punches) {
        steps.push(await f.falloc(P | K, off, len));
        steps.push(await f.stat());
      }
      await f.sync();
      const freed = (await freeBlocks(f)) - free0;
      const seeks = await f.seeks(seekOffsets(size));
      const data = await f.contents();
      return { steps, freed, seeks, data };
    });
    const want = Buffer.from(orig);
    for (const [off, len] of punches) want.fill(0, Math.min(off, size), Math.min(off + len, size));
    expectSameBytes(res.pagefs.data, want, 'pagefs');
    expectSameBytes(res.ext4.data, want, 'ext4');
    const holes = new Set([...Array.from({ length: 16 }, (_, i) => 2 + i), 37, 38, 62, 63]);
    expect({ ...res.pagefs, data: undefined }).toEqual({
      steps: [
        { size, blocks: 512 },
        'OK', { size, blocks: 384 },
        'OK', { size, blocks: 384 },
        'OK', { size, blocks: 368 },
        'OK', { size, blocks: 368 },
        'OK', { size, blocks: 352 },
      ],
      freed: 20,
      seeks: expectedSeeks(size, (fb) => !holes.has(fb), seekOffsets(size)),
      data: undefined,
    });
    expect({ ...res.ext4, data: undefined }).toEqual({ ...res.pagefs, data: undefined });
  });

  it('PUNCH_HOLE from inside the file to past EOF frees the block holding EOF (as on ext4); ending at EOF keeps it', async () => {
    const orig = randomBytes(10000, 15);
    const res = await onBoth(sd, roots, 'punch-eof-block', async (f, where, dir) => {
      const out: unknown[] = [];
      for (const [name, len] of [['past', 5001], ['at', 5000]] as [string, number][]) {
        const g = await Fd.open(sd, path.join(dir, name), where);
        try {
          await g.write(orig, 0);
          await g.sync();
          out.push(await g.falloc(P | K, 5000, len));
          await g.sync();
          out.push(await g.stat(), await g.seeks(seekOffsets(10000)), sha(await g.contents()));
        } finally {
          await g.close();
        }
      }
      return out;
    });
    const want = Buffer.from(orig).fill(0, 5000);
    expect(res.ext4).toEqual([
      // 10001 > EOF: the hole runs to the end of the block holding EOF, which is freed.
      'OK', { size: 10000, blocks: 16 }, expectedSeeks(10000, (fb) => fb < 2, seekOffsets(10000)), sha(want),
      // 10000 = EOF: block 2 keeps its (zeroed) bytes.
      'OK', { size: 10000, blocks: 24 }, expectedSeeks(10000, (fb) => fb < 3, seekOffsets(10000)), sha(want),
    ]);
    expect(res.pagefs).toEqual(res.ext4);
  });

  it('PUNCH_HOLE of dirty (unfsynced) data, and of a range allocated with mode 0: statfs free goes back', async () => {
    const orig = randomBytes(64 * KiB, 5);
    const res = await onBoth(sd, roots, 'punch-dirty', async (f, where, dir) => {
      const free0 = (await freeBlocks(f));
      await f.write(orig, 0); // no fsync before the punch
      const r1 = await f.falloc(P | K, 4096, 8192);
      const r2 = await f.falloc(0, 128 * KiB, 256 * KiB);
      const freedMid = free0 - (await freeBlocks(f));
      const r3 = await f.falloc(P | K, 128 * KiB, 256 * KiB);
      await f.sync();
      const st = await f.stat();
      const freedEnd = free0 - (await freeBlocks(f));
      const seeks = await f.seeks(seekOffsets(st.size));
      return { r1, r2, r3, freedMid, freedEnd, st, seeks, data: await f.contents() };
    });
    const want = Buffer.concat([orig, Buffer.alloc(320 * KiB)]);
    want.fill(0, 4096, 4096 + 8192);
    expectSameBytes(res.pagefs.data, want, 'pagefs');
    expectSameBytes(res.ext4.data, want, 'ext4');
    expect({ ...res.pagefs, data: undefined }).toEqual({
      r1: 'OK', r2: 'OK', r3: 'OK', freedMid: 14 + 64, freedEnd: 14, st: { size: 384 * KiB, blocks: 14 * 8 },
      seeks: expectedSeeks(384 * KiB, (fb) => fb < 16 && fb !== 1 && fb !== 2, seekOffsets(384 * KiB)), data: undefined,
    });
    expect({ ...res.ext4, data: sha(res.ext4.data) }).toEqual({ ...res.pagefs, data: sha(res.pagefs.data) });
  });

  it('PUNCH_HOLE with unaligned edges inside a hole or a preallocated range allocates nothing and leaves holes (as on ext4)', async () => {
    const res = await onBoth(sd, roots, 'punch-edges-in-hole', async (f, where, dir) => {
      // A sparse file: nothing allocated.
      await f.truncate(64 * KiB);
      const free0 = (await freeBlocks(f));
      const r1 = await f.falloc(P | K, 1000, 10000);
      await f.sync();
      const st1 = await f.stat();
      const freed1 = free0 - (await freeBlocks(f));
      const seeks1 = await f.seeks(seekOffsets(64 * KiB));
      // The same inside a preallocated (unwritten) range: the edges stay unwritten.
      const g = await Fd.open(sd, path.join(dir, 'g'), where);
      try {
        await g.falloc(0, 0, 64 * KiB);
        const r2 = await g.falloc(P | K, 1000, 10000);
        await g.sync();
        const st2 = await g.stat();
        const seeks2 = await g.seeks(seekOffsets(64 * KiB));
        return { r1, st1, freed1, seeks1, r2, st2, seeks2, data1: sha(await f.contents()), data2: sha(await g.contents()) };
      } finally {
        await g.close();
      }
    });
    const zeros = sha(Buffer.alloc(64 * KiB));
    const allHole = expectedSeeks(64 * KiB, () => false, seekOffsets(64 * KiB));
    expect(res.ext4).toEqual({
      r1: 'OK', st1: { size: 64 * KiB, blocks: 0 }, freed1: 0, seeks1: allHole,
      r2: 'OK', st2: { size: 64 * KiB, blocks: 15 * 8 }, seeks2: allHole, data1: zeros, data2: zeros,
    });
    expect(res.pagefs).toEqual(res.ext4);
  });

  it('ZERO_RANGE within EOF over data: whole blocks become unwritten (holes, still allocated), partial blocks zeroed in place', async () => {
    const size = 64 * KiB;
    const orig = randomBytes(size, 6);
    const ranges: [number, number, number][] = [
      [Z, 1000, 20000], // partial, four whole, partial
      [Z | K, 30000, 3 * 4096], // partial, two whole, partial
      [Z, 40960, 8192], // two whole blocks, aligned
      [Z | K, 53000, 100], // inside one block
    ];
    const res = await onBoth(sd, roots, 'zero-within', async (f, where, dir) => {
      await f.write(orig, 0);
      await f.sync();
      const free0 = (await freeBlocks(f));
      const steps: unknown[] = [];
      for (const [mode, off, len] of ranges) {
        steps.push(await f.falloc(mode, off, len));
        steps.push(await f.stat());
      }
      await f.sync();
      const freed = free0 - (await freeBlocks(f));
      const seeks = await f.seeks(seekOffsets(size));
      return { steps, freed, seeks, data: await f.contents() };
    });
    const want = Buffer.from(orig);
    for (const [, off, len] of ranges) want.fill(0, off, off + len);
    expectSameBytes(res.pagefs.data, want, 'pagefs');
    expectSameBytes(res.ext4.data, want, 'ext4');
    const unwritten = new Set([1, 2, 3, 4, 8, 9, 10, 11]);
    expect({ ...res.pagefs, data: undefined }).toEqual({
      steps: ranges.flatMap(() => ['OK', { size, blocks: 128 }]),
      freed: 0,
      seeks: expectedSeeks(size, (fb) => !unwritten.has(fb), seekOffsets(size)),
      data: undefined,
    });
    expect({ ...res.ext4, data: undefined }).toEqual({ ...res.pagefs, data: undefined });
  });

  it('ZERO_RANGE without KEEP_SIZE extends the size; with KEEP_SIZE past EOF it does not; reads are zeros', async () => {
    const orig = randomBytes(64 * KiB, 7);
    const res = await onBoth(sd, roots, 'zero-past-eof', async (f) => {
      await f.write(orig, 0);
      await f.sync();
      const r1 = await f.falloc(Z, 60000, 20000); // across EOF, extends to 80000
      const s1 = (await f.stat()).size;
      const r2 = await f.falloc(Z | K, 90000, 10000); // past EOF, size stays
      const s2 = (await f.stat()).size;
      const r3 = await f.falloc(Z | K, 69632, 20000); // across EOF with KEEP_SIZE (a block-aligned start)
      const s3 = (await f.stat()).size;
      const r4 = await f.falloc(Z, 200 * KiB, 4096); // aligned, past EOF
      const s4 = (await f.stat()).size;
      await f.sync();
      const seeks = await f.seeks(seekOffsets(s4));
      return { r: [r1, r2, r3, r4], s: [s1, s2, s3, s4], seeks, data: await f.contents() };
    });
    const want = Buffer.concat([orig, Buffer.alloc(200 * KiB + 4096 - orig.length)]);
    want.fill(0, 60000);
    expectSameBytes(res.pagefs.data, want, 'pagefs');
    expectSameBytes(res.ext4.data, want, 'ext4');
    expect(res.pagefs.r).toEqual(['OK', 'OK', 'OK', 'OK']);
    expect(res.pagefs.s).toEqual([80000, 80000, 80000, 200 * KiB + 4096]);
    expect({ ...res.ext4, data: undefined }).toEqual({ ...res.pagefs, data: undefined });
  });

  it('ZERO_RANGE preallocates the partial edge blocks it touches in a hole or past EOF (st_blocks as on ext4)', async () => {
    const res = await onBoth(sd, roots, 'zero-edge-alloc', async (f, where, dir) => {
      await f.write(randomBytes(64 * KiB, 8), 0);
      await f.sync();
      const out: unknown[] = [];
      for (const [mode, off, len] of [[Z, 60000, 20000], [Z | K, 90000, 10000], [Z | K, 200 * KiB + 100, 100]]) {
        out.push(await f.falloc(mode, off, len));
        await f.sync();
        out.push(await f.stat());
      }
      // Inside a hole within EOF: the edge blocks are preallocated too, and stay holes for SEEK_DATA.
      const g = await Fd.open(sd, path.join(dir, 'g'), where);
      try {
        await g.truncate(64 * KiB);
        out.push(await g.falloc(Z, 1000, 10000));
        await g.sync();
        out.push(await g.stat());
        out.push(await g.seeks(seekOffsets(64 * KiB)));
      } finally {
        await g.close();
      }
      return out;
    });
    expect(res.ext4).toEqual([
      'OK', { size: 80000, blocks: 20 * 8 }, // blocks 0..19: 19 is the partial edge past the old EOF
      'OK', { size: 80000, blocks: 24 * 8 }, // 21..24, both partial edges included
      'OK', { size: 80000, blocks: 25 * 8 }, // one block, partial on both sides
      'OK', { size: 64 * KiB, blocks: 3 * 8 },
      expectedSeeks(64 * KiB, () => false, seekOffsets(64 * KiB)),
    ]);
    expect(res.pagefs).toEqual(res.ext4);
  });

  it('mode 0 and KEEP_SIZE over dirty, not yet written back data count each block once (st_blocks and statfs as on ext4)', async () => {
    const orig = randomBytes(64 * KiB, 14);
    const res = await onBoth(sd, roots, 'alloc-over-dirty', async (f) => {
      const free0 = await freeBlocks(f);
      await f.write(orig, 0); // 16 blocks, dirty
      const out: unknown[] = [await f.rawStat(), free0 - await freeBlocks(f)];
      out.push(await f.falloc(0, 0, 64 * KiB), await f.rawStat(), free0 - await freeBlocks(f));
      out.push(await f.falloc(K, 0, 128 * KiB), await f.rawStat(), free0 - await freeBlocks(f));
      await f.sync();
      out.push(free0 - await freeBlocks(f));
      return { out, data: sha(await f.contents()) };
    });
    expect(res.ext4).toEqual({
      out: [{ size: 64 * KiB, blocks: 128 }, 16, 'OK', { size: 64 * KiB, blocks: 128 }, 16, 'OK', { size: 64 * KiB, blocks: 256 }, 32, 32],
      data: sha(orig),
    });
    expect(res.pagefs).toEqual(res.ext4);
  });

  it('invalid mode combinations: EOPNOTSUPP, as on ext4, and the file is unchanged', async () => {
    const orig = randomBytes(16 * KiB, 9);
    const modes: Record<string, number> = {
      'PUNCH_HOLE without KEEP_SIZE': P,
      'PUNCH_HOLE|ZERO_RANGE': P | Z,
      'PUNCH_HOLE|ZERO_RANGE|KEEP_SIZE': P | Z | K,
      'UNSHARE_RANGE': FALLOC.UNSHARE_RANGE,
      'UNSHARE_RANGE|KEEP_SIZE': FALLOC.UNSHARE_RANGE | K,
      'NO_HIDE_STALE': FALLOC.NO_HIDE_STALE,
      'NO_HIDE_STALE|PUNCH_HOLE|KEEP_SIZE': FALLOC.NO_HIDE_STALE | P | K,
      'COLLAPSE_RANGE|KEEP_SIZE': FALLOC.COLLAPSE_RANGE | K,
      'INSERT_RANGE|KEEP_SIZE': FALLOC.INSERT_RANGE | K,
      'COLLAPSE_RANGE|ZERO_RANGE': FALLOC.COLLAPSE_RANGE | Z,
      'unknown bit 0x100': 0x100,
    };
    const res = await onBoth(sd, roots, 'bad-modes', async (f) => {
      await f.write(orig, 0);
      await f.sync();
      const out: Record<string, string> = {};
      for (const [name, mode] of Object.entries(modes)) {
        out[name] = `${await f.falloc(mode, 4096, 4096)} ${await f.falloc(mode, 1000, 1000)}`;
      }
      return { out, st: await f.stat(), data: sha(await f.contents()) };
    });
    expect(res.pagefs).toEqual({
      out: Object.fromEntries(Object.keys(modes).map((k) => [k, 'EOPNOTSUPP EOPNOTSUPP'])),
      st: { size: 16 * KiB, blocks: 32 }, data: sha(orig),
    });
    expect(res.ext4).toEqual(res.pagefs);
  });

  it('COLLAPSE_RANGE, INSERT_RANGE, WRITE_ZEROES through fallocate(2) on pagefs: EOPNOTSUPP, never EINVAL', async () => {
    const p = path.join(m.mp, 'modes', 'shift-via-fallocate');
    const orig = randomBytes(64 * KiB, 10);
    const f = await Fd.open(sd, p, 'pagefs');
    try {
      await f.write(orig, 0);
      const out: Record<string, string[]> = {};
      for (const [name, mode] of Object.entries({ COLLAPSE_RANGE: FALLOC.COLLAPSE_RANGE, INSERT_RANGE: FALLOC.INSERT_RANGE, WRITE_ZEROES: FALLOC_FL_WRITE_ZEROES })) {
        // Valid arguments, unaligned ones, and ones reaching EOF: the mode is the answer, not the arguments.
        out[name] = [await f.falloc(mode, 8192, 4096), await f.falloc(mode, 100, 1000), await f.falloc(mode, 0, 64 * KiB), await f.falloc(mode, MiB, 4096)];
      }
      expect(out).toEqual({
        COLLAPSE_RANGE: Array(4).fill('EOPNOTSUPP'), INSERT_RANGE: Array(4).fill('EOPNOTSUPP'), WRITE_ZEROES: Array(4).fill('EOPNOTSUPP'),
      });
      expect(await f.stat()).toEqual({ size: 64 * KiB, blocks: 128 });
      expectSameBytes(await f.contents(), orig, 'pagefs');
      // The connection still serves fallocate afterwards (no ENOSYS latched by the kernel).
      expect(await f.falloc(K, 0, 128 * KiB)).toBe('OK');
    } finally {
      await f.close();
    }
  });

  it('offset < 0 or len <= 0: EINVAL in every mode, as on ext4', async () => {
    const res = await onBoth(sd, roots, 'einval', async (f) => {
      await f.write(randomBytes(8192, 11), 0);
      const out: string[] = [];
      for (const mode of [0, K, P | K, Z, Z | K, P]) {
        out.push(await f.falloc(mode, -1, 4096), await f.falloc(mode, -4096, 8192), await f.falloc(mode, 0, 0), await f.falloc(mode, 4096, -1), await f.falloc(mode, 0, -4096));
      }
      return { out, st: await f.stat() };
    });
    expect(res.pagefs).toEqual({ out: Array(30).fill('EINVAL'), st: { size: 8192, blocks: 16 } });
    expect(res.ext4).toEqual(res.pagefs);
  });

  it('offset + len beyond the maximum file size (16 TiB with 4 KiB blocks): EFBIG, as on ext4', async () => {
    const res = await onBoth(sd, roots, 'efbig', async (f) => {
      await f.write(randomBytes(8192, 12), 0);
      const out: string[] = [];
      for (const mode of [0, K, P | K, Z, Z | K]) {
        out.push(
          await f.falloc(mode, 16 * TiB, 1),
          await f.falloc(mode, 16 * TiB - 4096, 8192),
          await f.falloc(mode, 16 * TiB - 1, 2),
          await f.falloc(mode, 2n ** 62n, 2n ** 62n),
          await f.falloc(mode, 2n ** 63n - 2n, 4n), // offset + len wraps past 2^63
        );
      }
      const failed = await f.stat();
      // Just below the limit (ext4's is 16 TiB - 4 KiB): allowed on both.
      const near = [await f.falloc(K, 16 * TiB - 8192, 4096), await f.falloc(0, 16 * TiB - 8192, 100)];
      return { out, failed, near, st: await f.stat() };
    });
    expect(res.pagefs).toEqual({
      out: Array(25).fill('EFBIG'), failed: { size: 8192, blocks: 16 },
      near: ['OK', 'OK'], st: { size: 16 * TiB - 8192 + 100, blocks: 24 },
    });
    expect(res.ext4).toEqual(res.pagefs);
  });

  it('fallocate reaches the last block below the maximum file size (2^32 - 1 blocks) and not a byte past it, as on ext4', async () => {
    const res = await onBoth(sd, roots, 'maxsize', async (f) => {
      const out = [await f.falloc(K, 16 * TiB - 8192, 4096), await f.falloc(0, 16 * TiB - 8192, 4096), await f.falloc(K, 16 * TiB - 8192, 4097),
        await f.falloc(0, 16 * TiB - 4096, 1)];
      const st = await f.stat();
      return { out, st, trunc: await f.truncate(0), after: await f.stat() };
    });
    expect(res.pagefs).toEqual({ out: ['OK', 'OK', 'EFBIG', 'EFBIG'], st: { size: 16 * TiB - 4096, blocks: 8 }, trunc: 'OK', after: { size: 0, blocks: 0 } });
    expect(res.ext4).toEqual(res.pagefs);
  });

  it('on a directory fd and on a read-only fd: EBADF, as on ext4', async () => {
    const res = await onBoth(sd, roots, 'ebadf', async (f, where, dir) => {
      await f.write(randomBytes(8192, 13), 0);
      const out: string[] = [];
      const d = await Fd.open(sd, dir, where, O_RDONLY);
      try {
        for (const mode of [0, K, P | K, Z]) out.push(await d.falloc(mode, 0, 4096));
      } finally {
        await d.close();
      }
      const ro = await Fd.open(sd, f.path, where, O_RDONLY);
      try {
        for (const mode of [0, K, P | K, Z, Z | K]) out.push(await ro.falloc(mode, 0, 4096));
      } finally {
        await ro.close();
      }
      return { out, st: await f.stat(), data: sha(await f.contents()) };
    });
    expect(res.pagefs).toEqual({ out: Array(9).fill('EBADF'), st: { size: 8192, blocks: 16 }, data: sha(randomBytes(8192, 13)) });
    expect(res.ext4).toEqual(res.pagefs);
  });

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m, sd);
  });
});

// ---------------------------------------------------------------------------------------

type Op =
  | { k: 'write'; off: number; len: number; seed: number }
  | { k: 'trunc'; len: number }
  | { k: 'falloc'; mode: number; off: number; len: number }
  | { k: 'fsync' };

function opArb(bs: number, span: number): fc.Arbitrary<Op> {
  const off = fc.oneof(
    { arbitrary: fc.integer({ min: 0, max: span }), weight: 3 },
    { arbitrary: fc.integer({ min: 0, max: span / bs }).map((b) => b * bs), weight: 2 },
  );
  const len = fc.oneof(
    { arbitrary: fc.integer({ min: 1, max: 16 * bs }), weight: 3 },
    { arbitrary: fc.integer({ min: 1, max: 16 }).map((b) => b * bs), weight: 2 },
  );
  return fc.oneof(
    { arbitrary: fc.record({ k: fc.constant('write' as const), off, len: fc.integer({ min: 1, max: 5 * bs }), seed: fc.nat(0xffff) }), weight: 4 },
    { arbitrary: fc.record({ k: fc.constant('trunc' as const), len: fc.oneof(off, fc.constant(0)) }), weight: 1 },
    { arbitrary: fc.record({ k: fc.constant('falloc' as const), mode: fc.constantFrom(0, K, P | K, Z, Z | K), off, len }), weight: 5 },
    // Invalid arguments now and then: both must refuse them the same way and change nothing.
    { arbitrary: fc.record({ k: fc.constant('falloc' as const), mode: fc.constantFrom(0, K, P | K, Z, P), off: fc.constantFrom(-1, 0, bs), len: fc.constantFrom(0, -1, bs) }), weight: 1 },
    { arbitrary: fc.constant({ k: 'fsync' as const }), weight: 1 },
  );
}

const describeOp = (o: Op) => o.k === 'write' ? `pwrite(${o.off}, ${o.len})` : o.k === 'trunc' ? `ftruncate(${o.len})`
  : o.k === 'falloc' ? `fallocate(${['0', 'K', 'P', 'PK'][o.mode & 3]}${o.mode & Z ? 'Z' : ''}, ${o.off}, ${o.len})` : 'fsync';

async function applyOp(f: Fd, o: Op): Promise<string> {
  switch (o.k) {
    case 'write':
      try {
        await f.write(randomBytes(o.len, o.seed), o.off);
        return 'OK';
      } catch (e: any) {
        return e?.code ?? String(e);
      }
    case 'trunc': return f.truncate(o.len);
    case 'falloc': return f.falloc(o.mode, o.off, o.len);
    case 'fsync': await f.sync(); return 'OK';
  }
}

/**
 * Applies `ops` to one file on pagefs and one on ext4, comparing the outcome (errno or
 * success) and the size after every op, and calling `check` every `every` ops and at the
 * end. Both files are removed afterwards.
 */
async function runSequence(sd: Sysd, roots: Record<Where, string>, name: string, ops: Op[], every: number,
  check: (files: Record<Where, Fd>, step: string) => Promise<void>): Promise<void> {
  const files = {} as Record<Where, Fd>;
  try {
    for (const w of WHERES) files[w] = await Fd.open(sd, path.join(roots[w], name), w);
    for (let i = 0; i < ops.length; i++) {
      const step = `after op ${i} ${describeOp(ops[i])}`;
      const outcome = { pagefs: await applyOp(files.pagefs, ops[i]), ext4: await applyOp(files.ext4, ops[i]) };
      expect(outcome.pagefs, `${step}: outcome`).toBe(outcome.ext4);
      expect((await files.pagefs.rawStat()).size, `${step}: size`).toBe((await files.ext4.rawStat()).size);
      if ((i + 1) % every === 0 || i === ops.length - 1) await check(files, step);
    }
  } finally {
    for (const w of WHERES) {
      await files[w]?.close().catch(() => undefined);
      await fsp.unlink(path.join(roots[w], name)).catch(() => undefined);
    }
  }
}

/** How many full comparisons the properties made: a property that compared nothing must fail. */
let checksDone = 0;

async function checkContents(files: Record<Where, Fd>, step: string): Promise<void> {
  const [p, e] = [await files.pagefs.contents(), await files.ext4.contents()];
  expectSameBytes(p, e, `${step}: pagefs vs ext4`);
  checksDone++;
}

/** Compares the hole maps (ext4 settled first, pagefs as it is: Fd.settle says why). */
async function checkSeeks(files: Record<Where, Fd>, step: string, bs: number): Promise<void> {
  const size = (await files.ext4.rawStat()).size;
  const offs = seekOffsets(size, bs);
  const [p, e] = [await files.pagefs.seeks(offs), await files.ext4.seeks(offs)];
  const diffs = offs.map((o, i) => ({ o, pagefs: p[i], ext4: e[i] })).filter((d) => JSON.stringify(d.pagefs) !== JSON.stringify(d.ext4));
  expect(diffs, `${step}: SEEK_DATA/SEEK_HOLE [data, hole] answers that differ (size ${size})`).toEqual([]);
  checksDone++;
}

let runNo = 0;


describe('property: random pwrite/ftruncate/fallocate sequences, pagefs vs ext4 (4 KiB blocks)', () => {
  let m: Mounted;
  let sd: Sysd;
  let roots: Record<Where, string>;
  beforeAll(async () => {
    m = await mountFresh();
    sd = new Sysd();
    roots = { pagefs: path.join(m.mp, 'prop'), ext4: path.join(ext4!.mp, 'prop') };
    await fsp.mkdir(roots.pagefs);
    await fsp.mkdir(roots.ext4);
  });
  afterAll(async () => {
    await sd?.stop();
    await m?.cleanup();
  });

  const ops = fc.array(opArb(4096, 256 * KiB), { minLength: 1, maxLength: 25 });

  it('same errno, size and contents after every op (60 runs x up to 25 ops)', async () => {
    const checks0 = checksDone;
    await fc.assert(fc.asyncProperty(ops, async (seq) => {
      await runSequence(sd, roots, `c${runNo++}`, seq, 5, checkContents);
    }), fcParams<[Op[]]>(60));
    expect(checksDone - checks0, 'comparisons made').toBeGreaterThanOrEqual(60);
  }, 200_000);

  it('same SEEK_DATA/SEEK_HOLE answers at every block (60 runs x up to 25 ops)', async () => {
    const checks0 = checksDone;
    await fc.assert(fc.asyncProperty(ops, async (seq) => {
      await runSequence(sd, roots, `s${runNo++}`, seq, 5, (files, step) => checkSeeks(files, step, 4096));
    }), fcParams<[Op[]]>(60));
    expect(checksDone - checks0, 'comparisons made').toBeGreaterThanOrEqual(60);
  }, 200_000);

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m, sd);
  });
});

// ---------------------------------------------------------------------------------------

describe('lseek SEEK_DATA/SEEK_HOLE (pagefs vs ext4)', () => {
  let m: Mounted;
  let sd: Sysd;
  let roots: Record<Where, string>;
  beforeAll(async () => {
    m = await mountFresh();
    sd = new Sysd();
    roots = { pagefs: path.join(m.mp, 'seek'), ext4: path.join(ext4!.mp, 'seek') };
    await fsp.mkdir(roots.pagefs);
    await fsp.mkdir(roots.ext4);
  });
  afterAll(async () => {
    await sd?.stop();
    await m?.cleanup();
  });

  it('data, punched holes, never-written holes, preallocated ranges, dirty data in holes; ENXIO at and past EOF; a hole at EOF', async () => {
    const B = 64 * KiB;
    const size = 8 * B + 1000;
    const chunk = (i: number) => randomBytes(B, 100 + i);
    const dirty1 = randomBytes(100, 200); // into the never-written hole at 7B
    const dirty2 = randomBytes(5000, 201); // into the preallocated range at 5B
    const res = await onBoth(sd, roots, 'map', async (f) => {
      await f.write(chunk(0), 0); // [0, B) data
      await f.write(chunk(1), B); // [B, 2B) punched below
      await f.write(chunk(2), 2 * B); // [2B, 3B) data
      // [3B, 5B) never written
      await f.write(chunk(6), 6 * B); // [6B, 7B) data
      // [7B, 8B) never written
      await f.write(randomBytes(1000, 300), 8 * B); // the last, partial block
      expect(await f.falloc(P | K, B, B)).toBe('OK');
      expect(await f.falloc(K, 5 * B, B)).toBe('OK'); // [5B, 6B) preallocated inside EOF
      expect(await f.falloc(K, 9 * B, B)).toBe('OK'); // preallocated past EOF: not visible
      await f.sync();
      const clean = await f.seeks(seekOffsets(size));
      // Dirty, unfsynced data: the kernel does not flush before FUSE_LSEEK.
      await f.write(dirty1, 7 * B + 10);
      await f.write(dirty2, 5 * B + 8192 + 7);
      const dirty = await f.seeks(seekOffsets(size));
      const extra = { hugeData: await f.seek(16 * TiB, SEEK_DATA), hugeHole: await f.seek(16 * TiB, SEEK_HOLE) };
      const st = await f.stat();
      return { clean, dirty, extra, st, data: await f.contents() };
    });
    const bs = 4096;
    const cleanData = (fb: number) => fb < 16 || (fb >= 32 && fb < 48) || (fb >= 96 && fb < 112) || fb === 128;
    const dirtyData = (fb: number) => cleanData(fb) || fb === Math.floor((7 * B + 10) / bs)
      || (fb >= Math.floor((5 * B + 8192 + 7) / bs) && fb <= Math.floor((5 * B + 8192 + 7 + 4999) / bs));
    const want = Buffer.concat([chunk(0), Buffer.alloc(B), chunk(2), Buffer.alloc(3 * B), chunk(6), Buffer.alloc(B), randomBytes(1000, 300)]);
    dirty1.copy(want, 7 * B + 10);
    dirty2.copy(want, 5 * B + 8192 + 7);
    expectSameBytes(res.pagefs.data, want, 'pagefs');
    expectSameBytes(res.ext4.data, want, 'ext4');
    expect(res.pagefs.clean, 'pagefs, everything fsynced').toEqual(expectedSeeks(size, cleanData, seekOffsets(size)));
    expect(res.pagefs.dirty, 'pagefs, with dirty data in holes').toEqual(expectedSeeks(size, dirtyData, seekOffsets(size)));
    // Written 3 x 16 + 1, preallocated 16 inside and 16 past EOF, one new dirty block (the
    // other dirty blocks are in the preallocated range).
    expect(res.pagefs.st).toEqual({ size, blocks: (3 * 16 + 1 + 16 + 16 + 1) * 8 });
    expect({ ...res.ext4, data: sha(res.ext4.data) }).toEqual({ ...res.pagefs, data: sha(res.pagefs.data) });
  });

  it('an empty file, a file that is one hole, and a file ending in a preallocated range', async () => {
    const res = await onBoth(sd, roots, 'edges', async (f, where, dir) => {
      const empty = await f.seeks([0, 1, 4096]);
      await f.truncate(100 * KiB);
      const sparse = await f.seeks(seekOffsets(100 * KiB));
      await f.write(randomBytes(4096, 400), 0);
      expect(await f.falloc(0, 4096, 64 * KiB)).toBe('OK'); // extends the size into preallocated blocks
      await f.truncate(4096 + 64 * KiB);
      const tailPrealloc = await f.seeks(seekOffsets(4096 + 64 * KiB));
      return { empty, sparse, tailPrealloc };
    });
    expect(res.pagefs).toEqual({
      empty: [['ENXIO', 'ENXIO'], ['ENXIO', 'ENXIO'], ['ENXIO', 'ENXIO']],
      sparse: expectedSeeks(100 * KiB, () => false, seekOffsets(100 * KiB)),
      tailPrealloc: expectedSeeks(68 * KiB, (fb) => fb === 0, seekOffsets(68 * KiB)),
    });
    expect(res.ext4).toEqual(res.pagefs);
  });

  it('SEEK_DATA/SEEK_HOLE at a negative offset: ENXIO, as on ext4', async () => {
    const res = await onBoth(sd, roots, 'negative', async (f) => {
      await f.write(randomBytes(8192, 500), 0);
      return [await f.seek(-1, SEEK_DATA), await f.seek(-1, SEEK_HOLE), await f.seek(-4096, SEEK_DATA), await f.seek(-(2 ** 40), SEEK_HOLE)];
    });
    expect(res.ext4).toEqual(['ENXIO', 'ENXIO', 'ENXIO', 'ENXIO']);
    expect(res.pagefs).toEqual(res.ext4);
  });

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m, sd);
  });
});

// ---------------------------------------------------------------------------------------

describe('COLLAPSE_RANGE and INSERT_RANGE (pagefs ioctl and CLI vs ext4 fallocate)', () => {
  let m: Mounted;
  let sd: Sysd;
  let roots: Record<Where, string>;
  beforeAll(async () => {
    m = await mountFresh();
    sd = new Sysd();
    roots = { pagefs: path.join(m.mp, 'shift'), ext4: path.join(ext4!.mp, 'shift') };
    await fsp.mkdir(roots.pagefs);
    await fsp.mkdir(roots.ext4);
  });
  afterAll(async () => {
    await sd?.stop();
    await m?.cleanup();
  });

  type How = 'cli' | 'ioctl';
  /** Collapse or insert on one side: pagefs through its CLI or ioctl, ext4 through fallocate(2). */
  async function shiftOn(f: Fd, kind: 'collapse' | 'insert', off: number, len: number, how: How): Promise<string> {
    if (f.where === 'ext4') return f.falloc(kind === 'collapse' ? FALLOC.COLLAPSE_RANGE : FALLOC.INSERT_RANGE, off, len);
    if (how === 'ioctl') return f.ioctl(kind === 'collapse' ? PAGEFS_IOC_COLLAPSE_RANGE : PAGEFS_IOC_INSERT_RANGE, encodeRange(off, len));
    const r = await run(process.execPath, [BIN, kind, f.path, String(off), String(len)], { timeoutMs: 60_000 });
    if (r.code === 0) {
      expect(r.stderr).toBe('');
      return 'OK';
    }
    // The CLI names the errno on failure and exits 1.
    expect(r.code, r.stderr).toBe(1);
    const name = /\b(E[A-Z]+)\b/.exec(r.stderr);
    expect(name, `no errno name in: ${r.stderr}`).not.toBeNull();
    return name![1];
  }

  const collapse = (buf: Buffer, off: number, len: number) => Buffer.concat([buf.subarray(0, off), buf.subarray(off + len)]);
  const insert = (buf: Buffer, off: number, len: number) => Buffer.concat([buf.subarray(0, off), Buffer.alloc(len), buf.subarray(off)]);

  for (const how of ['cli', 'ioctl'] as How[]) {
    it(`collapse and insert (pagefs ${how}): same contents, sizes, blocks and holes as ext4`, async () => {
      const orig = randomBytes(256 * KiB, 600);
      const steps: ['collapse' | 'insert', number, number][] = [
        ['collapse', 8192, 12288],
        ['insert', 4096, 8192],
        ['collapse', 0, 4096],
        ['insert', 0, 65536],
        ['collapse', 128 * KiB, 64 * KiB],
        ['insert', 200 * KiB, 4096],
      ];
      const res = await onBoth(sd, roots, `seq-${how}`, async (f) => {
        await f.write(orig, 0);
        await f.truncate(256 * KiB + 777); // an unaligned EOF, a partial last block
        await f.sync();
        const out: unknown[] = [];
        for (const [kind, off, len] of steps) {
          out.push(await shiftOn(f, kind, off, len, how));
          out.push(await f.stat());
        }
        await f.sync();
        const st = await f.stat();
        out.push(await f.seeks(seekOffsets(st.size)));
        return { out, data: await f.contents() };
      });
      let want = Buffer.concat([orig, Buffer.alloc(777)]);
      for (const [kind, off, len] of steps) want = kind === 'collapse' ? collapse(want, off, len) : insert(want, off, len);
      expectSameBytes(res.pagefs.data, want, 'pagefs');
      expectSameBytes(res.ext4.data, want, 'ext4');
      expect(res.pagefs.out.filter((x) => typeof x === 'string')).toEqual(Array(steps.length).fill('OK'));
      expect(res.ext4.out).toEqual(res.pagefs.out);
    });
  }

  it('collapse and insert with dirty (unfsynced) data and data cached by an earlier read', async () => {
    const orig = randomBytes(128 * KiB, 601);
    const res = await onBoth(sd, roots, 'dirty', async (f) => {
      await f.write(orig, 0);
      await f.sync();
      await f.read(128 * KiB, 0); // pages cached (kernel and pagefs)
      const patch = randomBytes(10000, 602);
      await f.write(patch, 70000); // dirty, unfsynced
      const r1 = await shiftOn(f, 'collapse', 16 * KiB, 32 * KiB, 'ioctl');
      const afterCollapse = await f.read(128 * KiB, 0);
      await f.write(patch, 5); // dirty again
      const r2 = await shiftOn(f, 'insert', 8 * KiB, 16 * KiB, 'ioctl');
      const afterInsert = await f.read(256 * KiB, 0);
      return { r1, r2, afterCollapse, afterInsert };
    });
    let want = Buffer.from(orig);
    randomBytes(10000, 602).copy(want, 70000);
    want = collapse(want, 16 * KiB, 32 * KiB);
    expectSameBytes(res.pagefs.afterCollapse, want, 'pagefs after collapse');
    randomBytes(10000, 602).copy(want, 5);
    want = insert(want, 8 * KiB, 16 * KiB);
    expectSameBytes(res.pagefs.afterInsert, want, 'pagefs after insert');
    expect([res.pagefs.r1, res.pagefs.r2]).toEqual(['OK', 'OK']);
    expect([res.ext4.r1, res.ext4.r2]).toEqual(['OK', 'OK']);
    expectSameBytes(res.ext4.afterCollapse, res.pagefs.afterCollapse, 'ext4 vs pagefs after collapse');
    expectSameBytes(res.ext4.afterInsert, res.pagefs.afterInsert, 'ext4 vs pagefs after insert');
  });

  for (const how of ['cli', 'ioctl'] as How[]) {
    it(`errnos (pagefs ${how}): unaligned offset or length, collapse reaching EOF, insert at or past EOF: EINVAL, as on ext4`, async () => {
      const size = 64 * KiB;
      const orig = randomBytes(size, 603);
      const cases: ['collapse' | 'insert', number, number][] = [
        ['collapse', 100, 4096], ['collapse', 4096, 100], ['collapse', 4096, 4097], ['collapse', 2048, 2048],
        ['collapse', size - 4096, 4096], // reaches EOF exactly
        ['collapse', 32 * KiB, 32 * KiB], // reaches EOF exactly
        ['collapse', 32 * KiB, 64 * KiB], // past EOF
        ['collapse', size, 4096], ['collapse', MiB, 4096],
        ['insert', 100, 4096], ['insert', 4096, 100], ['insert', 2048, 2048],
        ['insert', size, 4096], // at EOF
        ['insert', size + 4096, 4096], ['insert', MiB, 4096], // past EOF
      ];
      const res = await onBoth(sd, roots, `errnos-${how}`, async (f) => {
        await f.write(orig, 0);
        const out: string[] = [];
        for (const [kind, off, len] of cases) out.push(await shiftOn(f, kind, off, len, how));
        return { out, st: await f.stat(), data: sha(await f.contents()) };
      });
      expect(res.pagefs).toEqual({ out: Array(cases.length).fill('EINVAL'), st: { size, blocks: 128 }, data: sha(orig) });
      expect(res.ext4).toEqual(res.pagefs);
    });
  }

  it('insert that would pass the maximum file size: EFBIG, as on ext4', async () => {
    const res = await onBoth(sd, roots, 'insert-efbig', async (f) => {
      await f.write(randomBytes(4096, 604), 0);
      await f.truncate(16 * TiB - 8192);
      const r = await shiftOn(f, 'insert', 0, 16384, 'ioctl');
      return { r, st: await f.stat() };
    });
    expect(res.pagefs).toEqual({ r: 'EFBIG', st: { size: 16 * TiB - 8192, blocks: 8 } });
    expect(res.ext4).toEqual(res.pagefs);
  });

  /**
   * Makes a fresh file of random data on each side, maps its first 128 KiB (MAP_SHARED,
   * PROT_READ), reads the mapping, and after each of `shifts` reads the mapping again,
   * within the new size only (past EOF a mapping faults with SIGBUS). Each side runs in a child
   * of its own, so that a SIGBUS is reported as such and takes nothing else with it.
   */
  async function mappedShifts(name: string, shifts: ['collapse' | 'insert', number, number][]) {
    const size = 128 * KiB;
    const orig = randomBytes(size, 605);
    const out = {} as Record<Where, { r: string[]; before: Buffer; afters: (Buffer | string)[] }>;
    for (const w of WHERES) {
      const local = new Sysd();
      try {
        const dir = path.join(roots[w], name);
        await fsp.mkdir(dir);
        const f = await Fd.open(local, path.join(dir, 'f'), w);
        await f.write(orig, 0);
        await f.sync();
        const id = await local.call('mmap', f.fd, 0, size, PROT_READ, MAP_SHARED);
        const before = Buffer.from(await local.call('mread', id, 0, size), 'base64');
        const r: string[] = [];
        const afters: (Buffer | string)[] = [];
        let newSize = size;
        for (const [kind, off, len] of shifts) {
          r.push(await shiftOn(f, kind, off, len, 'ioctl'));
          newSize += kind === 'collapse' ? -len : len;
          try {
            afters.push(Buffer.from(await local.call('mread', id, 0, Math.min(size, newSize)), 'base64'));
          } catch (e: any) {
            afters.push(`reading the mapping failed: ${e.message}`);
            break;
          }
        }
        out[w] = { r, before, afters };
      } finally {
        await local.stop(); // closes the file and unmaps
      }
    }
    for (const w of WHERES) {
      expect(out[w].afters.map((a) => (typeof a === 'string' ? a : 'read')), w).toEqual(shifts.map(() => 'read'));
      expect(out[w].r, w).toEqual(shifts.map(() => 'OK'));
      expectSameBytes(out[w].before, orig, `${w}: the mapping before`);
      let want = orig;
      shifts.forEach(([kind, off, len], i) => {
        want = kind === 'collapse' ? collapse(want, off, len) : insert(want, off, len);
        expectSameBytes(out[w].afters[i] as Buffer, want.subarray(0, size), `${w}: the mapping after ${kind} ${i}`);
      });
    }
  }

  it('a MAP_SHARED mapping made before a collapse shows the shifted data after it', async () => {
    await mappedShifts('mmap-collapse', [['collapse', 8192, 16384]]);
  });

  it('a MAP_SHARED mapping made before an insert shows the shifted data after it', async () => {
    await mappedShifts('mmap-insert', [['insert', 4096, 8192]]);
  });

  it('a MAP_SHARED mapping read after a collapse, then an insert that grows the file again: the mapping reaches the new size', async () => {
    // The read after the collapse teaches the kernel the smaller size (a short read at
    // the new EOF); the insert must not leave it believing that size.
    await mappedShifts('mmap-both', [['collapse', 8192, 16384], ['insert', 4096, 8192]]);
  });

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m, sd);
  });
});

// ---------------------------------------------------------------------------------------

describe('du, statfs and cp --sparse=always (pagefs vs ext4)', () => {
  let m: Mounted;
  let sd: Sysd;
  let roots: Record<Where, string>;
  beforeAll(async () => {
    m = await mountFresh();
    sd = new Sysd();
    roots = { pagefs: path.join(m.mp, 'du'), ext4: path.join(ext4!.mp, 'du') };
    await fsp.mkdir(roots.pagefs);
    await fsp.mkdir(roots.ext4);
  });
  afterAll(async () => {
    await sd?.stop();
    await m?.cleanup();
  });

  it('du -B1 and statfs show a punched MiB of a 4 MiB file freed', async () => {
    const res = await onBoth(sd, roots, 'punch', async (f, where, dir) => {
      await f.write(randomBytes(4 * MiB, 700), 0);
      await f.sync();
      const du0 = await duB1(f.path);
      const free0 = (await freeBlocks(f));
      const r = await f.falloc(P | K, MiB, MiB);
      await f.sync();
      const du1 = await duB1(f.path);
      const freed = (await freeBlocks(f)) - free0;
      return { r, du0, du1, freed, st: await f.stat() };
    });
    expect(res.pagefs).toEqual({ r: 'OK', du0: 4 * MiB, du1: 3 * MiB, freed: 256, st: { size: 4 * MiB, blocks: 3 * MiB / 512 } });
    expect(res.ext4).toEqual(res.pagefs);
  });

  it('cp --sparse=always of a sparse file within the mount keeps the holes', async () => {
    const size = 2 * MiB;
    const a = randomBytes(64 * KiB, 701);
    const b = randomBytes(64 * KiB, 702);
    const res = await onBoth(sd, roots, 'cp', async (f, where, dir) => {
      await f.write(a, 0);
      await f.write(Buffer.alloc(4096), 512 * KiB); // a written block of zeros: cp --sparse=always makes it a hole
      await f.write(b, MiB);
      await f.truncate(size);
      await f.sync();
      const copy = path.join(dir, 'copy');
      const r = await run('cp', ['--sparse=always', f.path, copy], { timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
      const g = await Fd.open(sd, copy, where, O_RDONLY);
      try {
        const seeks = await g.seeks(seekOffsets(size));
        return { srcDu: await duB1(f.path), du: await duB1(copy), st: await g.stat(), seeks, data: sha(await g.contents()) };
      } finally {
        await g.close();
      }
    });
    const want = Buffer.alloc(size);
    a.copy(want, 0);
    b.copy(want, MiB);
    expect(res.pagefs).toEqual({
      srcDu: 33 * 4096, du: 32 * 4096, st: { size, blocks: 32 * 8 },
      seeks: expectedSeeks(size, (fb) => fb < 16 || (fb >= 256 && fb < 272), seekOffsets(size)), data: sha(want),
    });
    expect(res.ext4).toEqual(res.pagefs);
  });

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m, sd);
  });
});

// ---------------------------------------------------------------------------------------

describe('1 KiB blocks: four blocks per 4 KiB page (pagefs vs ext4 -b 1024)', () => {
  let m: Mounted;
  let sd: Sysd;
  let ext1k: Ext4 | undefined;
  let roots: Record<Where, string>;
  const BS = 1024;
  beforeAll(async () => {
    ext1k = await makeExt4(1024);
    m = await mountFresh({ blockSize: 1024 });
    sd = new Sysd();
    roots = { pagefs: path.join(m.mp, 'k1'), ext4: path.join(ext1k.mp, 'k1') };
    await fsp.mkdir(roots.pagefs);
    await fsp.mkdir(roots.ext4);
  }, 120_000);
  afterAll(async () => {
    await sd?.stop();
    await m?.cleanup();
    await ext1k?.cleanup();
  }, 120_000);

  it('statfs reports 1 KiB blocks', async () => {
    expect((await sd.call('statfs', m.mp)).bsize).toBe(1024);
    expect((await sd.call('statfs', ext1k!.mp)).bsize).toBe(1024);
  });

  it('punch of a single 1 KiB block inside a page, cached and uncached; zero range of part of a page', async () => {
    const size = 16 * KiB;
    const orig = randomBytes(size, 800);
    // Three files: punched while cached, punched after a remount (nothing cached in pagefs), zeroed.
    for (const w of WHERES) {
      await fsp.mkdir(path.join(roots[w], 'punch1k'));
      for (const name of ['cached', 'cold', 'zero']) {
        const f = await Fd.open(sd, path.join(roots[w], 'punch1k', name), w);
        await f.write(orig, 0);
        await f.sync();
        await f.close();
      }
    }
    await sd.stop();
    await m.unmount();
    await m.remount();
    sd = new Sysd();
    const res = {} as Record<Where, unknown[]>;
    const datas = {} as Record<Where, Buffer[]>;
    for (const w of WHERES) {
      const out: unknown[] = [];
      const bufs: Buffer[] = [];
      const open = (n: string) => Fd.open(sd, path.join(roots[w], 'punch1k', n), w, 'r+');
      const cached = await open('cached');
      const cold = await open('cold');
      const zero = await open('zero');
      try {
        await cached.read(size, 0);
        for (const f of [cached, cold]) {
          out.push(await f.falloc(P | K, 5120, 1024)); // block 5 of page 1
          out.push(await f.falloc(P | K, 8192 + 100, 1024)); // parts of blocks 8 and 9, page 2
          out.push(await f.falloc(P | K, 15 * 1024, 1024)); // the last block
          await f.sync();
          out.push(await f.stat(), await f.seeks(seekOffsets(size, BS)));
        }
        out.push(await zero.falloc(Z | K, 9000, 2500)); // partial 8, whole 9 and 10, partial 11
        out.push(await zero.falloc(Z, 13 * 1024, 1024)); // one whole block
        out.push(await zero.falloc(Z, 16000, 1408)); // across EOF: the size grows to a block boundary in the next page
        await zero.sync();
        out.push(await zero.stat(), await zero.seeks(seekOffsets(17408, BS)));
        for (const f of [cached, cold, zero]) bufs.push(await f.contents());
      } finally {
        for (const f of [cached, cold, zero]) await f.close();
      }
      res[w] = out;
      datas[w] = bufs;
    }
    const punched = Buffer.from(orig);
    for (const [off, len] of [[5120, 1024], [8292, 1024], [15360, 1024]]) punched.fill(0, off, off + len);
    const zeroed = Buffer.concat([orig, Buffer.alloc(17408 - size)]);
    for (const [off, len] of [[9000, 2500], [13312, 1024], [16000, 1408]]) zeroed.fill(0, off, off + len);
    for (const w of WHERES) {
      expectSameBytes(datas[w][0], punched, `${w}: punched while cached`);
      expectSameBytes(datas[w][1], punched, `${w}: punched uncached`);
      expectSameBytes(datas[w][2], zeroed, `${w}: zeroed`);
    }
    const punchedSeeks = expectedSeeks(size, (fb) => fb !== 5 && fb !== 15, seekOffsets(size, BS), BS);
    expect(res.pagefs).toEqual([
      // Blocks 5 and 15 freed; 8 and 9 only partly punched, so kept.
      'OK', 'OK', 'OK', { size, blocks: 14 * 2 }, punchedSeeks,
      'OK', 'OK', 'OK', { size, blocks: 14 * 2 }, punchedSeeks,
      // 9, 10 and 13 unwritten (allocated, holes), 16 preallocated past the old EOF.
      'OK', 'OK', 'OK', { size: 17408, blocks: 17 * 2 },
      expectedSeeks(17408, (fb) => ![9, 10, 13, 16].includes(fb), seekOffsets(17408, BS), BS),
    ]);
    expect(res.ext4).toEqual(res.pagefs);
  });

  it('partial writes to several blocks of one page, and across a page boundary, read back the same after a remount', async () => {
    const writes: [number, Buffer][] = [
      [1030, randomBytes(100, 810)], // block 1
      [3000, randomBytes(100, 811)], // block 2
      [4090, randomBytes(10, 812)], // blocks 3 and 4, across the page boundary
      [8200, randomBytes(100, 813)], // block 8 of page 2
      [1100, randomBytes(50, 814)], // block 1 again, overlapping the first write
    ];
    const size = 8300;
    const want = Buffer.alloc(size);
    for (const [off, b] of writes) b.copy(want, off);
    const dataBlocks = new Set([1, 2, 3, 4, 8]);
    const seekWant = expectedSeeks(size, (fb) => dataBlocks.has(fb), seekOffsets(size, BS), BS);
    const res = await onBoth(sd, roots, 'partial', async (f) => {
      for (const [off, b] of writes) await f.write(b, off);
      const dirtySeeks = await f.seeks(seekOffsets(size, BS));
      await f.sync();
      return { dirtySeeks, st: await f.stat(), seeks: await f.seeks(seekOffsets(size, BS)), data: await f.contents() };
    });
    for (const w of WHERES) expectSameBytes(res[w].data, want, w);
    expect({ ...res.pagefs, data: undefined }).toEqual({ dirtySeeks: seekWant, st: { size, blocks: 5 * 2 }, seeks: seekWant, data: undefined });
    expect({ ...res.ext4, data: undefined }).toEqual({ ...res.pagefs, data: undefined });
    // From the store, with nothing cached.
    await sd.stop();
    await m.unmount();
    await m.remount();
    sd = new Sysd();
    const f = await Fd.open(sd, path.join(roots.pagefs, 'partial', 'f'), 'pagefs', O_RDONLY);
    try {
      expect(await f.seeks(seekOffsets(size, BS))).toEqual(seekWant);
      expectSameBytes(await f.contents(), want, 'pagefs after remount');
      expect(await f.stat()).toEqual({ size, blocks: 10 });
    } finally {
      await f.close();
    }
  });

  it('EFBIG past the maximum file size (4 TiB with 1 KiB blocks), as on ext4', async () => {
    const res = await onBoth(sd, roots, 'efbig', async (f) => [
      await f.falloc(0, 4 * TiB, 1), await f.falloc(K, 4 * TiB - 1024, 2048), await f.falloc(P | K, 4 * TiB, 1024),
      await f.falloc(K, 4 * TiB - 2048, 1024), (await f.stat()).blocks,
    ]);
    expect(res.pagefs).toEqual(['EFBIG', 'EFBIG', 'EFBIG', 'OK', 2]);
    expect(res.ext4).toEqual(res.pagefs);
  });

  it('property: same errno, size and contents after random op sequences (25 runs x up to 25 ops)', async () => {
    const rootsP = { pagefs: path.join(roots.pagefs, '..', 'k1prop'), ext4: path.join(roots.ext4, '..', 'k1prop') };
    for (const w of WHERES) await fsp.mkdir(rootsP[w], { recursive: true });
    const checks0 = checksDone;
    await fc.assert(fc.asyncProperty(fc.array(opArb(BS, 64 * KiB), { minLength: 1, maxLength: 25 }), async (seq) => {
      await runSequence(sd, rootsP, `k${runNo++}`, seq, 5, checkContents);
    }), fcParams<[Op[]]>(25));
    expect(checksDone - checks0, 'comparisons made').toBeGreaterThanOrEqual(25);
  }, 200_000);

  it('property: same SEEK_DATA/SEEK_HOLE answers at every block (25 runs x up to 25 ops)', async () => {
    const rootsP = { pagefs: path.join(roots.pagefs, '..', 'k1prop'), ext4: path.join(roots.ext4, '..', 'k1prop') };
    for (const w of WHERES) await fsp.mkdir(rootsP[w], { recursive: true });
    const checks0 = checksDone;
    await fc.assert(fc.asyncProperty(fc.array(opArb(BS, 64 * KiB), { minLength: 1, maxLength: 25 }), async (seq) => {
      await runSequence(sd, rootsP, `ks${runNo++}`, seq, 5, (files, step) => checkSeeks(files, step, BS));
    }), fcParams<[Op[]]>(25));
    expect(checksDone - checks0, 'comparisons made').toBeGreaterThanOrEqual(25);
  }, 200_000);

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m, sd);
  });
});
