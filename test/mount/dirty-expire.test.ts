/**
 * pagefs mount --dirty-expire: the daemon's periodic writeback (every 5 s) takes a
 * file's unsynced data only once it has been dirty that long, as the kernel's flusher
 * does with vm.dirty_expire_centisecs; until then only fsync, close, a full cache or the
 * unmount write it. Then it is in the store: a daemon killed afterwards loses nothing.
 */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { mountFresh, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { pagefsStat, eventually } from './lib.js';

let m: Mounted | null = null;
afterEach(async () => {
  await m?.cleanup();
  m = null;
});

const dirtyPages = async (mp: string): Promise<number> => (await pagefsStat(mp)).live.cache.dirtyPages;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('--dirty-expire', () => {
  it('unsynced data outlives a periodic writeback while younger than the expiry, reaches the store at a later one, and survives a kill of the daemon', async () => {
    m = await mountFresh({ capacity: '64M', mountArgs: ['--dirty-expire', '7'] });
    const f = path.join(m.mp, 'f');
    const data = Buffer.alloc(64 << 10, 0x5a);
    const fh = await fs.promises.open(f, 'w');
    try {
      await fh.write(data, 0, data.length, 0);
      const written = Date.now();
      expect(await dirtyPages(m.mp)).toBe(16);
      // The rounds come every 5 s from the mount, which was a moment before the write:
      // by now one has run, and found the data younger than 7 s.
      await sleep(5_500 - (Date.now() - written));
      expect(await dirtyPages(m.mp)).toBe(16);
      // The next round finds it older (10 s after the mount).
      expect(await eventually(async () => (await dirtyPages(m!.mp)) === 0, 12_000)).toBe(true);
      // (The daemon's clock started when the write's pages turned dirty, a moment before `written`.)
      expect(Date.now() - written).toBeGreaterThanOrEqual(6_900);
      // Killed with the file still open: no close wrote it back.
      await m.kill();
    } finally {
      await fh.close().catch(() => undefined);
    }
    await m.remount();
    expect((await fs.promises.readFile(f)).equals(data)).toBe(true);
    expectCleanLog(m);
  }, 60_000);
});
