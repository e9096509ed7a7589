/**
 * Hostile offsets and lengths through the real mount: fast-check sequences of raw
 * syscalls (pread, pwrite, truncate, ftruncate, fallocate in every mode, lseek with every
 * whence, copy_file_range) whose offsets and lengths sit on the edges (0, 1, block size
 * +-1, 2^31, 2^32, the maximum file size +-1, 2^53, 2^63 - 1, negative), made on pagefs
 * and with the same calls on a loop-mounted ext4 (4 KiB blocks, as pagefs). Every answer
 * (value or errno) and the files afterwards must be the same.
 *
 * The calls go through native-shim's sys module in a child process (test/helpers/sysd.ts):
 * Node's fs refuses negative and huge values before any syscall.
 *
 * Where the kernel, not the filesystem, answers differently for a FUSE file (pagefs cannot
 * change these; each is checked against its own rule instead of ext4's):
 * - lseek SEEK_SET/SEEK_CUR/SEEK_END never reach a FUSE daemon; the VFS checks them
 *   against the superblock's s_maxbytes, which is 2^63 - 1 for FUSE and 16 TiB - 4 KiB
 *   for ext4. Past ext4's limit pagefs's answer must be the plain arithmetic.
 * - copy_file_range to an offset at or past ext4's s_maxbytes with nothing to copy (length
 *   0, or the source offset at or past the source's end): ext4's VFS check answers EFBIG,
 *   while for FUSE the VFS answers 0 itself and the daemon is never asked. When there is
 *   something to copy the daemon is asked and answers EFBIG like ext4.
 * - a fallocate that runs out of space: ext4 keeps what it allocated before it ran out
 *   (mode 0 even raises the size to it), pagefs allocates all or nothing. Both must say
 *   ENOSPC; the sequence then ends there. Both filesystems have 3 GiB, so that any one
 *   allocation up to 2 GiB fits on both and any of 4 GiB or more fits on neither.
 * - copy_file_range keeps the source's holes on pagefs (whole blocks are shared) and
 *   writes zeros on ext4: after a copy, SEEK_DATA/SEEK_HOLE may differ; the bytes may not.
 * - fallocate COLLAPSE_RANGE, INSERT_RANGE, UNSHARE_RANGE and WRITE_ZEROES are refused
 *   by the FUSE client (EOPNOTSUPP) unless the VFS refused them first with the same errno
 *   it gives on ext4; pagefs offers collapse and insert through an ioctl instead.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import fsp from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { FALLOC, SEEK_DATA, SEEK_HOLE } from '../../src/sys/index.js';
import { mountFresh, run, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { mountExt4, type Ext4, type Where } from '../helpers/ext4.js';
import { Sysd } from '../helpers/sysd.js';
import { fcParams } from '../helpers/fc.js';
import { expectDaemonWell } from './hostile-lib.js';

const BS = 4096n;
/** ext4's s_maxbytes with 4 KiB blocks, and pagefs's: 2^32 - 1 blocks. */
const MAXF = (2n ** 32n - 1n) * BS;
const I64_MAX = 2n ** 63n - 1n;
const SEEK_SET = 0;
const SEEK_CUR = 1;
const SEEK_END = 2;
const FALLOC_FL_WRITE_ZEROES = 0x80;
const O_RDWR_CREAT = 'w+';
const BIG_COPY = 16n << 20n;

/** Offsets and lengths on the edges. */
const EDGES = [0n, 1n, BS - 1n, BS, BS + 1n, 3n * BS, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n, 2n ** 32n + BS,
  MAXF - BS - 1n, MAXF - BS, MAXF - 1n, MAXF, MAXF + 1n, 16n * 2n ** 40n, 2n ** 53n, I64_MAX - 1n, I64_MAX,
  -1n, -BS, -(2n ** 31n), -(2n ** 63n)];
