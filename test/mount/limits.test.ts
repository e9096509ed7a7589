/**
 * What pagefs cannot do because the kernel's FUSE client (or libfuse 3.14) answers
 * before pagefs is asked, next to ext4's answer for the same call; and the file locks,
 * which the kernel keeps for a FUSE daemon that does not implement them. Each difference
 * is explained in docs/CONFORMANCE.md. The steps are in limits_scenario.py.
 */
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, sh, expectCleanLog } from '../helpers/mount.js';
import { pagefsAndExt4 } from '../helpers/ext4.js';
import { ok, q } from './lib.js';

const SCENARIO = path.join(path.dirname(fileURLToPath(import.meta.url)), 'limits_scenario.py');
const PY = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

// -o debug: libfuse logs the requests it answers itself (opcodes it does not know).
const fx = pagefsAndExt4({ mountArgs: ['-o', 'debug'] });

async function transcript(root: string): Promise<string[]> {
  const dir = path.join(root, 'limits');
  await fsp.mkdir(dir);
  return ok(await run(PY, [SCENARIO, dir], { timeoutMs: 60_000 }), `limits_scenario on ${root}`).trim().split('\n');
}

describe('limits of FUSE, pagefs next to ext4', () => {
  it('O_TMPFILE, FIEMAP, FIBMAP, RENAME_WHITEOUT differ; FICLONE fails on both; flock and fcntl locks work on both', async () => {
    const { m, ext4 } = fx;
    const p = await transcript(m.mp);
    const e = await transcript(ext4.mp);
    expect({ pagefs: p, ext4: e }).toEqual({
      pagefs: [
        // FUSE_TMPFILE (opcode 51) is unknown to libfuse 3.14: ENOSYS, which the kernel turns into EOPNOTSUPP.
        'O_TMPFILE: EOPNOTSUPP',
        // fuse has no ->fiemap; fuse_bmap asks the daemon only on fuseblk mounts (a block device), else answers block 0.
        'FS_IOC_FIEMAP: EOPNOTSUPP',
        'FIBMAP: OK:block0=0',
        // fuse has no ->remap_file_range; ext4 has none either (no reflink). cp uses copy_file_range instead.
        'FICLONE: EOPNOTSUPP',
        'FICLONERANGE: EOPNOTSUPP',
        // pagefs's own answer: whiteouts are for overlayfs upper layers, which pagefs does not claim to be.
        'RENAME_WHITEOUT: EINVAL',
        'flock: OK:second lock EAGAIN',
        'fcntl lock: OK:other process EAGAIN',
      ],
      ext4: [
        'O_TMPFILE: OK',
        'FS_IOC_FIEMAP: OK:extents=1',
        'FIBMAP: OK:block0=nonzero',
        'FICLONE: EOPNOTSUPP',
        'FICLONERANGE: EOPNOTSUPP',
        'RENAME_WHITEOUT: OK:left 0o20000 rdev=0',
        'flock: OK:second lock EAGAIN',
        'fcntl lock: OK:other process EAGAIN',
      ],
    });
    const tmpfile = m.log().split('\n').find((l) => /opcode: \?\?\? \(51\)/.test(l));
    expect(tmpfile, 'the kernel sent FUSE_TMPFILE').toBeDefined();
    expect(m.log()).toContain(`unique: ${tmpfile!.match(/unique: (\d+)/)![1]}, error: -38 (Function not implemented)`);
  });

  it('swapon of a file on pagefs: EINVAL (no block map: bmap gives block 0, "swapfile has holes")', async () => {
    const { m } = fx;
    const f = path.join(m.mp, 'swapfile');
    ok(await sh(`dd if=/dev/zero of=${q(f)} bs=1M count=16 status=none && chmod 600 ${q(f)} && mkswap ${q(f)} >/dev/null`, { timeoutMs: 60_000 }), 'mkswap');
    // Never left active, should a future kernel accept it: swapoff at once.
    const r = await sh(`swapon ${q(f)}; rc=$?; swapon --show=NAME --noheadings | grep -qxF ${q(f)} && swapoff ${q(f)}; exit $rc`, { timeoutMs: 60_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Invalid argument/);
  });

  it('leaves a clean daemon log', async () => {
    const { m } = fx;
    await m.unmount();
    expectCleanLog(m);
    await m.remount();
  });
});
