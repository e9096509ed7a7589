/** Linux mount conventions: mount -t fuse.pagefs and an fstab line, through mount.fuse3. */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run, makeStore, forceClear, fuseMountAt, testDirPrefix, ROOT } from '../helpers/mount.js';

let dir = '';
afterEach(async () => {
  if (dir) {
    await forceClear(path.join(dir, 'mnt'));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('mount helper convention', () => {
  it('mount -t fuse.pagefs and an fstab line mount the store; umount(8) unmounts; data persists', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), testDirPrefix()));
    const store = await makeStore(dir, { capacity: '64M' });
    const mp = path.join(dir, 'mnt');
    fs.mkdirSync(mp);
    expect((await run('bash', [path.join(ROOT, 'scripts', 'install-helper.sh')])).code).toBe(0);

    const m1 = await run('mount', ['-t', 'fuse.pagefs', store, mp, '-o', 'cache_size=32M,noatime'], { timeoutMs: 30_000 });
    expect(m1.stderr).toBe('');
    expect(m1.code).toBe(0);
    expect(fuseMountAt(mp)).toBeDefined();
    const info = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.includes(` ${mp} `))!;
    expect(info).toMatch(/ - fuse\.pagefs /);
    await fs.promises.writeFile(path.join(mp, 'hello'), 'from mount -t\n');
    expect((await run('umount', [mp], { timeoutMs: 30_000 })).code).toBe(0);
    expect(fuseMountAt(mp)).toBeUndefined();
    // umount(8) returns before the daemon has finished writing back; until it exits the
    // store is still claimed, and a new mount is refused (retried below).

    const fstab = path.join(dir, 'fstab');
    fs.writeFileSync(fstab, `${store} ${mp} fuse.pagefs defaults,noauto,cache_size=16M 0 0\n`);
    let m2 = await run('mount', ['-T', fstab, mp], { timeoutMs: 30_000 });
    for (let i = 0; m2.code !== 0 && /already mounted by pagefs daemon/.test(m2.stderr) && i < 100; i++) {
      await new Promise((r) => setTimeout(r, 100));
      m2 = await run('mount', ['-T', fstab, mp], { timeoutMs: 30_000 });
    }
    expect(m2.stderr).toBe('');
    expect(m2.code).toBe(0);
    expect(await fs.promises.readFile(path.join(mp, 'hello'), 'utf8')).toBe('from mount -t\n');
    expect((await run('umount', [mp], { timeoutMs: 30_000 })).code).toBe(0);
  });
});
