/**
 * One store transaction per request that changes metadata, counted by the daemon
 * (`pagefs stat`: commits): a punch, a zero range and a preallocation through the mount
 * each commit once, the blocks and the inode's size and times together.
 */
import { describe, it, expect, afterEach } from 'vitest';
import path from 'node:path';
import { mountFresh, pagefs, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { ok, pagefsStat } from './lib.js';
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
});
