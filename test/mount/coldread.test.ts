/**
 * The cold-read path's choices: the kernel's readahead window for a pagefs mount, raised
 * from the bdi default of 128 KiB to the 1 MiB the daemon asks for (src/fuse/readahead.ts),
 * so that a cold sequential read reaches the daemon in 1 MiB READs, not 128 KiB ones (tests
 * run as root, who may write sysfs); which block reads go to the reader threads
 * (src/store/readers.ts): small ones are read on the daemon's main thread, large ones not;
 * and the fills' block-map cache (src/store/mapcache.ts): one query per group of 64 blocks.
 */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import { mountFresh, sh, pagefs, expectCleanLog, type Mounted } from '../helpers/mount.js';
import path from 'node:path';
import { mountDevice } from '../../src/fuse/readahead.js';
import { defaultReaderThreads } from '../../src/store/readers.js';
import { pagefsStat, pyOk, ok } from './lib.js';

let m: Mounted | null = null;
afterEach(async () => {
  await m?.cleanup();
  m = null;
});

describe('readahead window', () => {
  it('is 1024 KiB on a fresh mount', async () => {
    m = await mountFresh({ capacity: '64M' });
    const dev = mountDevice(fs.readFileSync('/proc/self/mountinfo', 'utf8'), m.mp);
    expect(dev).toMatch(/^\d+:\d+$/);
    expect(fs.readFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, 'utf8').trim()).toBe('1024');
    expectCleanLog(m);
  });

  it('finds the mount device in mountinfo, with escaped paths, the topmost mount winning', () => {
    const info = [
      '36 25 0:32 / /tmp/a\\040b rw,relatime shared:1 - fuse.pagefs /s.db rw,user_id=0',
      '37 25 0:33 / /tmp/other rw - tmpfs tmpfs rw',
      '38 36 0:34 / /tmp/a\\040b rw - fuse.pagefs /t.db rw',
    ].join('\n');
    expect(mountDevice(info, '/tmp/a b')).toBe('0:34');
    expect(mountDevice(info, '/tmp/other')).toBeNull();
    expect(mountDevice(info, '/tmp/none')).toBeNull();
  });
});

describe('block reads', () => {
  async function readers(mp: string): Promise<{ threads: number; reads: number; syncReads: number; stagedReads: number; idleBays: number }> {
    return (await pagefsStat(mp)).live.readers;
  }

  it('a cold 4 KiB read is read on the main thread; a cold sequential read goes to the reader threads', async () => {
    m = await mountFresh({ capacity: '64M' });
    const f = path.join(m.mp, 'f');
    expect((await sh(`head -c 4194304 /dev/urandom > ${f}`)).code).toBe(0);
    await m.unmount();
    await m.remount();
    expect((await sh(`dd if=${f} of=/dev/null bs=4k count=1 skip=500 status=none`)).code).toBe(0);
    const one = await readers(m.mp);
    expect(one).toMatchObject({ reads: 0, syncReads: 1 });
    expect((await sh(`cat ${f} > /dev/null`)).code).toBe(0);
    const all = await readers(m.mp);
    expect(all.reads).toBeGreaterThan(0);
    // Through the threads' staging bays, every one given back once its fill was inserted.
    expect(all.stagedReads).toBeGreaterThan(0);
    expect(all.idleBays).toBe(all.threads * 4);
    expectCleanLog(m);
  });

  it('cold 4 KiB reads of one group of 64 blocks look up the block map once, and read the right blocks', async () => {
    m = await mountFresh({ capacity: '64M' });
    const f = path.join(m.mp, 'f');
    // 256 blocks, each stamped with its number.
    await pyOk(`
import sys
with open(sys.argv[1], 'wb') as f:
    for b in range(256): f.write(b.to_bytes(4, 'little') * 1024)
`, [f]);
    await m.unmount();
    await m.remount();
    // Blocks 128-191 (the third group) in a scattered order, each read alone: no readahead.
    const out = await pyOk(`
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
bad = [b for b in (128 + (k * 37) % 64 for k in range(64)) if os.pread(fd, 4096, b * 4096) != b.to_bytes(4, 'little') * 1024]
print(len(bad))
`, [f]);
    expect(out.trim()).toBe('0');
    const live = (await pagefsStat(m.mp)).live;
    expect(live.readers.syncReads).toBe(64);
    expect(live.mapCache).toMatchObject({ groups: 1, loads: 1, hits: 63, bypasses: 0 });
    expect(ok(await pagefs(['stat', m.mp], { timeoutMs: 30_000 }), 'pagefs stat')).toMatch(
      /^block map:\s+groups of 64 blocks cached for reads: 1; groups found cached by lookups: 63; groups loaded from the store: 1; lookups not cached: 0;/m);
    expectCleanLog(m);
  });

  it('one reader thread on two CPUs or fewer, two on more, unless --read-threads says', async () => {
    expect([1, 2, 3, 4, 64].map((n) => defaultReaderThreads(n))).toEqual([1, 1, 2, 2, 2]);
    m = await mountFresh({ capacity: '64M' });
    expect((await readers(m.mp)).threads).toBe(defaultReaderThreads());
    await m.cleanup();
    m = await mountFresh({ capacity: '64M', mountArgs: ['--read-threads', '3'] });
    expect((await readers(m.mp)).threads).toBe(3);
    expectCleanLog(m);
  });
});
