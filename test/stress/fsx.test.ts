/**
 * The fsx checker (src/stress/fsx.ts): seeded random operations over two files, every
 * read checked against a model. Clean on pagefs (4 KiB and 1 KiB blocks, a small cache
 * so that pages are evicted and filled again), across unmount and mount, and on tmpfs;
 * the same seed repeats the same run; the CLI prints one summary line; and a block
 * corrupted in the store behind the daemon's back is reported with the seed, the
 * operation, the offset range, the expected and actual bytes and whose block they were.
 */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { mountFresh, expectCleanLog, pagefs, type Mounted } from '../helpers/mount.js';
import { runFsx, formatFsx, FSX_OPS, type FsxResult } from '../../src/stress/fsx.js';
import { stampBlock } from '../../src/stress/stamp.js';

let m: Mounted | null = null;
const scratch: string[] = [];
afterEach(async () => {
  await m?.cleanup();
  m = null;
  for (const d of scratch.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** Records a failed run's dump directory for removal; returns the result. */
function keep(r: FsxResult): FsxResult {
  if (r.dumpDir) scratch.push(r.dumpDir);
  return r;
}

/** Clean, all operations done, and every operation the probe did not skip was run. */
function expectClean(r: FsxResult, ops: number): void {
  // The report is the message: a failure shows the seed, the range and the last operations.
  expect(r.failure, formatFsx(r)).toBeUndefined();
  expect(r.ops).toBe(ops);
  for (const op of FSX_OPS) {
    if (r.skipped.some((s) => s.startsWith(`${op} `))) continue;
    expect(r.opCounts[op] ?? 0, `${op} never ran`).toBeGreaterThan(0);
  }
  expect(r.bytesChecked).toBeGreaterThan(ops * 1000);
}

function shmDir(): string {
  const d = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : '/tmp', 'pagefs-fsx-test-'));
  scratch.push(d);
  return d;
}

for (const blockSize of [4096, 1024]) {
  describe(`fsx on pagefs with ${blockSize}-byte blocks`, () => {
    it('stays clean over 2,000 operations, every fallocate mode, collapse and insert included', async () => {
      m = await mountFresh({ blockSize, capacity: '256M', mountArgs: ['--cache-size', '256K'] });
      const r = keep(await runFsx({ dir: m.mp, seed: 4000 + blockSize, ops: 2000 }));
      // pagefs offers every operation; collapse and insert through its ioctls.
      expect(r.skipped).toEqual([]);
      expect(r.shiftVia).toBe('ioctl');
      expect(r.blockSize).toBe(blockSize);
      expectClean(r, 2000);
      expectCleanLog(m);
    });
  });
}

describe('fsx across unmount and mount', () => {
  it('stays clean when pagefs is unmounted and mounted again every 500 operations', async () => {
    m = await mountFresh({ blockSize: 4096, capacity: '256M', mountArgs: ['--cache-size', '256K'] });
    const mounted = m;
    const r = keep(await runFsx({
      dir: m.mp, seed: 5150, ops: 2000, remountEvery: 500,
      remount: async () => {
        await mounted.unmount();
        await mounted.remount();
      },
    }));
    expectClean(r, 2000);
    expect(r.remounts).toBe(3);
    expectCleanLog(m);
  });
});

describe('fsx on tmpfs', () => {
  it('stays clean over 2,000 operations', async () => {
    const r = keep(await runFsx({ dir: shmDir(), seed: 2024, ops: 2000 }));
    expectClean(r, 2000);
  });

  it('repeats the same operations for the same seed', async () => {
    const dir = shmDir();
    const a = keep(await runFsx({ dir, seed: 31337, ops: 500, files: 3 }));
    const b = keep(await runFsx({ dir, seed: 31337, ops: 500, files: 3 }));
    const c = keep(await runFsx({ dir, seed: 31338, ops: 500, files: 3 }));
    for (const r of [a, b, c]) expect(r.failure, formatFsx(r)).toBeUndefined();
    // The bytes checked depend on every operation's kind, file, offset and length.
    expect(b.opCounts).toEqual(a.opCounts);
    expect(b.bytesChecked).toBe(a.bytesChecked);
    expect(c.bytesChecked).not.toBe(a.bytesChecked);
    // A clean run leaves nothing behind.
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('pagefs stress --fsx', () => {
  it('prints one summary line and exits 0 when clean; --json prints the result', async () => {
    const dir = shmDir();
    const r = await pagefs(['stress', '--fsx', dir, '--ops', '1000', '--seed', '7', '--files', '3', '--max-size', '128K']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^fsx: clean: seed 7, 1000 ops \((\d+ [a-z_]+)(, \d+ [a-z_]+)*\), 3 files, \d+ bytes checked, \d+\.\d s$/);
    const j = await pagefs(['stress', '--fsx', dir, '--ops', '300', '--seed', '7', '--json']);
    expect(j.code, j.stderr).toBe(0);
    const res = JSON.parse(j.stdout) as FsxResult;
    expect(res).toMatchObject({ seed: 7, ops: 300, files: 2, maxSize: 256 * 1024 });
  });

  it('refuses bad options with one line', async () => {
    const dir = shmDir();
    const mix = await pagefs(['stress', '--fsx', dir, '--op-mix', 'write=5,bogus=1']);
    expect(mix.code).toBe(1);
    expect(mix.stderr).toMatch(/--op-mix: unknown operation 'bogus'/);
    const alone = await pagefs(['stress', '--fsx', dir, '--remount-every', '10']);
    expect(alone.code).toBe(1);
    expect(alone.stderr).toMatch(/--remount-every and --store go together/);
    const notPagefs = await pagefs(['stress', '--fsx', dir, '--remount-every', '10', '--store', '/nonexistent.db']);
    expect(notPagefs.code).toBe(1);
    expect(notPagefs.stderr).toMatch(/needs .* on a pagefs mount/);
  });

  it('--remount-every with --store unmounts and mounts the store through the CLI', async () => {
    m = await mountFresh({ blockSize: 4096, capacity: '256M' });
    try {
      // The CLI path of remounting is under test here, not the operations: collapse and insert off.
      const r = await pagefs(['stress', '--fsx', m.mp, '--ops', '900', '--seed', '99', '--remount-every', '300', '--store', m.store,
        '--op-mix', 'collapse=0,insert=0'], { timeoutMs: 110_000 });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^fsx: clean: seed 99, 900 ops .*, 2 remounts, \d+\.\d s$/m);
    } finally {
      // The CLI left the store mounted by a background daemon of its own.
      await pagefs(['umount', m.mp], { timeoutMs: 60_000 });
    }
  });
});

describe('fsx reports a block corrupted behind the daemon\'s back', () => {
  it('names the seed, the operation, the range, the expected and actual bytes and whose block', async () => {
    const bs = 4096;
    const seed = 8086;
    m = await mountFresh({ blockSize: bs, capacity: '256M' });
    const mounted = m;
    let work = '';
    let planted: { file: string; blockStart: number; size: number; before: Buffer; bad: Buffer } | undefined;
    const r = keep(await runFsx({
      // This test is about the report, so the operations stay clear of collapse and insert.
      dir: m.mp, seed, ops: 600, remountEvery: 300, mix: { collapse: 0, insert: 0 },
      onProbe: (p) => { work = p.workDir; },
      remount: async () => {
        const inos = await Promise.all(['f0', 'f1'].map(async (f) => ({ f, st: await fs.promises.stat(path.join(work, f)) })));
        await mounted.unmount();
        // With no daemon running: overwrite the first written data block of f0 (else f1) in the store.
        const db = new Database(mounted.store);
        try {
          for (const { f, st } of inos) {
            const row = db.prepare('SELECT fblock, pblock FROM bmap WHERE ino = ? AND (flags & 1) = 0 AND fblock < ? ORDER BY fblock LIMIT 1')
              .get(st.ino, Math.ceil(st.size / bs)) as { fblock: number; pblock: number } | undefined;
            if (!row) continue;
            const before = (db.prepare('SELECT bytes FROM data WHERE pblock = ?').get(row.pblock) as { bytes: Buffer }).bytes;
            const bad = stampBlock({ file: 99, block: 7, gen: 12345 }, bs);
            db.prepare('UPDATE data SET bytes = ? WHERE pblock = ?').run(bad, row.pblock);
            planted = { file: f, blockStart: row.fblock * bs, size: st.size, before, bad };
            break;
          }
        } finally {
          db.close();
        }
        await mounted.remount();
      },
    }));
    expect(planted, 'no written data block to corrupt after 300 operations').toBeDefined();
    const p = planted!;
    const f = r.failure!;
    expect(f, 'the corruption went unnoticed').toBeDefined();
    expect(r.seed).toBe(seed);
    expect(r.remounts).toBe(1);
    // Found by the check of every file right after the remount, at op 300.
    expect(f.kind).toBe('data');
    expect(f.op).toBe(300);
    expect(f.file).toBe(p.file);
    const blockEnd = Math.min(p.blockStart + bs, p.size);
    expect(f.offset!).toBeGreaterThanOrEqual(p.blockStart);
    expect(f.offset!).toBeLessThan(p.blockStart + 32);
    expect(f.end!).toBeLessThanOrEqual(blockEnd);
    expect(f.end!).toBeGreaterThan(blockEnd - 32);
    // Expected: what the store held there before (the model agreed with pagefs); actual: the planted bytes.
    const at = f.offset! - p.blockStart;
    const upto = Math.min(at + 32, blockEnd - p.blockStart);
    expect(f.expectedHex).toBe(p.before.subarray(at, upto).toString('hex'));
    expect(f.actualHex).toBe(p.bad.subarray(at, upto).toString('hex'));
    expect(f.actual).toMatch(/^block 7 of file id 99 \(not one of this run's files\), generation 12345$/);
    expect(f.expected).toMatch(/last set by op #\d+/);
    expect(f.log).toHaveLength(20);
    expect(f.log[19]).toMatch(/^#300 /);
    const text = formatFsx(r);
    const hex = (n: number) => `0x${n.toString(16)}`;
    expect(text).toContain(`seed ${seed}`);
    expect(text).toContain(`first differing range: ${hex(f.offset!)}..${hex(f.end!)}`);
    expect(text).toContain(`expected at ${hex(f.offset!)}: ${f.expectedHex}`);
    expect(text).toContain(`actual   at ${hex(f.offset!)}: ${f.actualHex}`);
    expect(text).toContain('block 7 of file id 99');
    expect(text.trim().split('\n').at(-1)).toMatch(new RegExp(`^fsx: MISMATCH: seed ${seed}, op #300 of 600, ${p.file} ${hex(f.offset!)}\\.\\.${hex(f.end!)}, `));
    // The dump holds the model of each file and the operation log.
    expect(fs.readFileSync(path.join(r.dumpDir!, 'ops.log'), 'utf8')).toMatch(/^#1 /);
  });
});
