/**
 * Checkpoints through the mount (src/store/checkpointer.ts): while a file is streamed the
 * checkpoint thread runs and the WAL does not grow with the file; and an unmounted store
 * is one file again, which alone holds everything written (the WAL and its index are gone).
 */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { mountFresh, expectCleanLog, pagefs, type Mounted } from '../helpers/mount.js';
import { shOk, pagefsStat, sha256, dropCaches, q, ok, expectNoMountUnder } from './lib.js';

const MiB = 1 << 20;
const mounts: Mounted[] = [];

afterEach(async () => {
  // The last first: a mount of a copy of the first store has its store in the first one's directory.
  for (const m of mounts.splice(0).reverse()) {
    await m.cleanup();
    await expectNoMountUnder(m.dir);
  }
}, 120_000);

async function mount(store?: string): Promise<Mounted> {
  const m = await mountFresh(store ? { store } : {});
  mounts.push(m);
  return m;
}

describe('checkpoints', () => {
  it('a streamed file: checkpoints run on the checkpoint thread and none fails, the WAL stays smaller than the file, the file reads back after a remount', async () => {
    const m = await mount();
    const f = path.join(m.mp, 'stream.bin');
    await shOk(`dd if=/dev/urandom of=${q(f)} bs=1M count=256 conv=fsync status=none`, { timeoutMs: 120_000 });
    const live = (await pagefsStat(m.mp)).live;
    expect(live.checkpoints.running).toBe(true);
    expect(live.checkpoints.checkpoints).toBeGreaterThan(0);
    expect(live.checkpoints.failures).toBe(0);
    // 256 MiB of 4 KiB blocks is about 370 MiB of 16 KiB WAL frames (three blocks a page)
    // when nothing restarts the WAL. Restarted, it holds about the backstop's 4,096 frames
    // (64 MiB) and a write-behind transaction or two (32 MiB of the file each, 64 while
    // one waited for a checkpoint: 45 or 90 MiB of frames); the file's size bounds that.
    // (That the thread, not the writer, copies is test/store/checkpointer.test.ts's.)
    const wal = fs.statSync(`${m.store}-wal`).size;
    expect(wal, `WAL of ${(wal / MiB).toFixed(1)} MiB`).toBeLessThan(256 * MiB);
    const sum = await sha256(f);
    await dropCaches();
    await m.unmount();
    await m.remount();
    expect(await sha256(f)).toBe(sum);
    expectCleanLog(m);
  }, 240_000);

  it('an unmounted store is one file: copied alone, it mounts with everything written', async () => {
    const m = await mount();
    await shOk(`cd ${q(m.mp)} && dd if=/dev/urandom of=big bs=1M count=48 status=none && mkdir d && for i in $(seq 1 50); do echo "file $i" > d/f$i; done && ln -s d/f7 link`, { timeoutMs: 120_000 });
    const big = await sha256(path.join(m.mp, 'big'));
    await m.unmount();
    expect(fs.existsSync(`${m.store}-wal`), 'the WAL is left beside the unmounted store').toBe(false);
    expect(fs.existsSync(`${m.store}-shm`)).toBe(false);
    expectCleanLog(m);
    // The store file alone, somewhere else.
    const copy = path.join(m.dir, 'copy.db');
    fs.copyFileSync(m.store, copy);
    const fsck = await pagefs(['fsck', copy], { timeoutMs: 120_000 });
    expect(ok(fsck, 'pagefs fsck of the copy')).toMatch(/: clean \(/);
    const c = await mount(copy);
    expect(await sha256(path.join(c.mp, 'big'))).toBe(big);
    expect(await shOk(`cat ${q(path.join(c.mp, 'd', 'f50'))} && readlink ${q(path.join(c.mp, 'link'))}`)).toBe('file 50\nd/f7\n');
  }, 240_000);
});
