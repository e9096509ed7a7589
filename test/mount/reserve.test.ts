/**
 * A write reserves a block for every block it cannot overwrite in place, so that ENOSPC
 * goes to the writer and writeback never runs out of space (src/cache/write.ts). The
 * daemon remembers which blocks a file owns (BlockTable.ownedBlocks) instead of asking
 * the store at each write; these cases make a block the file wrote and wrote back (so it
 * was known as its own) stop being its own, fill the store, and write it again: the
 * write must fail with ENOSPC, the file keep its bytes, and fsync succeed. A daemon
 * that still believed the block its own would take the write and fail at writeback.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { mountFresh, type Mounted } from '../helpers/mount.js';
import { Sysd } from '../helpers/sysd.js';
import { FALLOC } from '../../src/sys/index.js';
import { PAGEFS_IOC_COLLAPSE_RANGE, encodeRange } from '../../src/vfs/shift.js';
import { finish } from './lib.js';

const BS = 4096;
const block = (byte: number) => Buffer.alloc(BS, byte).toString('base64');

describe('ENOSPC: a write over a block the file no longer owns reserves one', () => {
  let m: Mounted;
  let sd: Sysd;
  let fillers = 0;
  beforeAll(async () => {
    m = await mountFresh({ capacity: '2M' });
    sd = new Sysd();
  });
  afterAll(async () => {
    await sd?.stop();
    try {
      if (m) await finish(m);
    } finally {
      await m?.cleanup();
    }
  });

  const p = (name: string) => path.join(m.mp, name);

  /**
   * A file of `n` blocks, block i all bytes `byte + i`, written back (fsync) and
   * overwritten once more (so the daemon has seen every block as the file's own), after
   * the fillers of the case before are removed.
   */
  async function ownedFile(name: string, n: number, byte: number): Promise<number> {
    for (; fillers > 0; fillers--) await fsp.unlink(p(`fill${fillers - 1}`));
    const fd = await sd.call('open', p(name), 'w+');
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < n; i++) await sd.call('pwrite', fd, block(byte + i), i * BS);
      await sd.call('fsync', fd);
    }
    return fd;
  }

  /** Writes blocks into a new file until ENOSPC; the store is then full (nothing reserved is left either). */
  async function fillUp(): Promise<number> {
    const fd = await sd.call('open', p(`fill${fillers++}`), 'w+');
    let n = 0;
    for (;;) {
      const r = await sd.outcome('pwrite', fd, block(0xee), n * BS);
      if (r !== 'OK') {
        expect(r).toBe('ENOSPC');
        break;
      }
      n++;
    }
    await sd.call('fsync', fd);
    await sd.call('close', fd);
    expect((await sd.call('statfs', m.mp)).bfree).toBe(0);
    return n;
  }

  async function expectBlocks(fd: number, n: number, byte: (i: number) => number, what: string): Promise<void> {
    const got = Buffer.from(await sd.call('pread', fd, n * BS, 0), 'base64');
    for (let i = 0; i < n; i++) expect(got[i * BS], `${what}: block ${i}`).toBe(byte(i));
  }

  it('after copy_file_range shares them: ENOSPC on the source and on the copy, both keep their bytes', async () => {
    const a = await ownedFile('a', 8, 0x10);
    const b = await sd.call('open', p('b'), 'w+');
    expect(await sd.call('copyFileRange', a, 0, b, 0, 8 * BS, 0)).toBe(8 * BS);
    await sd.call('fsync', b);
    await fillUp();
    expect(await sd.outcome('pwrite', a, block(0x99), 0)).toBe('ENOSPC');
    expect(await sd.outcome('pwrite', b, block(0x99), 3 * BS)).toBe('ENOSPC');
    await sd.call('fsync', a);
    await sd.call('fsync', b);
    await expectBlocks(a, 8, (i) => 0x10 + i, 'a');
    await expectBlocks(b, 8, (i) => 0x10 + i, 'b');
    await sd.call('close', a);
    await sd.call('close', b);
  }, 120_000);

  it('after a punch, once another file took the freed block: ENOSPC in the hole, which stays a hole', async () => {
    const c = await ownedFile('c', 8, 0x30);
    await fillUp();
    await sd.call('fallocate', c, FALLOC.PUNCH_HOLE | FALLOC.KEEP_SIZE, 2 * BS, BS);
    expect(await fillUp()).toBe(1);
    expect(await sd.outcome('pwrite', c, block(0x99), 2 * BS)).toBe('ENOSPC');
    await sd.call('fsync', c);
    await expectBlocks(c, 8, (i) => (i === 2 ? 0 : 0x30 + i), 'c');
    await sd.call('close', c);
  }, 120_000);

  it('after a collapse moved its blocks down: ENOSPC where they were, and in the hole moved to the start', async () => {
    // Blocks 0-3 and 8-11 written, 4-7 a hole; collapsing the first four moves the hole
    // to 0-3 and the blocks at 8-11 to 4-7, past which the file now ends.
    const d = await ownedFile('d', 4, 0x50);
    for (let i = 8; i < 12; i++) await sd.call('pwrite', d, block(0x50 + i), i * BS);
    await sd.call('fsync', d);
    // FUSE passes no COLLAPSE_RANGE: pagefs takes it as an ioctl (pagefs collapse), and
    // the kernel learns the lower size from the stat that follows.
    await sd.call('ioctl', d, PAGEFS_IOC_COLLAPSE_RANGE, encodeRange(0, 4 * BS).toString('hex'));
    expect((await sd.call('fstat', d)).size).toBe(8 * BS);
    await fillUp();
    expect(await sd.outcome('pwrite', d, block(0x99), 8 * BS)).toBe('ENOSPC');
    expect(await sd.outcome('pwrite', d, block(0x99), 0)).toBe('ENOSPC');
    await sd.call('fsync', d);
    expect((await sd.call('fstat', d)).size).toBe(8 * BS);
    await expectBlocks(d, 8, (i) => (i < 4 ? 0 : 0x50 + i + 4), 'd');
    await sd.call('close', d);
  }, 120_000);
});
