/**
 * Permissions through the real mount, for users other than root: every case runs the same
 * calls on pagefs (mounted by root with -o allow_other; default_permissions is always on)
 * and on a loop-mounted ext4, and both must give the same answers, errno for errno, and
 * leave the same modes and owners behind.
 *
 * Users are numeric (setpriv sets uid, gid and supplementary groups; nothing is added to
 * /etc/passwd): nobody (65534), alice (2001, group 2001) and alice with the supplementary
 * group 3000. The no-allow_other case (other users refused) is in errno.test.ts, extended
 * here to every kind of call below the mountpoint.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { mountFresh, type Mounted } from '../helpers/mount.js';
import { finish } from './lib.js';
import { mountExt4, type Ext4 } from '../helpers/ext4.js';
import { asUser, NOBODY, type User, type Step } from '../helpers/asuser.js';

const ALICE: User = { uid: 2001, gid: 2001 };
const G = 3000;
const ALICE_IN_G: User = { uid: 2001, gid: 2001, groups: [G] };
const SCRIPT = '#!/bin/sh\nexit 7\n';

let ext4: Ext4 | null = null;
let m: Mounted | null = null;

beforeAll(async () => {
  ext4 = await mountExt4({ prefix: 'pagefs-perms-ext4-' });
  m = await mountFresh({ mountArgs: ['-o', 'allow_other'] });
  fs.chmodSync(m.dir, 0o755); // mkdtemp made it 0700: the mount must be what stops a user, not its parent
}, 90_000);

afterAll(async () => {
  await m?.cleanup();
  await ext4?.cleanup();
}, 90_000);

type Phase = [User | null, Step[]];

/**
 * Makes directory `name` (0755, root's) on pagefs and on ext4, runs `setup` in it as root,
 * then each phase's steps as its user; returns every answer, per filesystem.
 */
async function onBoth(name: string, setup: (d: string) => Promise<void>, phases: (d: string) => Phase[]): Promise<{ pagefs: string[]; ext4: string[] }> {
  const out = { pagefs: [] as string[], ext4: [] as string[] };
  for (const [where, root] of [['pagefs', m!.mp], ['ext4', ext4!.mp]] as const) {
    const d = path.join(root, name);
    await fsp.mkdir(d);
    await fsp.chmod(d, 0o755);
    await setup(d);
    for (const [user, steps] of phases(d)) out[where].push(...await asUser(user, steps));
  }
  return out;
}

/** A file with `mode` (chmod, so no umask), owned by uid:gid. */
async function file(p: string, mode: number, uid = 0, gid = 0, data = 'data'): Promise<void> {
  await fsp.writeFile(p, data);
  await fsp.chown(p, uid, gid);
  await fsp.chmod(p, mode);
}

async function dir(p: string, mode: number, uid = 0, gid = 0): Promise<void> {
  await fsp.mkdir(p);
  await fsp.chown(p, uid, gid);
  await fsp.chmod(p, mode);
}

function expectSame(r: { pagefs: string[]; ext4: string[] }, expected?: string[]): void {
  expect(r.pagefs).toEqual(r.ext4);
  if (expected) expect(r.ext4).toEqual(expected);
}

