/**
 * statx birth time, pagefs next to ext4. The kernel asks for it only with FUSE_STATX
 * (fs/fuse/dir.c fuse_update_get_attr, when STATX_BTIME is requested), which libfuse
 * 3.14 does not know: native-shim/src/statx.c reads that request before libfuse does
 * and pagefs answers it from the inode's btime. Without that, libfuse would answer
 * ENOSYS and the kernel would never ask again (fc->no_statx).
 */
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { run, expectCleanLog } from '../helpers/mount.js';
import { pagefsAndExt4 } from '../helpers/ext4.js';
import { ok } from './lib.js';

const PY = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const STATX_BTIME = 0x800;

/** statx(2) through ctypes: stx_mask and stx_btime of a path, once cached and once with AT_STATX_FORCE_SYNC. */
const STATX = String.raw`
import ctypes, json, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
out = []
for flags in (0, 0x2000):
    buf = ctypes.create_string_buffer(256)
    if libc.statx(-100, sys.argv[1].encode(), flags, 0x7ff | 0x800, buf) != 0:
        raise OSError(ctypes.get_errno(), sys.argv[1])
    sec, nsec = struct.unpack_from('qI', buf.raw, 80)
    out.append({'btime': (struct.unpack_from('I', buf.raw, 0)[0] & 0x800) and sec + nsec / 1e9, 'ino': struct.unpack_from('Q', buf.raw, 32)[0]})
print(json.dumps(out))
`;

/** The birth time statx gives (0 when STATX_BTIME is missing from stx_mask), checked to agree with and without AT_STATX_FORCE_SYNC. */
async function btime(p: string): Promise<number> {
  const [cached, synced] = JSON.parse(ok(await run(PY, ['-c', STATX, p], { timeoutMs: 30_000 }), `statx ${p}`));
  expect(synced).toEqual(cached);
  return cached.btime;
}

// -o debug: libfuse logs every request it receives; FUSE_STATX must not be among them.
const fx = pagefsAndExt4({ mountArgs: ['-o', 'debug'] });

describe('statx birth time (pagefs vs ext4)', () => {
  it('files and directories report STATX_BTIME with their creation time; writes, renames and chmod leave it', async () => {
    const { m, ext4 } = fx;
    const res: Record<string, string[]> = {};
    for (const [where, root] of [['pagefs', m.mp], ['ext4', ext4.mp]]) {
      const before = Date.now() / 1000;
      const f = path.join(root, 'born');
      const d = path.join(root, 'born-dir');
      await fsp.writeFile(f, 'x');
      await fsp.mkdir(d);
      const after = Date.now() / 1000;
      const bf = await btime(f);
      const bd = await btime(d);
      await new Promise((r) => setTimeout(r, 1100));
      await fsp.appendFile(f, 'y');
      await fsp.chmod(f, 0o600);
      await fsp.rename(f, path.join(root, 'born2'));
      const bf2 = await btime(path.join(root, 'born2'));
      const st = await fsp.stat(path.join(root, 'born2'));
      res[where] = [
        `file btime at creation: ${bf >= Math.floor(before) && bf <= after + 1}`,
        `dir btime at creation: ${bd >= Math.floor(before) && bd <= after + 1}`,
        `unchanged by write, chmod, rename: ${bf2 === bf}`,
        `before mtime: ${bf < st.mtimeMs / 1000}`,
        // node's fs.stat uses statx and reads stx_btime.
        `node birthtime: ${Math.abs(st.birthtimeMs / 1000 - bf) < 0.001}`,
      ];
    }
    expect(res.pagefs).toEqual(res.pagefs.map((l) => l.replace(/: .*/, ': true')));
    expect(res.pagefs).toEqual(res.ext4);
    // libfuse never saw the request (it would have logged opcode 52 and answered ENOSYS).
    expect(m.log()).not.toMatch(/opcode: \?\?\? \(52\)/);
    expect(m.log()).toMatch(/opcode: GETATTR/);
  });

  it('the birth time survives a remount (it is the store\'s btime)', async () => {
    const { m } = fx;
    const f = path.join(m.mp, 'kept');
    await fsp.writeFile(f, 'x');
    const b = await btime(f);
    expect(b).toBeGreaterThan(0);
    await m.unmount();
    expectCleanLog(m);
    await m.remount();
    expect(await btime(f)).toBe(b);
    expect(await btime(m.mp)).toBeGreaterThan(0);
  });
});