/** Buffer lengths for pread and pwrite (the buffer is ours: its length is real). */
const IO_LENS = [0, 1, 4095, 4096, 4097, 3 * 4096 + 5];
/** fallocate modes the FUSE client passes to the daemon, and ones the VFS refuses for every filesystem. */
const PASSED_MODES = [0, FALLOC.KEEP_SIZE, FALLOC.PUNCH_HOLE | FALLOC.KEEP_SIZE, FALLOC.ZERO_RANGE, FALLOC.ZERO_RANGE | FALLOC.KEEP_SIZE,
  FALLOC.PUNCH_HOLE, FALLOC.NO_HIDE_STALE, FALLOC.PUNCH_HOLE | FALLOC.ZERO_RANGE | FALLOC.KEEP_SIZE, 0x100, -1];
/** Modes ext4 implements and the FUSE client refuses. */
const REFUSED_MODES = [FALLOC.COLLAPSE_RANGE, FALLOC.INSERT_RANGE, FALLOC.UNSHARE_RANGE, FALLOC_FL_WRITE_ZEROES, FALLOC.UNSHARE_RANGE | FALLOC.KEEP_SIZE];

type Op =
  | { op: 'pread'; len: number; off: bigint }
  | { op: 'pwrite'; len: number; off: bigint; seed: number }
  | { op: 'ftruncate'; len: bigint }
  | { op: 'truncate'; len: bigint }
  | { op: 'fallocate'; mode: number; off: bigint; len: bigint }
  | { op: 'lseek'; off: bigint; whence: number }
  | { op: 'copy'; offIn: bigint; offOut: bigint; len: bigint; same: boolean; flags: number };

const edge = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...EDGES) }, { weight: 1, arbitrary: fc.bigInt(-(2n ** 63n), I64_MAX) },
  { weight: 1, arbitrary: fc.bigInt(0n, 8n * BS) });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('pread' as const), len: fc.constantFrom(...IO_LENS), off: edge }),
  fc.record({ op: fc.constant('pwrite' as const), len: fc.constantFrom(...IO_LENS), off: edge, seed: fc.integer({ min: 1, max: 1000 }) }),
  fc.record({ op: fc.constant('ftruncate' as const), len: edge }),
  fc.record({ op: fc.constant('truncate' as const), len: edge }),
  fc.record({ op: fc.constant('fallocate' as const), mode: fc.constantFrom(...PASSED_MODES, ...REFUSED_MODES), off: edge, len: edge }),
  fc.record({ op: fc.constant('lseek' as const), off: edge, whence: fc.constantFrom(SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE, 5) }),
  fc.record({ op: fc.constant('copy' as const), offIn: edge, offOut: edge, len: edge, same: fc.boolean(), flags: fc.constantFrom(0, 0, 0, 1) }),
);

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = ((i * 131 + seed * 7) % 251) + 1;
  return b;
}
const digest = (b64: string) => {
  const b = Buffer.from(b64, 'base64');
  return `${b.length}:${crypto.createHash('sha256').update(b).digest('hex').slice(0, 16)}`;
};

/** One side's open files: `f` takes the ops, `src` is a copy_file_range source. */
interface Side { where: Where; dir: string; f: number; src: number; scratch: number }

let sd: Sysd;
let m: Mounted;
let ext4: Ext4;

beforeAll(async () => {
  ext4 = await mountExt4({ blockSize: 4096, size: '3G' });
  m = await mountFresh({ blockSize: 4096, capacity: '3G' });
  sd = new Sysd();
}, 120_000);

afterAll(async () => {
  await sd?.stop();
  await m?.cleanup();
  await ext4?.cleanup();
}, 120_000);

/** Value or errno name of one call. */
async function ans(op: string, ...args: unknown[]): Promise<unknown> {
  const r = await sd.raw(op, args);
  return r.ok ? r.v : r.code;
}

