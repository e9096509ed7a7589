/** The store's own filesystem fills up: the writer gets ENOSPC, nothing else breaks, and service resumes after deleting. */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mountFresh, makeStore, run, pagefs, expectCleanLog, testDirPrefix, type Mounted } from '../helpers/mount.js';

let m: Mounted | null = null;
let small = '';
afterEach(async () => {
  await m?.cleanup();
  m = null;
  if (small) {
    await run('umount', ['-l', small]);
    fs.rmSync(path.dirname(small), { recursive: true, force: true });
    small = '';
  }
});

describe('store faults', () => {
  it('a full store filesystem gives ENOSPC to fsync, keeps the daemon serving, and writes work again after deleting', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), testDirPrefix() + 'small-'));
    small = path.join(dir, 'fs');
    fs.mkdirSync(small);
    expect((await run('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', small])).code).toBe(0);
    // The store may hold 1 GiB of blocks, but its filesystem holds 24 MiB.
    const store = await makeStore(small, { capacity: '1G' });
    m = await mountFresh({ store });
    const big = path.join(m.mp, 'big');
    const dd = await run('dd', ['if=/dev/urandom', `of=${big}`, 'bs=1M', 'count=64', 'conv=fsync', 'status=none'], { timeoutMs: 60_000 });
    expect(dd.code).not.toBe(0);
    expect(dd.stderr).toMatch(/No space left on device/);
    // The daemon still answers, and after deleting, new data is stored and read back.
    await fs.promises.unlink(big);
    const data = Buffer.alloc(2 << 20, 7);
    const fh = await fs.promises.open(path.join(m.mp, 'small'), 'w');
    await fh.write(data);
    await fh.sync();
    await fh.close();
    expect((await fs.promises.readFile(path.join(m.mp, 'small'))).equals(data)).toBe(true);
    expect(m.log()).toMatch(/the store's filesystem is full/);
    expectCleanLog(m);
    await m.unmount();
    const f = await pagefs(['fsck', store]);
    expect(f.stdout).toMatch(/clean/);
    expect(f.stdout).not.toMatch(/orphan/);
    expect(f.code).toBe(0);
  });
});