describe('permissions with -o allow_other (pagefs vs ext4)', () => {
  it('file mode bits: read, write and execute for owner, group and others', async () => {
    const r = await onBoth('modes', async (d) => {
      await file(path.join(d, 'r644'), 0o644);
      await file(path.join(d, 'w666'), 0o666);
      await file(path.join(d, 'x755'), 0o755, 0, 0, SCRIPT);
      await file(path.join(d, 'nox644'), 0o644, 0, 0, SCRIPT);
      await file(path.join(d, 'own200'), 0o200, NOBODY.uid, NOBODY.gid);
      await file(path.join(d, 'grp640'), 0o640, 0, NOBODY.gid);
      // The group class decides for a member, even when others may read.
      await file(path.join(d, 'grp604'), 0o604, 0, NOBODY.gid);
      await file(path.join(d, 'own044'), 0o044, NOBODY.uid, NOBODY.gid);
    }, (d) => [[NOBODY, [
      ['read', `${d}/r644`], ['write', `${d}/r644`],
      ['read', `${d}/w666`], ['write', `${d}/w666`],
      ['exec', `${d}/x755`], ['exec', `${d}/nox644`], ['read', `${d}/nox644`],
      ['read', `${d}/own200`], ['write', `${d}/own200`],
      ['read', `${d}/grp640`], ['read', `${d}/grp604`], ['read', `${d}/own044`],
    ]]]);
    expectSame(r, ['OK:4', 'EACCES', 'OK:4', 'OK', 'OK:7', 'EACCES', 'OK:17', 'EACCES', 'OK', 'OK:4', 'EACCES', 'EACCES']);
  });

  it('directory bits: list (r), create (w+x), search (x) on every path component', async () => {
    const r = await onBoth('dirs', async (d) => {
      await dir(path.join(d, 'd755'), 0o755);
      await dir(path.join(d, 'd777'), 0o777);
      await dir(path.join(d, 'd733'), 0o733); // write and search without read
      await dir(path.join(d, 'd711'), 0o711);
      await file(path.join(d, 'd711', 'f'), 0o644);
      await dir(path.join(d, 'd744'), 0o744); // read without search
      await file(path.join(d, 'd744', 'f'), 0o644);
      await dir(path.join(d, 'a'), 0o755);
      await dir(path.join(d, 'a', 'b'), 0o700);
      await dir(path.join(d, 'a', 'b', 'c'), 0o777);
      await file(path.join(d, 'a', 'b', 'c', 'f'), 0o666);
    }, (d) => [[NOBODY, [
      ['ls', `${d}/d755`], ['create', `${d}/d755/n`], ['mkdir', `${d}/d755/n`],
      ['create', `${d}/d777/n`], ['mkdir', `${d}/d777/m`], ['unlink', `${d}/d777/n`], ['rmdir', `${d}/d777/m`],
      ['create', `${d}/d733/n`], ['ls', `${d}/d733`], ['stat', `${d}/d733/n`],
      ['ls', `${d}/d711`], ['read', `${d}/d711/f`], ['create', `${d}/d711/n`],
      ['ls', `${d}/d744`], ['stat', `${d}/d744/f`], ['read', `${d}/d744/f`],
      ['stat', `${d}/a/b/c/f`], ['write', `${d}/a/b/c/f`], ['create', `${d}/a/b/c/n`], ['ls', `${d}/a/b`],
    ]]]);
    expectSame(r, ['OK:', 'EACCES', 'EACCES', 'OK', 'OK', 'OK', 'OK', 'OK', 'EACCES', 'OK:644:65534:65534',
      'EACCES', 'OK:4', 'EACCES', 'OK:f', 'EACCES', 'EACCES', 'EACCES', 'EACCES', 'EACCES', 'EACCES']);
  });

  it('sticky directory (1777): nobody cannot unlink or rename root\'s or alice\'s file, can its own', async () => {
    const r = await onBoth('sticky', async (d) => {
      await dir(path.join(d, 't'), 0o1777);
      await file(path.join(d, 't', 'root'), 0o666);
      await file(path.join(d, 't', 'alice'), 0o666, ALICE.uid, ALICE.gid);
      await dir(path.join(d, 'plain'), 0o777);
      await file(path.join(d, 'plain', 'root'), 0o644);
    }, (d) => [[NOBODY, [
      ['create', `${d}/t/mine`], ['rename', `${d}/t/mine`, `${d}/t/mine2`],
      ['unlink', `${d}/t/root`], ['rename', `${d}/t/root`, `${d}/t/x`], ['rename', `${d}/t/alice`, `${d}/t/y`],
      ['unlink', `${d}/t/alice`], ['write', `${d}/t/alice`],
      // Replacing someone else's file by renaming over it is a deletion too.
      ['rename', `${d}/t/mine2`, `${d}/t/root`], ['unlink', `${d}/t/mine2`],
      // Without the sticky bit, write permission on the directory is enough.
      ['unlink', `${d}/plain/root`],
      ['ls', `${d}/t`],
    ]], [ALICE, [['unlink', `${d}/t/alice`]]]]);
    expectSame(r, ['OK', 'OK', 'EPERM', 'EPERM', 'EPERM', 'EPERM', 'OK', 'EPERM', 'OK', 'OK', 'OK:alice,root', 'OK']);
  });

  it('ownership: chown, chgrp and chmod by a non-owner or to a foreign group are EPERM', async () => {
    const r = await onBoth('owner', async (d) => {
      await file(path.join(d, 'root'), 0o666);
      await file(path.join(d, 'mine'), 0o644, NOBODY.uid, NOBODY.gid);
      await file(path.join(d, 'alice'), 0o644, ALICE.uid, ALICE.gid);
    }, (d) => [[NOBODY, [
      ['chown', `${d}/root`, NOBODY.uid, -1], ['chmod', `${d}/root`, '777'], ['chown', `${d}/root`, -1, NOBODY.gid],
      ['chown', `${d}/mine`, 0, -1], ['chown', `${d}/mine`, -1, 0], ['chown', `${d}/mine`, -1, G],
      ['chown', `${d}/mine`, NOBODY.uid, NOBODY.gid], ['chmod', `${d}/mine`, '600'], ['stat', `${d}/mine`],
    ]], [ALICE_IN_G, [
      ['chown', `${d}/alice`, -1, G], ['stat', `${d}/alice`], ['chown', `${d}/alice`, -1, 0],
    ]], [ALICE, [['chown', `${d}/alice`, -1, ALICE.gid], ['chown', `${d}/alice`, -1, ALICE.gid], ['stat', `${d}/alice`]]]]);
    expectSame(r, ['EPERM', 'EPERM', 'EPERM', 'EPERM', 'EPERM', 'EPERM', 'OK', 'OK', 'OK:600:65534:65534',
      'OK', `OK:644:2001:${G}`, 'EPERM', 'OK', 'OK', 'OK:644:2001:2001']);
  });

  it('set-user-ID and set-group-ID are cleared on write, truncate and chown as on ext4', async () => {
    const r = await onBoth('killpriv', async (d) => {
      await file(path.join(d, 'w6777'), 0o6777);
      await file(path.join(d, 'w2666'), 0o2666); // set-group-ID without group execute
      await file(path.join(d, 't4666'), 0o4666);
      await file(path.join(d, 'own6775'), 0o6775, NOBODY.uid, NOBODY.gid);
      await file(path.join(d, 'root6755'), 0o6755);
      await dir(path.join(d, 'dir'), 0o6755);
      await file(path.join(d, 'rootw6777'), 0o6777);
      await file(path.join(d, 'w2666member'), 0o2666, 0, NOBODY.gid);
      await file(path.join(d, 't2666'), 0o2666);
      await file(path.join(d, 'alice2644'), 0o2644, ALICE.uid, 0);
    }, (d) => [[NOBODY, [
      ['write', `${d}/w6777`], ['stat', `${d}/w6777`],
      ['write', `${d}/w2666`], ['stat', `${d}/w2666`],
      ['truncate', `${d}/t4666`, 1], ['stat', `${d}/t4666`],
      ['chown', `${d}/own6775`, -1, NOBODY.gid], ['stat', `${d}/own6775`],
      ['write', `${d}/w2666member`], ['stat', `${d}/w2666member`],
      ['truncate', `${d}/t2666`, 1], ['stat', `${d}/t2666`],
    ]], [ALICE_IN_G, [
      ['chown', `${d}/alice2644`, -1, G], ['stat', `${d}/alice2644`],
    ]], [null, [
      ['chown', `${d}/root6755`, ALICE.uid, ALICE.gid], ['stat', `${d}/root6755`],
      ['chown', `${d}/dir`, ALICE.uid, ALICE.gid], ['stat', `${d}/dir`],
      ['write', `${d}/rootw6777`], ['stat', `${d}/rootw6777`], // root keeps them (CAP_FSETID)
    ]]]);
    expectSame(r);
    expect(r.ext4.filter((_, i) => i % 2 === 1)).toEqual(['OK:777:0:0', 'OK:666:0:0', 'OK:666:0:0', 'OK:775:65534:65534',
      'OK:2666:0:65534', 'OK:666:0:0', `OK:644:2001:${G}`, 'OK:755:2001:2001', 'OK:6755:2001:2001', 'OK:6777:0:0']);
  });

  // With HANDLE_KILLPRIV_V2 the kernel tells the daemon on WRITE, O_TRUNC OPEN and SETATTR
  // whether the caller lacks CAP_FSETID; on FALLOCATE and COPY_FILE_RANGE the daemon
  // decides (uid 0 stands in for the capability). O_TRUNC clears even an empty file's bits.
  it('set-ID bits are cleared on fallocate, punch, copy_file_range and O_TRUNC open by a user, kept for root', async () => {
    expect(m!.log(), 'the mount log names the negotiated flag').toMatch(/handle_killpriv_v2/);
    const kinds = ['fa', 'pu', 'cp', 'ot', 'otempty'];
    const r = await onBoth('killpriv2', async (d) => {
      await file(path.join(d, 'src'), 0o644, 0, 0, 'copied');
      for (const who of ['u', 'r']) {
        for (const k of kinds) await file(path.join(d, `${who}${k}`), 0o6777, 0, 0, k === 'otempty' ? '' : 'x'.repeat(8192));
        await file(path.join(d, `${who}sgid`), 0o2666, 0, 0, 'x'.repeat(8192)); // set-group-ID without group execute
      }
    }, (d) => ['u', 'r'].map((who): Phase => [who === 'u' ? NOBODY : null, [
      ['fallocate', `${d}/${who}fa`, 0, 16384], ['stat', `${d}/${who}fa`],
      ['punch', `${d}/${who}pu`, 0, 4096], ['stat', `${d}/${who}pu`],
      ['copy', `${d}/src`, `${d}/${who}cp`], ['stat', `${d}/${who}cp`],
      ['trunc', `${d}/${who}ot`], ['stat', `${d}/${who}ot`],
      ['trunc', `${d}/${who}otempty`], ['stat', `${d}/${who}otempty`],
      ['punch', `${d}/${who}sgid`, 4096, 4096], ['stat', `${d}/${who}sgid`],
    ]]));
    expectSame(r, [
      'OK', 'OK:777:0:0', 'OK', 'OK:777:0:0', 'OK:6', 'OK:777:0:0', 'OK', 'OK:777:0:0', 'OK', 'OK:777:0:0', 'OK', 'OK:666:0:0',
      'OK', 'OK:6777:0:0', 'OK', 'OK:6777:0:0', 'OK:6', 'OK:6777:0:0', 'OK', 'OK:6777:0:0', 'OK', 'OK:6777:0:0', 'OK', 'OK:2666:0:0',
    ]);
  });

  // The kernel drops only the size and times it knows a modification moves: the mode the
  // daemon changed must be dropped by the daemon (src/vfs/staleattrs.ts), or a statx for the
  // mode alone (and exec's permission check) sees the set-ID bits until the attribute timeout.
  it('cleared set-ID bits show at once to a stat that asks for the mode alone', async () => {
    const kinds = ['wr', 'fa', 'pu', 'cp', 'ot'];
    const r = await onBoth('killmode', async (d) => {
      await file(path.join(d, 'src'), 0o644, 0, 0, 'copied');
      for (const k of kinds) await file(path.join(d, k), 0o6777, 0, 0, 'x'.repeat(8192));
      await file(path.join(d, 'sgid'), 0o2666, 0, 0, 'x'); // set-group-ID without group execute
    }, (d) => [[NOBODY, [
      ...kinds.map((k): Step => ['statmode', `${d}/${k}`]), ['statmode', `${d}/sgid`], // cached now
      ['write', `${d}/wr`], ['statmode', `${d}/wr`],
      ['fallocate', `${d}/fa`, 0, 16384], ['statmode', `${d}/fa`],
      ['punch', `${d}/pu`, 0, 4096], ['statmode', `${d}/pu`],
      ['copy', `${d}/src`, `${d}/cp`], ['statmode', `${d}/cp`],
      ['trunc', `${d}/ot`], ['statmode', `${d}/ot`],
      ['write', `${d}/sgid`], ['statmode', `${d}/sgid`],
    ]]]);
    expectSame(r, [
      'OK:6777', 'OK:6777', 'OK:6777', 'OK:6777', 'OK:6777', 'OK:2666',
      'OK', 'OK:777', 'OK', 'OK:777', 'OK', 'OK:777', 'OK:6', 'OK:777', 'OK', 'OK:777', 'OK', 'OK:666',
    ]);
  });

  // The kernel still removes security.capability itself (a REMOVEXATTR before the write),
  // for root too: a file capability must not survive a change of the file's contents.
  it('a write removes the file capability (security.capability), by root and by a user', async () => {
    const r = await onBoth('killcap', async (d) => {
      await file(path.join(d, 'root'), 0o755);
      await file(path.join(d, 'user'), 0o777);
    }, (d) => [
      [null, [['setcap', `${d}/root`], ['getcap', `${d}/root`], ['setcap', `${d}/user`], ['write', `${d}/root`], ['getcap', `${d}/root`]]],
      [NOBODY, [['getcap', `${d}/user`], ['write', `${d}/user`], ['getcap', `${d}/user`], ['stat', `${d}/user`]]],
    ]);
    const cap = 'OK:0100000200040000000000000000000000000000';
    expectSame(r, ['OK', cap, 'OK', 'OK', 'ENODATA', cap, 'OK', 'ENODATA', 'OK:777:0:0']);
  });

  it('chmod g+s keeps set-group-ID for a member of the file\'s group (also by a supplementary group), drops it otherwise', async () => {
    const r = await onBoth('chmodsgid', async (d) => {
      await file(path.join(d, 'nobody-root'), 0o644, NOBODY.uid, 0);
      await file(path.join(d, 'nobody-own'), 0o644, NOBODY.uid, NOBODY.gid);
      await file(path.join(d, 'alice-g'), 0o644, ALICE.uid, G);
      await file(path.join(d, 'alice-g2'), 0o644, ALICE.uid, G);
    }, (d) => [[NOBODY, [
      ['chmod', `${d}/nobody-root`, '2755'], ['stat', `${d}/nobody-root`],
      ['chmod', `${d}/nobody-own`, '6755'], ['stat', `${d}/nobody-own`],
    ]], [ALICE_IN_G, [['chmod', `${d}/alice-g`, '2755'], ['stat', `${d}/alice-g`]]],
    [ALICE, [['chmod', `${d}/alice-g2`, '2755'], ['stat', `${d}/alice-g2`]]]]);
    expectSame(r, ['OK', 'OK:755:65534:0', 'OK', 'OK:6755:65534:65534', 'OK', `OK:2755:2001:${G}`, 'OK', `OK:755:2001:${G}`]);
  });

  it('utimes: UTIME_NOW needs write permission or ownership, explicit times need ownership', async () => {
    const r = await onBoth('utimes', async (d) => {
      await file(path.join(d, 'rw'), 0o666);
      await file(path.join(d, 'ro'), 0o644);
      await file(path.join(d, 'mine'), 0o444, NOBODY.uid, NOBODY.gid);
    }, (d) => [[NOBODY, [
      ['touch', `${d}/rw`], ['utime', `${d}/rw`, 1000, 2000],
      ['touch', `${d}/ro`], ['utime', `${d}/ro`, 1000, 2000],
      ['touch', `${d}/mine`], ['utime', `${d}/mine`, 1000, 2000],
    ]]]);
    expectSame(r, ['OK', 'EPERM', 'EACCES', 'EPERM', 'OK', 'OK']);
    for (const root of [m!.mp, ext4!.mp]) {
      expect((await fsp.stat(path.join(root, 'utimes', 'mine'))).mtimeMs).toBe(2_000_000);
      expect((await fsp.stat(path.join(root, 'utimes', 'ro'))).mtimeMs).not.toBe(2_000_000);
    }
  });

  it('O_TRUNC without write permission: EACCES, and the file keeps its data', async () => {
    const r = await onBoth('otrunc', async (d) => {
      await file(path.join(d, 'f'), 0o644);
    }, (d) => [[NOBODY, [['trunc', `${d}/f`], ['read', `${d}/f`]]]]);
    expectSame(r, ['EACCES', 'OK:4']);
  });

  it('set-group-ID directory: new entries take its group, new subdirectories its set-group-ID bit', async () => {
    const r = await onBoth('sgiddir', async (d) => {
      await dir(path.join(d, 's'), 0o2777, 0, G);
    }, (d) => [[NOBODY, [
      ['mkdir', `${d}/s/sub`, '755'], ['stat', `${d}/s/sub`],
      ['create', `${d}/s/f`, '644'], ['stat', `${d}/s/f`],
      // Not a member of the group: a new file does not get set-group-ID (as ext4's inode_init_owner).
      ['create', `${d}/s/x`, '2755'], ['stat', `${d}/s/x`],
      ['mkdir', `${d}/s/sub/deeper`, '700'], ['stat', `${d}/s/sub/deeper`],
    ]], [ALICE_IN_G, [['create', `${d}/s/y`, '2755'], ['stat', `${d}/s/y`]]]]);
    expectSame(r, ['OK', `OK:2755:65534:${G}`, 'OK', `OK:644:65534:${G}`, 'OK', `OK:755:65534:${G}`,
      'OK', `OK:2700:65534:${G}`, 'OK', `OK:2755:2001:${G}`]);
  });

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m!);
  });
});

