/**
 * One 1 GiB file of random bytes: written with dd, read back with the same sha256 through
 * the daemon (kernel cache dropped) and after unmount and mount; df shows the GiB used and,
 * after rm, freed again. The only slow test.
 */
import { describe, it, expect, afterAll } from 'vitest';
import path from 'node:path';
import fsp from 'node:fs/promises';
import { mountFresh, pagefs, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { shOk, q, sha256, dropCaches, statfs, eventually, expectNoMountUnder } from './lib.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
let m: Mounted | undefined;
let src: string | undefined;

afterAll(async () => {
  if (src) await fsp.rm(src, { force: true });
  if (m) {
    if (process.env.PAGEFS_TEST_LOG) await fsp.writeFile(process.env.PAGEFS_TEST_LOG, `${m.log()}[daemon exit ${m.proc.exitCode} ${m.proc.signalCode}]\n`, { flag: 'a' });
    await m.cleanup();
    await expectNoMountUnder(m.dir);
  }
}, 120_000);

describe('a 1 GiB file', () => {
  it('reads back with the same sha256 (through the daemon and after remount); df shows 1 GiB used, then freed by rm', async () => {
    m = await mountFresh({ capacity: '2G' });
    const mnt = m.mp;
    // The source lives on tmpfs so that its reads cost nothing.
    src = path.join('/dev/shm', `pagefs-bigfile-${path.basename(m.dir)}`);
    await shOk(`head -c ${GiB} /dev/urandom > ${q(src)}`, { timeoutMs: 120_000 });
    const want = await sha256(src);
    const base = await statfs(mnt);
    expect(base.bsize).toBe(4096);
    expect(base.blocks * base.bsize).toBe(2 * GiB);

    const big = path.join(mnt, 'big');
    await shOk(`dd if=${q(src)} of=${q(big)} bs=1M count=1024 iflag=fullblock status=none`, { timeoutMs: 240_000 });
    expect((await shOk(`stat -c '%s %b' ${q(big)}`)).trim()).toBe(`${GiB} ${GiB / 512}`);
    const full = await statfs(mnt);
    const used = full.usedBytes - base.usedBytes;
    expect(used, `df: ${used} bytes more in use after writing 1 GiB`).toBeGreaterThanOrEqual(GiB);
    expect(used).toBeLessThanOrEqual(GiB + 4 * MiB);
    // The df(1) view of the same numbers.
    const dfUsedKiB = Number((await shOk(`df -k --output=used ${q(mnt)} | tail -1`)).trim());
    expect(dfUsedKiB * 1024).toBeGreaterThanOrEqual(GiB);
    expect(dfUsedKiB * 1024).toBeLessThanOrEqual(GiB + 8 * MiB);

    // Kernel cache dropped: the bytes come from the daemon (its cache holds at most a quarter).
    await dropCaches();
    expect(await sha256(big, 240_000)).toBe(want);

    await m.unmount();
    const f = await pagefs(['fsck', m.store], { timeoutMs: 120_000 });
    expect(f.code, f.stdout + f.stderr).toBe(0);
    expect(f.stdout).toMatch(new RegExp(`clean \\(2 inodes, ${GiB / 4096} blocks used`));
    await m.remount();
    expect(await sha256(big, 240_000)).toBe(want);
    expect((await statfs(mnt)).usedBytes - base.usedBytes).toBeGreaterThanOrEqual(GiB);

    await shOk(`rm ${q(big)}`, { timeoutMs: 120_000 });
    let after = full;
    const freed = await eventually(async () => {
      after = await statfs(mnt);
      return after.usedBytes <= base.usedBytes;
    }, 30_000, 200);
    expect(freed, `used before ${base.usedBytes}, with the file ${full.usedBytes}, after rm ${after.usedBytes}`).toBe(true);
    await m.unmount();
    const f2 = await pagefs(['fsck', m.store], { timeoutMs: 120_000 });
    expect(f2.code, f2.stdout + f2.stderr).toBe(0);
    expect(f2.stdout).toMatch(/clean \(1 inodes, 0 blocks used/);
    expectCleanLog(m);
  }, 300_000);
});
