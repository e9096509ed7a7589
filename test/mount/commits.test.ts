/**
 * One store transaction per request that changes metadata, counted by the daemon
 * (`pagefs stat`: commits): a punch, a zero range and a preallocation through the mount
 * each commit once, the blocks and the inode's size and times together. An rm of files
 * that hold no blocks commits once per name: their inode rows go later, together.
 */
import { describe, it, expect, afterEach } from 'vitest';
import path from 'node:path';
import { mountFresh, pagefs, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { ok, pagefsStat, pyOk, eventually } from './lib.js';
import { Sysd } from '../helpers/sysd.js';
import { FALLOC } from '../../src/sys/index.js';

let m: Mounted | null = null;
let sd: Sysd | null = null;
afterEach(async () => {
  await sd?.stop();
  sd = null;
  await m?.cleanup();
  m = null;
});

async function commits(mp: string): Promise<number> {
  const live = (await pagefsStat(mp)).live;
  expect(typeof live.commits).toBe('number');
  return live.commits;
}

describe('commits', () => {
  it('a punch, a zero range and a preallocation through the mount commit once each', async () => {
    m = await mountFresh({ capacity: '64M' });
    sd = new Sysd();
    const fd = await sd.call('open', path.join(m.mp, 'f'), 'w+');
    await sd.call('pwrite', fd, Buffer.alloc(256 << 10, 0x61).toString('base64'), 0);
    await sd.call('fsync', fd);
    const cases: [string, number, number, number][] = [
      ['punch', FALLOC.PUNCH_HOLE | FALLOC.KEEP_SIZE, 64 << 10, 4096],
      ['zero range', FALLOC.ZERO_RANGE, 128 << 10, 8192],
      ['preallocation', 0, 256 << 10, 64 << 10],
    ];
    for (const [what, mode, off, len] of cases) {
      const before = await commits(m.mp);
      await sd.call('fallocate', fd, mode, off, len);
      expect(await commits(m.mp) - before, what).toBe(1);
    }
    await sd.call('close', fd);
    const text = ok(await pagefs(['stat', m.mp], { timeoutMs: 30_000 }), 'pagefs stat');
    expect(text).toMatch(/^commits:\s+\d+ store transactions committed since the mount$/m);
    expectCleanLog(m);
  }, 60_000);

  it('an rm of empty files commits once per file; statfs counts them gone at once, and their rows are gone at unmount', async () => {
    m = await mountFresh({ capacity: '64M' });
    const dir = path.join(m.mp, 'd');
    const n = 100;
    const inodesUsed = async () => Number((await pyOk('import os, sys; s = os.statvfs(sys.argv[1]); print(s.f_files - s.f_ffree)', [m!.mp])).trim());
    const inMemory = async () => (await pagefsStat(m!.mp)).live.inodesInMemory as number;
    const base = await inMemory();
    await pyOk(`
import os, sys
os.mkdir(sys.argv[1])
for i in range(int(sys.argv[2])):
    os.close(os.open(os.path.join(sys.argv[1], 'f%03d' % i), os.O_CREAT | os.O_WRONLY, 0o644))
`, [dir, String(n)]);
    const used = await inodesUsed();
    const before = await commits(m.mp);
    await pyOk(`
import os, sys
for i in range(int(sys.argv[2])):
    os.unlink(os.path.join(sys.argv[1], 'f%03d' % i))
`, [dir, String(n)]);
    // Each unlinked inode leaves memory at its FORGET, which the kernel sends after the
    // unlink's reply: wait for all of them, so that whatever they commit is counted. The
    // count to wait for is the one before the files were made, plus the directory: the
    // kernel may forget some files before the rm (its inode cache shrinks under memory
    // pressure) and look them up again for it, so a count taken after the creates can
    // stay out of reach.
    expect(await eventually(async () => await inMemory() <= base + 1, 10_000), 'the kernel forgot the unlinked inodes').toBe(true);
    // One commit per unlink, and at most one more: the periodic reap may have run meanwhile.
    expect(await commits(m.mp) - before).toBeLessThanOrEqual(n + 1);
    expect(await inodesUsed()).toBe(used - n);
    await m.unmount();
    const r = await pagefs(['fsck', m.store], { timeoutMs: 60_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout, 'no orphan is left for the next mount').not.toMatch(/orphan/);
    expect((await pagefsStat(m.store)).inodes).toBe(2);
    expectCleanLog(m);
  }, 60_000);
});
