/**
 * The requests common system calls cost through the mount, counted by the daemon
 * (`pagefs stat --json`, live.requests):
 * - opens answer FOPEN_NOFLUSH (src/fuse/ops.ts), so a close costs no FLUSH round trip,
 *   and nothing that a close used to push out is lost: pages dirtied through mmap reach
 *   the store at unmount, as on ext4, where close writes back nothing either;
 * - entries stay valid for an hour (ENTRY_TIMEOUT_S, src/fuse/daemon.ts), so a name the
 *   kernel walked a few seconds ago is not looked up again.
 */
import { describe, it, expect, afterEach } from 'vitest';
import path from 'node:path';
import { mountFresh, type Mounted } from '../helpers/mount.js';
import { pyOk, eventually, pagefsStat } from './lib.js';
import { Sysd } from '../helpers/sysd.js';

let m: Mounted | undefined;
let sd: Sysd | undefined;
afterEach(async () => {
  await sd?.stop();
  sd = undefined;
  await m?.cleanup();
  m = undefined;
});

async function requests(mp: string): Promise<Record<string, number>> {
  return (await pagefsStat(mp)).live.requests;
}

describe('requests per system call', () => {
  it('close sends no FLUSH: creates, writes, reads and closes count only their own requests', async () => {
    m = await mountFresh({ capacity: '64M' });
    await pyOk(`
import os, sys
d = sys.argv[1]
for i in range(10):
    fd = os.open(os.path.join(d, 'f%d' % i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, b'x' * 5000)
    os.close(fd)
for i in range(10):
    fd = os.open(os.path.join(d, 'f%d' % i), os.O_RDONLY)
    assert os.read(fd, 10000) == b'x' * 5000
    os.close(fd)
`, [m.mp]);
    // RELEASE is sent after close(2) returns: wait until the daemon has read all twenty.
    let reqs: Record<string, number> = {};
    await eventually(async () => (reqs = await requests(m!.mp)).release === 20, 10_000);
    expect(reqs.release).toBe(20);
    expect(reqs.create).toBe(10);
    expect(reqs.open).toBe(10);
    expect(reqs.flush).toBeUndefined();
  });

  it('a name looked up seconds ago is not looked up again: open, wait past the attribute timeout, unlink', async () => {
    m = await mountFresh({ capacity: '64M' });
    sd = new Sysd();
    await pyOk(`
import os, sys
for i in range(20):
    os.close(os.open(os.path.join(sys.argv[1], 'n%d' % i), os.O_CREAT | os.O_WRONLY, 0o644))
`, [m.mp]);
    // A remount starts from an empty dcache: the stats below are the only lookups.
    await m.unmount();
    await m.remount();
    // Held open, so that another test's drop_caches meanwhile cannot evict the dentries
    // (that would cost lookups this test does not measure); an expired entry of an open
    // file is still looked up again on the next path walk.
    const fds: number[] = [];
    for (let i = 0; i < 20; i++) fds.push(await sd.call('open', path.join(m.mp, `n${i}`), 'r'));
    const before = await requests(m.mp);
    expect(before.lookup).toBe(20);
    await new Promise((r) => setTimeout(r, 1500)); // past the 1 s attribute timeout
    await pyOk(`
import os, sys
for i in range(20):
    os.unlink(os.path.join(sys.argv[1], 'n%d' % i))
assert os.listdir(sys.argv[1]) == []
`, [m.mp]);
    const after = await requests(m.mp);
    expect(after.unlink).toBe(20);
    expect(after.lookup ?? 0).toBe(before.lookup);
    for (const fd of fds) await sd.call('close', fd);
  });

  it('pages written through mmap and closed without msync reach the store at unmount', async () => {
    m = await mountFresh({ capacity: '64M' });
    const f = path.join(m.mp, 'mapped');
    await pyOk(`
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o644)
os.ftruncate(fd, 3 * 4096)
mm = mmap.mmap(fd, 3 * 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
for i in range(3):
    mm[i * 4096:(i + 1) * 4096] = bytes([0x41 + i]) * 4096
mm.close()
os.close(fd)
`, [f]);
    const check = `
import sys
with open(sys.argv[1], 'rb') as fh:
    data = fh.read()
assert data == b'A' * 4096 + b'B' * 4096 + b'C' * 4096, data[:16]
`;
    // Another process sees the kernel's pages at once; the store has them after unmount.
    await pyOk(check, [f]);
    await m.unmount();
    await m.remount();
    await pyOk(check, [f]);
    expect((await requests(m.mp)).flush).toBeUndefined();
  });
});