async function openSide(where: Where, root: string, name: string): Promise<Side> {
  const dir = path.join(root, name);
  await fsp.mkdir(dir);
  const f = await sd.call('open', path.join(dir, 'f'), O_RDWR_CREAT);
  const src = await sd.call('open', path.join(dir, 'src'), O_RDWR_CREAT);
  const scratch = await sd.call('open', path.join(dir, 'scratch'), O_RDWR_CREAT);
  // A file of two data blocks, a hole, and a partial block; the source is unaligned.
  await sd.call('rawPwrite', f, pattern(8192, 1).toString('base64'), '0');
  await sd.call('rawPwrite', f, pattern(100, 2).toString('base64'), String(4n * BS));
  await sd.call('rawPwrite', src, pattern(3 * 4096 + 7, 3).toString('base64'), '0');
  return { where, dir, f, src, scratch };
}

async function closeSide(s: Side): Promise<void> {
  for (const fd of [s.f, s.src, s.scratch]) await sd.call('close', fd).catch(() => undefined);
  await fsp.rm(s.dir, { recursive: true, force: true });
}

/**
 * ext4 only, before SEEK_DATA/SEEK_HOLE: fsync and drop the file's clean pages, so ext4
 * answers from its extent map and not from whether a zeroed folio of an unwritten extent
 * happens to be cached (fallocate.test.ts, Fd.settle, has the story). pagefs is asked as it is.
 */
async function settle(s: Side): Promise<void> {
  if (s.where !== 'ext4') return;
  await sd.call('fsync', s.f);
  const r = await run('dd', [`if=${path.join(s.dir, 'f')}`, 'iflag=nocache', 'count=0', 'status=none'], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`fadvise: ${r.stderr}`);
}

async function apply(s: Side, o: Op): Promise<unknown> {
  switch (o.op) {
    case 'pread': {
      const v = await ans('rawPread', s.f, o.len, String(o.off));
      return typeof v === 'string' && !v.startsWith('E') ? digest(v) : v;
    }
    case 'pwrite': return ans('rawPwrite', s.f, pattern(o.len, o.seed).toString('base64'), String(o.off));
    case 'ftruncate': return ans('rawFtruncate', s.f, String(o.len));
    case 'truncate': return ans('rawTruncate', path.join(s.dir, 'f'), String(o.len));
    case 'fallocate': return ans('fallocate', s.f, o.mode, String(o.off), String(o.len));
    case 'lseek':
      if (o.whence === SEEK_DATA || o.whence === SEEK_HOLE) await settle(s);
      return ans('lseek', s.f, String(o.off), o.whence);
    case 'copy': return ans('copyFileRange', o.same ? s.f : s.src, String(o.offIn), s.f, String(o.offOut), String(o.len), o.flags);
  }
}

/**
 * The file's size and bytes at its edges, with the hole map from 0 (ext4 settled) unless
 * `holes` is false: copy_file_range keeps the source's holes on pagefs (whole blocks are
 * shared, a hole stays a hole) where ext4 writes zeros, so after a copy only the bytes compare.
 */
async function fileState(s: Side, holes: boolean): Promise<unknown> {
  const size = BigInt((await sd.call('fstat', s.f)).size);
  const at = [0n, 4n * BS - 1n, size - 5000n].filter((o) => o >= 0n);
  const bytes: unknown[] = [];
  for (const o of at) bytes.push(digest(await sd.call('rawPread', s.f, 16384, String(o))));
  if (!holes) return { size: String(size), bytes };
  await settle(s);
  return { size: String(size), bytes, data0: await ans('lseek', s.f, '0', SEEK_DATA), hole0: await ans('lseek', s.f, '0', SEEK_HOLE) };
}

/** SEEK_SET/CUR/END past ext4's s_maxbytes: FUSE's limit is 2^63 - 1 (see the header). */
function fuseSeekRule(o: Extract<Op, { op: 'lseek' }>, pos: bigint, size: bigint): unknown {
  const base = o.whence === SEEK_SET ? 0n : o.whence === SEEK_CUR ? pos : size;
  const to = base + o.off;
  return to < 0n || to > I64_MAX ? 'EINVAL' : Number(to);
}

