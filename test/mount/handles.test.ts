/** File handles (name_to_handle_at / open_by_handle_at): after the kernel drops its caches, after a remount, and ESTALE once deleted. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { mountFresh, run, expectCleanLog, type Mounted } from '../helpers/mount.js';

let m: Mounted;
beforeAll(async () => { m = await mountFresh({ capacity: '64M' }); });
afterAll(async () => { await m?.cleanup(); });

const PY = `
import os, ctypes, sys, json
libc = ctypes.CDLL(None, use_errno=True)
class FH(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int), ("f_handle", ctypes.c_ubyte * 128)]
cmd = sys.argv[1]
if cmd == 'get':
    h = FH(); h.handle_bytes = 128; mnt = ctypes.c_int()
    r = libc.name_to_handle_at(-100, sys.argv[2].encode(), ctypes.byref(h), ctypes.byref(mnt), 0)
    print(json.dumps({'r': r, 'errno': ctypes.get_errno(), 'handle': bytes(h).hex()}))
else:
    h = FH.from_buffer_copy(bytes.fromhex(sys.argv[3]))
    mfd = os.open(sys.argv[2], os.O_RDONLY)
    fd = libc.open_by_handle_at(mfd, ctypes.byref(h), os.O_RDONLY)
    if fd < 0:
        print(json.dumps({'error': os.strerror(ctypes.get_errno()), 'errno': ctypes.get_errno()}))
    else:
        import stat
        isdir = stat.S_ISDIR(os.fstat(fd).st_mode)
        print(json.dumps({'data': '' if isdir else os.read(fd, 100).decode('latin1'), 'dir': isdir}))
`;

async function py(...args: string[]): Promise<any> {
  const script = path.join(m.dir, 'fh.py');
  fs.writeFileSync(script, PY);
  const r = await run('/usr/bin/python3', [script, ...args], { timeoutMs: 30_000 });
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout);
}

const dropCaches = () => run('bash', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);

describe('file handles', () => {
  it('open_by_handle_at finds files and directories after the caches are dropped and after a remount', async () => {
    await fs.promises.mkdir(path.join(m.mp, 'd'));
    await fs.promises.writeFile(path.join(m.mp, 'd', 'f'), 'handle me');
    const hf = await py('get', path.join(m.mp, 'd', 'f'));
    const hd = await py('get', path.join(m.mp, 'd'));
    expect(hf.r).toBe(0);
    expect(hd.r).toBe(0);
    await dropCaches();
    expect(await py('open', m.mp, hf.handle)).toEqual({ data: 'handle me', dir: false });
    expect((await py('open', m.mp, hd.handle)).dir).toBe(true);
    await m.unmount();
    await m.remount();
    expect(await py('open', m.mp, hf.handle)).toEqual({ data: 'handle me', dir: false });
    // Deleted: the handle is stale, also once the kernel has forgotten the inode.
    await fs.promises.unlink(path.join(m.mp, 'd', 'f'));
    await dropCaches();
    expect((await py('open', m.mp, hf.handle)).errno).toBe(116); // ESTALE
    expectCleanLog(m);
  });

  it('an empty file and a directory are stale at once when deleted, while their rows wait for the batch that removes them', async () => {
    // Their rows outlive the FORGET by up to a writeback interval (Vfs.reapOrphans): a
    // handle must not bring them back meanwhile, as ext4 gives ESTALE at once.
    await fs.promises.writeFile(path.join(m.mp, 'empty'), '');
    await fs.promises.mkdir(path.join(m.mp, 'gone'));
    const he = await py('get', path.join(m.mp, 'empty'));
    const hg = await py('get', path.join(m.mp, 'gone'));
    expect(he.r).toBe(0);
    expect(hg.r).toBe(0);
    await fs.promises.unlink(path.join(m.mp, 'empty'));
    await fs.promises.rmdir(path.join(m.mp, 'gone'));
    await dropCaches();
    expect((await py('open', m.mp, he.handle)).errno).toBe(116); // ESTALE
    expect((await py('open', m.mp, hg.handle)).errno).toBe(116);
    expectCleanLog(m);
  });
});
