/**
 * statx birth time: what a program sees on pagefs, next to ext4. pagefs records every
 * inode's birth time (inodes.btime_*), but cannot hand it out: the kernel asks for it
 * only with FUSE_STATX, which libfuse 3.14 does not know (its op table ends before
 * opcode 52, so it answers ENOSYS itself); the kernel then sets fc->no_statx and
 * answers every statx from GETATTR, which has no birth time (fs/fuse/dir.c
 * fuse_update_get_attr). These tests pin that behaviour down (docs/CONFORMANCE.md).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { mountFresh, run, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { mountExt4, type Ext4 } from '../helpers/ext4.js';
import Database from 'better-sqlite3';
import { ok, eventually } from './lib.js';

const PY = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const STATX_BTIME = 0x800;

/** statx(2) through ctypes: stx_mask and stx_btime of each path, once cached and once with AT_STATX_FORCE_SYNC. */
const STATX = String.raw`
import ctypes, json, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
out = []
for p in sys.argv[1:]:
    for flags in (0, 0x2000):
        buf = ctypes.create_string_buffer(256)
        if libc.statx(-100, p.encode(), flags, 0x7ff | 0x800, buf) != 0:
            raise OSError(ctypes.get_errno(), p)
        sec, nsec = struct.unpack_from('qI', buf.raw, 80)
        out.append({'mask': struct.unpack_from('I', buf.raw, 0)[0], 'btime': sec + nsec / 1e9})
print(json.dumps(out))
`;

async function statx(p: string): Promise<{ mask: number; btime: number }[]> {
  return JSON.parse(ok(await run(PY, ['-c', STATX, p], { timeoutMs: 30_000 }), `statx ${p}`));
}

let m: Mounted;
let ext4: Ext4;
beforeAll(async () => {
  // -o debug: libfuse logs every request it receives, including the ones it answers itself.
  [m, ext4] = await Promise.all([mountFresh({ mountArgs: ['-o', 'debug'] }), mountExt4()]);
}, 90_000);
afterAll(async () => {
  await m?.cleanup();
  await ext4?.cleanup();
}, 90_000);

describe('statx birth time', () => {
  it('ext4 reports STATX_BTIME; on pagefs the kernel asks FUSE_STATX once, libfuse 3.14 answers ENOSYS, and statx has no STATX_BTIME', async () => {
    const before = Date.now() / 1000;
    await fsp.writeFile(path.join(ext4.mp, 'f'), 'x');
    await fsp.writeFile(path.join(m.mp, 'f'), 'x');
    const e = await statx(path.join(ext4.mp, 'f'));
    for (const s of e) {
      expect(s.mask & STATX_BTIME).toBe(STATX_BTIME);
      expect(s.btime).toBeGreaterThan(before - 5);
    }
    const p = await statx(path.join(m.mp, 'f'));
    for (const s of p) {
      expect(s.mask & STATX_BTIME).toBe(0);
      expect(s.btime).toBe(0);
    }
    // The request did reach libfuse (opcode 52, FUSE_STATX), and was refused there, before pagefs.
    expect(await eventually(async () => /opcode: \?\?\? \(52\)/.test(m.log()), 5_000)).toBe(true);
    const statxLines = m.log().split('\n').filter((l) => /opcode: \?\?\? \(52\)/.test(l));
    const unique = statxLines[0].match(/unique: (\d+)/)![1];
    expect(m.log()).toContain(`unique: ${unique}, error: -38 (Function not implemented)`);
    // ENOSYS is remembered for the life of the mount (fc->no_statx): asked again, the kernel uses GETATTR.
    await statx(path.join(m.mp, 'f'));
    expect(m.log().split('\n').filter((l) => /opcode: \?\?\? \(52\)/.test(l))).toHaveLength(1);
  });

  it("node's fs.stat (statx underneath) reports birthtime 0, the epoch, on pagefs and the creation time on ext4", async () => {
    const before = Date.now();
    await fsp.writeFile(path.join(ext4.mp, 'g'), 'x');
    await fsp.writeFile(path.join(m.mp, 'g'), 'x');
    const e = await fsp.stat(path.join(ext4.mp, 'g'));
    const p = await fsp.stat(path.join(m.mp, 'g'));
    expect(e.birthtimeMs).toBeGreaterThan(before - 5_000);
    expect(p.birthtimeMs).toBe(0);
    expect(p.birthtime.toISOString()).toBe('1970-01-01T00:00:00.000Z');
    expect(p.ctimeMs).toBeGreaterThan(before - 5_000);
  });

  it('the store keeps each inode\'s birth time, ready for a FUSE that can carry it', async () => {
    const f = path.join(m.mp, 'born');
    const t0 = Math.floor(Date.now() / 1000);
    await fsp.writeFile(f, 'x');
    const { ino } = await fsp.stat(f);
    await new Promise((r) => setTimeout(r, 1100));
    await fsp.appendFile(f, 'y'); // moves mtime and ctime, never the birth time
    await m.unmount();
    expectCleanLog(m);
    const db = new Database(m.store, { readonly: true });
    try {
      const row = db.prepare('SELECT btime_s, mtime_s FROM inodes WHERE ino = ?').get(ino) as { btime_s: number; mtime_s: number };
      expect(row.btime_s).toBeGreaterThanOrEqual(t0);
      expect(row.mtime_s).toBeGreaterThan(row.btime_s);
    } finally {
      db.close();
    }
    await m.remount();
  });
});