/** What one step did to the sequence's state. */
type Outcome = 'same' | 'copied' | 'out of space';
const RECEIVED_EXPECTED = '(received: pagefs, expected: ext4)';

/** SEEK_SET/CUR/END: ext4's answer, or past its s_maxbytes FUSE's own (see the header). */
async function seekStep(p: Side, e: Side, o: Extract<Op, { op: 'lseek' }>, log: string): Promise<void> {
  const posBefore = BigInt(await sd.call('lseek', p.f, '0', SEEK_CUR));
  const size = BigInt((await sd.call('fstat', p.f)).size);
  const [ap, ae] = [await apply(p, o), await apply(e, o)];
  if (ap === ae) return;
  expect(ae, `${log}\next4 differs from pagefs (${String(ap)}) only past its s_maxbytes`).toBe('EINVAL');
  expect(ap, log).toEqual(fuseSeekRule(o, posBefore, size));
  expect(BigInt(ap as number) > MAXF || o.off > MAXF, log).toBe(true);
  // Both positions back to one place, so later SEEK_CURs compare again.
  await sd.call('lseek', p.f, String(posBefore), SEEK_SET);
}

/** copy_file_range: ext4's answer, or past its s_maxbytes what FUSE's VFS checks give. */
async function copyStep(p: Side, e: Side, o: Extract<Op, { op: 'copy' }>, log: string[]): Promise<Outcome> {
  const srcSize = BigInt((await sd.call('fstat', o.same ? p.f : p.src)).size);
  const count = o.offIn >= srcSize ? 0n : o.len < srcSize - o.offIn ? o.len : srcSize - o.offIn;
  if (o.offIn >= 0n && o.offOut >= 0n && o.len >= 0n && o.offOut + count < MAXF && count > BIG_COPY) {
    // A copy of gigabytes of real bytes (a truncated-up file into itself, unaligned)
    // takes minutes on both; copy.test.ts covers copying, this test the edges.
    log.push('  (skipped: copies more than 16 MiB)');
    return 'same';
  }
  const [ap, ae] = [await apply(p, o), await apply(e, o)];
  // FUSE's own s_maxbytes is 2^63 - 1; below it a negative source offset is EINVAL and
  // nothing to copy is 0, answered by the VFS without asking the daemon.
  const fuse = o.offOut >= I64_MAX ? 'EFBIG' : o.offIn < 0n ? 'EINVAL' : o.len === 0n || o.offIn >= srcSize ? 0 : 'EFBIG';
  expect(ap, `${log.join('\n')}\n${RECEIVED_EXPECTED}`).toEqual(ae === 'EFBIG' && o.offOut >= MAXF ? fuse : ae);
  return typeof ap === 'number' && ap > 0 ? 'copied' : 'same';
}

/** One step on both sides, compared. */
async function step(p: Side, e: Side, o: Op, log: string[], copied: boolean): Promise<Outcome> {
  const where = log.join('\n');
  if (o.op === 'fallocate' && REFUSED_MODES.includes(o.mode)) {
    // ext4 on a scratch file of the same size, so that its file stays as pagefs's.
    await sd.call('rawFtruncate', e.scratch, String((await sd.call('fstat', e.f)).size));
    const onExt4 = await ans('fallocate', e.scratch, o.mode, String(o.off), String(o.len));
    const onPagefs = await apply(p, o);
    expect([onExt4, 'EOPNOTSUPP'], `${where}\npagefs answered ${String(onPagefs)}`).toContain(onPagefs);
    return 'same';
  }
  if (o.op === 'lseek' && [SEEK_SET, SEEK_CUR, SEEK_END].includes(o.whence)) {
    await seekStep(p, e, o, where);
    return 'same';
  }
  if (o.op === 'copy') return copyStep(p, e, o, log);
  const [ap, ae] = [await apply(p, o), await apply(e, o)];
  if (copied && o.op === 'lseek') {
    // The hole maps may differ after a copy (see fileState); both answer, or both ENXIO/EINVAL.
    expect(typeof ap === 'number' ? 'number' : ap, where).toEqual(typeof ae === 'number' ? 'number' : ae);
    return 'same';
  }
  expect(ap, `${where}\n${RECEIVED_EXPECTED}`).toEqual(ae);
  // ext4 kept a partial allocation (see the header): the files may differ from here on.
  return ap === 'ENOSPC' ? 'out of space' : 'same';
}

