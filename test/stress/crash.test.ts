/**
 * The crash-under-load checker (src/stress/crash.ts): its model on synthetic logs (what
 * is legal after a crash and what is not), a small campaign of SIGKILLs of the daemon
 * under a random workload on a real mount (no violation, fsck clean after every crash and
 * every unmount), and a negative control: a fsynced block corrupted in the store behind
 * the daemon's back is reported, with its file and offset.
 */
import { describe, it, expect, afterAll } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { testDirPrefix, makeStore, forceClear, mountFresh, pagefs, type Mounted } from '../helpers/mount.js';
import { runCrash, CrashModel, describeBytes, type CrashResult } from '../../src/stress/crash.js';
import { stampIdOf, type CrashLogLine } from '../../src/stress/crash-worker.js';
import { stampBlock } from '../../src/stress/stamp.js';

const BS = 4096;

/** Blocks of file slot 0: a generation per block (0 = zeros), cut to `size` bytes. */
function bytes(gens: number[], size = gens.length * BS): Buffer {
  const buf = Buffer.alloc(gens.length * BS);
  gens.forEach((g, b) => { if (g) stampBlock({ file: stampIdOf(0), block: b, gen: g }, BS, buf, b * BS); });
  return buf.subarray(0, size);
}

/** Replays `lines` on a fresh one-file model and checks `data` against it. */
function verdict(lines: CrashLogLine[], data: Buffer | null) {
  const model = new CrashModel(1, 16, BS);
  const { names } = model.replay(lines);
  return model.check(names, [data], 'test');
}

const opened: CrashLogLine[] = [{ n: 1, op: 'open', f: 0 }, { dirsynced: true, after: 1 }];

describe('crash model (synthetic logs)', () => {
  const lines: CrashLogLine[] = [
    ...opened,
    { n: 2, op: 'write', f: 0, b: 0, nb: 2, gen: 10 },
    { fsynced: 0, after: 2, data: false },
    { n: 3, op: 'write', f: 0, b: 1, nb: 1, gen: 11 },
    { n: 4, op: 'truncate', f: 0, size: 5000 },
  ];

  it('accepts the fsynced state and every state un-synced operations can leave', () => {
    expect(verdict(lines, bytes([10, 10])).bad).toEqual([]);
    expect(verdict(lines, bytes([10, 11])).bad).toEqual([]);
    expect(verdict(lines, bytes([10, 11], 5000)).bad).toEqual([]);
    // The write lost, the truncation kept.
    expect(verdict(lines, bytes([10, 10], 5000)).bad).toEqual([]);
  });

  it('reports fsynced data lost, a wrong size, foreign data and a missing file', () => {
    const lost = verdict(lines, bytes([0, 10])).bad;
    expect(lost).toHaveLength(1);
    expect(lost[0].mismatches).toEqual([expect.objectContaining({ kind: 'block', offset: 0, block: 0, actual: 'zeros' })]);
    expect(lost[0].mismatches[0].expected).toMatch(/block 0 of crash-f0, generation 10 \(fsync after op 2\)/);
    expect(lost[0].mismatches[0].history.join(' | ')).toMatch(/fsync after op 2/);

    const size = verdict(lines, bytes([10])).bad[0].mismatches;
    expect(size).toEqual([expect.objectContaining({ kind: 'size', size: 4096 })]);

    const foreign = bytes([10, 10]);
    stampBlock({ file: stampIdOf(2), block: 7, gen: 10 }, BS, foreign, BS);
    expect(verdict(lines, foreign).bad[0].mismatches[0]).toMatchObject({ kind: 'block', offset: BS, actual: 'block 7 of crash-f2, generation 10' });

    expect(verdict(lines, null).bad[0].mismatches[0]).toMatchObject({ kind: 'missing' });
  });

  it('takes a renamed-over file as certain only once the directory fsync returned', () => {
    const rename: CrashLogLine[] = [
      ...opened,
      { n: 2, op: 'write', f: 0, b: 0, nb: 1, gen: 10 },
      { fsynced: 0, after: 2, data: true },
      { n: 3, op: 'tmp', f: 0, gen: 20, nb: 2, size: 6000 },
      { tmpsynced: 0, after: 3 },
      { n: 4, op: 'rename', f: 0 },
    ];
    expect(verdict(rename, bytes([10])).bad).toEqual([]);
    expect(verdict(rename, bytes([20, 20], 6000)).bad).toEqual([]);
    // Not a mixture of the two files.
    expect(verdict(rename, bytes([10, 20], 6000)).bad).not.toEqual([]);
    const synced: CrashLogLine[] = [...rename, { dirsynced: true, after: 4 }];
    expect(verdict(synced, bytes([20, 20], 6000)).bad).toEqual([]);
    expect(verdict(synced, bytes([10])).bad).not.toEqual([]);
  });

  it('takes an unlinked and re-created name as certain only once the directory fsync returned', () => {
    const unlink: CrashLogLine[] = [
      ...opened,
      { n: 2, op: 'write', f: 0, b: 0, nb: 1, gen: 10 },
      { fsynced: 0, after: 2, data: false },
      { n: 3, op: 'unlink', f: 0 },
      { n: 4, op: 'create', f: 0 },
    ];
    expect(verdict(unlink, bytes([10])).bad).toEqual([]);
    expect(verdict(unlink, null).bad).toEqual([]);
    expect(verdict(unlink, Buffer.alloc(0)).bad).toEqual([]);
    const synced: CrashLogLine[] = [...unlink, { dirsynced: true, after: 4 }];
    expect(verdict(synced, bytes([10])).bad).not.toEqual([]);
    expect(verdict(synced, null).bad).not.toEqual([]);
  });

  it('names what a block holds', () => {
    expect(describeBytes(bytes([0]), BS)).toBe('zeros');
    expect(describeBytes(bytes([5]), BS)).toBe('block 0 of crash-f0, generation 5');
    const cut = bytes([5]);
    cut.fill(0, 100);
    expect(describeBytes(cut, BS)).toBe('block 0 of crash-f0, generation 5 in its first 100 bytes, zeros after');
    expect(describeBytes(Buffer.alloc(BS, 7), BS)).toBe('bytes that are no stamp');
  });
});

