/**
 * The page-cache race test (issue: page cache with invalidate_lock): readers with
 * read(2), O_DIRECT and mmap against a writer that punches, zeroes, rewrites (and
 * shifts) ranges and reuses the freed blocks, through the real mount, with 4 KiB and
 * 1 KiB blocks. With the invalidate_lock it must stay clean; with the lock switched
 * off and a delay injected in the fill's race window it must catch stale data.
 */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import { mountFresh, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { runRace, type RaceOptions } from '../../src/stress/race.js';

let m: Mounted | null = null;
afterEach(async () => {
  await m?.cleanup();
  m = null;
});

const base = (dir: string, seed: number): RaceOptions => ({
  dir, seed, durationMs: 6000, readers: 2, directReaders: 1, mappers: 1, blocks: 1024, variant: 'punch', stopOnFirst: false, minWriterOps: 200,
});

for (const blockSize of [4096, 1024]) {
  describe(`race with ${blockSize}-byte blocks`, () => {
    it('stays clean with the invalidate_lock (punch, zero, rewrite, reuse)', async () => {
      m = await mountFresh({ blockSize, capacity: '256M', mountArgs: ['--cache-size', '256K', '--inject-delay', 'after-lookup=10'] });
      const r = await runRace(base(m.mp, 11));
      expect(r.errors).toEqual([]);
      expect(r.writerOps).toBeGreaterThan(50);
      expect(r.opCounts.punch).toBeGreaterThan(0);
      expect(r.checkedBlocks).toBeGreaterThan(1000);
      expect(r.violations).toEqual([]);
      expectCleanLog(m);
    });

    it('stays clean with the invalidate_lock when ranges are inserted and collapsed', async () => {
      m = await mountFresh({ blockSize, capacity: '256M', mountArgs: ['--cache-size', '256K', '--inject-delay', 'after-lookup=10'] });
      const r = await runRace({ ...base(m.mp, 12), variant: 'shift' });
      expect(r.errors).toEqual([]);
      expect(r.opCounts['insert+collapse']).toBeGreaterThan(0);
      expect(r.checkedBlocks).toBeGreaterThan(500);
      expect(r.violations).toEqual([]);
      expectCleanLog(m);
    });

    it('catches stale or foreign data without the invalidate_lock (negative control)', async () => {
      m = await mountFresh({ blockSize, capacity: '256M', mountArgs: ['--cache-size', '256K', '--unsafe-no-invalidate-lock', '--inject-delay', 'after-lookup=20'] });
      const r = await runRace({ ...base(m.mp, 13), durationMs: 30_000, stopOnFirst: true });
      expect(r.errors).toEqual([]);
      expect(r.violations.length).toBeGreaterThan(0);
      const v = r.violations[0];
      // The report names the offset, what was expected and whose block was read instead.
      expect(v.offset).toBe(v.block * blockSize);
      expect(v.actual).toMatch(/block \d+ of (the target file|other file \d+), generation \d+|zeros/);
      expect(v.expected).not.toBe(v.actual);
    });
  });
}

describe('race on another filesystem', () => {
  it('runs against tmpfs, skipping what tmpfs lacks, and stays clean', async () => {
    const dir = fs.mkdtempSync('/dev/shm/pagefs-race-');
    try {
      const r = await runRace({ ...base(dir, 14), durationMs: 3000 });
      expect(r.errors).toEqual([]);
      expect(r.skipped.join(' ')).toMatch(/zero \(EOPNOTSUPP\)/);
      expect(r.opCounts.punch).toBeGreaterThan(0);
      expect(r.violations).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