describe('permissions without -o allow_other: only the mounting user gets in', () => {
  let m2: Mounted | null = null;
  beforeAll(async () => {
    m2 = await mountFresh();
    fs.chmodSync(m2.dir, 0o755);
  }, 60_000);
  afterAll(async () => { await m2?.cleanup(); }, 60_000);

  // errno.test.ts checks the mountpoint itself; here every kind of call below it, on
  // entries whose modes would let anyone in, is refused all the same.
  it('nobody and alice get EACCES for every call on 0777/0666 entries below the mountpoint', async () => {
    const mp = m2!.mp;
    await dir(path.join(mp, 'open'), 0o777);
    await file(path.join(mp, 'open', 'f'), 0o666, NOBODY.uid, NOBODY.gid);
    await file(path.join(mp, 'x'), 0o777, 0, 0, SCRIPT);
    const steps: Step[] = [
      ['stat', `${mp}/open`], ['ls', `${mp}/open`], ['read', `${mp}/open/f`], ['write', `${mp}/open/f`],
      ['trunc', `${mp}/open/f`], ['create', `${mp}/open/n`], ['mkdir', `${mp}/open/d`], ['unlink', `${mp}/open/f`],
      ['rename', `${mp}/open/f`, `${mp}/open/g`], ['chmod', `${mp}/open/f`, '600'], ['chown', `${mp}/open/f`, -1, NOBODY.gid],
      ['touch', `${mp}/open/f`], ['truncate', `${mp}/open/f`, 0], ['exec', `${mp}/x`],
    ];
    for (const user of [NOBODY, ALICE]) expect(await asUser(user, steps)).toEqual(steps.map(() => 'EACCES'));
    // Control: the same calls by root (the mounting user) get through.
    expect((await asUser(null, [['read', `${mp}/open/f`], ['exec', `${mp}/x`]]))).toEqual(['OK:4', 'OK:7']);
    expect((await fsp.readdir(path.join(mp, 'open'))).sort()).toEqual(['f']);
  });

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m2!);
  });
});