const dirs: string[] = [];
let mounted: Mounted | null = null;
afterAll(async () => {
  await mounted?.cleanup();
  for (const d of dirs) {
    await forceClear(path.join(d, 'mnt'));
    fs.rmSync(d, { recursive: true, force: true });
  }
}, 60_000);

async function freshStore(): Promise<{ store: string; mp: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), testDirPrefix()));
  dirs.push(dir);
  const store = await makeStore(dir, { capacity: '1G' });
  const mp = path.join(dir, 'mnt');
  fs.mkdirSync(mp);
  return { store, mp };
}

function clean(r: CrashResult): void {
  expect(r.errors).toEqual([]);
  expect(r.fsckProblems).toEqual([]);
  expect(r.daemonErrors).toEqual([]);
}

describe('crash under load (SIGKILL of the daemon)', () => {
  it('refuses a --store that is missing or not a store with one line, before any round', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), testDirPrefix() + 'crash-args-'));
    try {
      const missing = path.join(dir, 'none.db');
      const r = await pagefs(['stress', '--crash', '2', '--store', missing, dir]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(`pagefs stress --crash: ${missing}: no such store (create one with: pagefs mkfs ${missing})`);
      const notStore = path.join(dir, 'text.db');
      fs.writeFileSync(notStore, 'not a database\n'.repeat(100));
      const n = await pagefs(['stress', '--crash', '2', '--store', notStore, dir]);
      expect(n.code).toBe(1);
      expect(n.stderr.trim()).toMatch(new RegExp(`^pagefs stress --crash: ${notStore}: (not a pagefs store|cannot open: .*)$`));
      expect(n.stderr).not.toMatch(/internal error|at .*\.js:\d+/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('five kill points: fsynced data survives, fsck is clean after each crash and each unmount', async () => {
    const { store, mp } = await freshStore();
    const r = await runCrash({ store, mountpoint: mp, rounds: 5, seed: 5, files: 4, maxFileSize: 1 << 20, mountArgs: ['--debug-locks'] });
    clean(r);
    expect(r.violations, r.violations.map((v) => `round ${v.round} ${v.phase} ${v.file} ${v.kind} at ${v.offset}: expected ${v.expected}; actual ${v.actual}; history ${v.history.join(' | ')}`).join('\n')).toEqual([]);
    expect(r.rounds).toBe(5);
    expect(r.killDelays.every((d) => d >= 50 && d <= 1500)).toBe(true);
    expect(r.ops).toBeGreaterThan(100);
    expect(r.fsyncs).toBeGreaterThan(20);
    expect(r.opCounts.write).toBeGreaterThan(0);
    expect(r.opCounts.truncate).toBeGreaterThan(0);
    expect(r.opCounts.punch).toBeGreaterThan(0);
    expect((r.opCounts.rename ?? 0) + (r.opCounts.unlink ?? 0)).toBeGreaterThan(0);
    expect(r.checkedBlocks).toBeGreaterThan(100);
    expect(fs.readdirSync(mp)).toEqual([]);
  }, 240_000);

  it('reports a fsynced block corrupted in the store behind the daemon (negative control)', async () => {
    const { store, mp } = await freshStore();
    let corrupted = null as { file: string; offset: number } | null;
    const r = await runCrash({
      store, mountpoint: mp, rounds: 2, seed: 6, files: 4, maxFileSize: 1 << 20,
      afterRound: ({ round, files, blockSize }) => {
        if (round !== 1) return;
        // The store is unmounted and clean here: overwrite one written block of a checker file.
        const db = new Database(store);
        try {
          for (const name of files) {
            const ino = (db.prepare('SELECT ino FROM dentries WHERE parent = 1 AND name = ?').get(Buffer.from(name)) as { ino: number } | undefined)?.ino;
            if (ino === undefined) continue;
            const { size } = db.prepare('SELECT size FROM inodes WHERE ino = ?').get(ino) as { size: number };
            const row = db.prepare('SELECT fblock, pblock FROM bmap WHERE ino = ? AND (flags & 1) = 0 AND (fblock + 1) * ? <= ? ORDER BY fblock LIMIT 1')
              .get(ino, blockSize, size) as { fblock: number; pblock: number } | undefined;
            if (!row) continue;
            const bytes = stampBlock({ file: 77, block: row.fblock, gen: 4242 }, blockSize);
            expect(db.prepare('UPDATE data SET bytes = ? WHERE pblock = ?').run(bytes, row.pblock).changes).toBe(1);
            corrupted = { file: name, offset: row.fblock * blockSize };
            break;
          }
        } finally {
          db.close();
        }
        expect(corrupted).not.toBeNull();
      },
    });
    clean(r);
    expect(corrupted).not.toBeNull();
    const hit = r.violations.find((v) => v.file === corrupted!.file && v.offset === corrupted!.offset);
    expect(hit, JSON.stringify(r.violations, null, 1)).toMatchObject({ round: 2, phase: 'after-remount', kind: 'block', actual: `block ${corrupted!.offset / BS} of crash-f76, generation 4242` });
    expect(hit!.expected).toMatch(/read after the crash of round 1/);
    // Only that block, in that check (the crash checks have their own findings: see below).
    expect(r.violations.filter((v) => v.phase === 'after-remount')).toHaveLength(1);
  }, 120_000);
});

describe('crash under load: what the campaign found', () => {
  // Found by scripts/crash-campaign.mjs (a block of a file extended in the round after a
  // crash read back its bytes from before a truncation; runCrash now probes every such tail
  // right after the crash: violations of kind 'stale-tail'). ftruncate down into a block
  // commits the new size at once but leaves the zeroed tail of the new last block as a
  // dirty page; a crash before writeback leaves the old bytes under the new EOF in the
  // store, and growing the file again (ftruncate up, or a write further on) shows them.
  it('a truncation into a block, not yet written back, does not bring old bytes back past EOF after a crash', async () => {
    mounted = await mountFresh({ capacity: '256M' });
    const m = mounted;
    const p = path.join(m.mp, 'f');
    const fh = await fsp.open(p, 'w+');
    await fh.write(Buffer.alloc(8192, 0xaa), 0, 8192, 0);
    await fh.sync();
    await fh.truncate(5000);
    // The truncation is not fsynced: the file may be 8192 or 5000 bytes after the crash, but
    // whatever its size, growing it again must show zeros past its end.
    await m.kill();
    await fh.close().catch(() => undefined);
    await m.remount();
    const size = (await fsp.stat(p)).size;
    expect([5000, 8192]).toContain(size);
    await fsp.truncate(p, 12288);
    const d = await fsp.readFile(p);
    expect(d.subarray(0, 5000).every((b) => b === 0xaa)).toBe(true);
    const stale = d.subarray(size).filter((b) => b !== 0).length;
    expect(stale, `bytes past the EOF after the crash (${size}) that are not zeros once the file grew to 12288`).toBe(0);
    await m.unmount();
    const r = await runFsck(m.store);
    expect(r, r).toMatch(/: clean \(/);
  }, 120_000);
});

async function runFsck(store: string): Promise<string> {
  const r = await pagefs(['fsck', store], { timeoutMs: 120_000 });
  return r.stdout + r.stderr;
}
