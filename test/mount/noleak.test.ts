/**
 * No data leak between files: space newly given to a file (extending writes, truncate
 * up, fallocate, zero range, insert range) reads as zeros even when it reuses blocks that
 * held another file's bytes. The store is filled with a recognisable pattern first, then
 * emptied, so every later allocation reuses a block that held the pattern.
 */
import { describe, it, expect, afterAll } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { mountFresh, run, pagefs, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { sys, FALLOC } from '../../src/sys/index.js';
import { PAGEFS_IOC_INSERT_RANGE, encodeRange } from '../../src/vfs/shift.js';

let m: Mounted;
afterAll(async () => { await m?.cleanup(); });

const PATTERN = 0xab;

function leaks(buf: Buffer, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) if (buf[i] === PATTERN) n++;
  return n;
}

describe('no data leak between files', () => {
  it('newly allocated space reads as zeros after the store held another file\'s pattern everywhere', async () => {
    m = await mountFresh({ capacity: '16M', blockSize: 1024 });
    // Fill every block with the pattern, make sure it is in the store, then free it all.
    const filler = path.join(m.mp, 'filler');
    const fh = await fs.promises.open(filler, 'w');
    const chunk = Buffer.alloc(1 << 20, PATTERN);
    for (;;) {
      try {
        await fh.write(chunk);
        await fh.sync();
      } catch (e) {
        expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
        break;
      }
    }
    await fh.close();
    await fs.promises.unlink(filler);
    await run('bash', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);

    const f = path.join(m.mp, 'victim');
    const fd = fs.openSync(f, 'w+');
    try {
      // An extending write that starts in the middle of a block, far past EOF.
      fs.writeSync(fd, Buffer.from('head'), 0, 4, 0);
      fs.writeSync(fd, Buffer.from('tail'), 0, 4, 100_000 + 333);
      // Truncate up, fallocate (both modes), zero range, insert range.
      fs.ftruncateSync(fd, 300_000);
      sys().fallocate(fd, 0, 300_000, 200_000);
      sys().fallocate(fd, FALLOC.KEEP_SIZE, 500_000, 100_000);
      sys().fallocate(fd, FALLOC.ZERO_RANGE, 50_000, 30_000);
      sys().ioctl(fd, PAGEFS_IOC_INSERT_RANGE, encodeRange(20_480, 40_960));
      fs.writeSync(fd, Buffer.from('x'), 0, 1, 700_000);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    const check = async (when: string) => {
      const data = await fs.promises.readFile(f);
      expect(data.length).toBe(700_001);
      expect(leaks(data, 0, data.length), `pattern bytes in the file ${when}`).toBe(0);
      expect(data.subarray(0, 4).toString()).toBe('head');
      // Read again with O_DIRECT, so the daemon (not the kernel's cache) answers.
      const dfd = sys().openDirect(f, fs.constants.O_RDONLY);
      try {
        const direct = sys().preadDirect(dfd, 700_416, 0);
        expect(leaks(direct, 0, 700_001), `pattern bytes read with O_DIRECT ${when}`).toBe(0);
      } finally {
        fs.closeSync(dfd);
      }
    };
    await check('before remount');
    await m.unmount();
    await m.remount();
    await check('after remount');
    expectCleanLog(m);
    await m.unmount();
    expect((await pagefs(['fsck', m.store])).code).toBe(0);
  });
});