let runNo = 0;

async function runSequence(seq: Op[]): Promise<void> {
  const name = `r${runNo++}`;
  const sides = [await openSide('pagefs', m.mp, name), await openSide('ext4', ext4.mp, name)];
  const [p, e] = sides;
  try {
    const log: string[] = [];
    let copied = false;
    let outcome: Outcome = 'same';
    for (const [i, o] of seq.entries()) {
      log.push(`step ${i} ${JSON.stringify(o, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}`);
      if (process.env.PAGEFS_TRACE) console.log(name, log[log.length - 1]);
      outcome = await step(p, e, o, log, copied);
      if (outcome === 'copied') copied = true;
      if (outcome === 'out of space') break;
    }
    if (outcome !== 'out of space') expect(await fileState(p, !copied), `file after:\n${log.join('\n')}`).toEqual(await fileState(e, !copied));
  } finally {
    for (const s of sides) await closeSide(s);
  }
  await expectDaemonWell(m);
}

describe('hostile offsets and lengths: raw syscalls on pagefs and ext4', () => {
  it('random sequences of edge offsets and lengths give the same answers and files', async () => {
    await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 8 }), runSequence), fcParams<[Op[]]>(150));
  }, 600_000);

  it('every edge value in each single call, exhaustively for pread, pwrite, truncate and ftruncate', async () => {
    const ops: Op[] = [];
    for (const off of EDGES) {
      ops.push({ op: 'pread', len: 4097, off }, { op: 'pwrite', len: 4097, off, seed: 5 }, { op: 'ftruncate', len: off }, { op: 'truncate', len: off });
    }
    // One sequence per value keeps each file small and each failure about one value.
    for (let i = 0; i < ops.length; i += 4) await runSequence(ops.slice(i, i + 4));
  }, 600_000);

  it('every fallocate mode and every lseek whence at the size limit; allocations of the whole possible file', async () => {
    for (const mode of [...PASSED_MODES, ...REFUSED_MODES]) {
      await runSequence([MAXF - BS, MAXF - 1n, MAXF, -1n].map((off) => ({ op: 'fallocate', mode, off, len: BS }) as Op));
    }
    // Allocations of the whole possible file: ENOSPC at once on both (pagefs once counted
    // the 2^32 blocks one by one first, stalling every request for minutes).
    for (const mode of [0, FALLOC.KEEP_SIZE, FALLOC.ZERO_RANGE, FALLOC.ZERO_RANGE | FALLOC.KEEP_SIZE]) {
      await runSequence([{ op: 'fallocate', mode, off: 0n, len: MAXF }]);
      await runSequence([{ op: 'fallocate', mode, off: BS + 1n, len: MAXF - 2n * BS }]);
    }
    for (const whence of [SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE]) {
      await runSequence([{ op: 'ftruncate', len: MAXF }, ...[MAXF - 1n, MAXF, -1n, I64_MAX].map((off) => ({ op: 'lseek', off, whence }) as Op)]);
    }
  }, 600_000);

  it('unmounts cleanly with a clean log', async () => {
    await sd.stop();
    await m.unmount();
    expectCleanLog(m);
  }, 120_000);
});
