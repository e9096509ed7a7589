/**
 * Extended attributes at their limits through the real mount. Where ext4 (4 KiB blocks)
 * defines the answer it is the reference: name lengths (255 ok, 256 ERANGE), the empty
 * name, a bare namespace prefix, bad flags, values over the VFS's 64 KiB (E2BIG), too-small
 * buffers (ERANGE), user.* on a symlink (EPERM), an unknown namespace (EOPNOTSUPP), and
 * random sequences small enough to fit ext4's one block.
 *
 * Where they differ on purpose (docs/DESIGN.md, "Limits"), pagefs's own rule is tested:
 * ext4 keeps all of an inode's xattrs in its inode and one block (about 4 KiB here) and
 * answers ENOSPC past that; pagefs keeps them as rows, so a value may be as large as the
 * VFS allows (64 KiB), the names of one inode may fill listxattr's 64 KiB (so that
 * listxattr always works: past 64 KiB of names it could only answer E2BIG), and all names
 * and values of one inode together 1 MiB; past either, ENOSPC, as ext4 when its block is full.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { expectCleanLog } from '../helpers/mount.js';
import { type Where } from '../helpers/ext4.js';
import { fcParams } from '../helpers/fc.js';
import { pyCalls, expectDaemonWell, mountBothForFile, type Call } from './hostile-lib.js';

const env = mountBothForFile();
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;
const KiB = 1024;

/** `calls(f)` on a fresh file `f` (with a symlink `s` to it) in a fresh directory on each side. */
async function onBoth(name: string, calls: Call[]): Promise<Record<Where, unknown[]>> {
  const out = {} as Record<Where, unknown[]>;
  for (const [where, root] of [['pagefs', env.m.mp], ['ext4', env.ext4.mp]] as [Where, string][]) {
    const dir = path.join(root, name);
    await fsp.mkdir(dir);
    await fsp.writeFile(path.join(dir, 'f'), 'x');
    await fsp.symlink('f', path.join(dir, 's'));
    out[where] = await pyCalls(calls, { cwd: dir });
  }
  return out;
}

const hex = (s: string | Buffer) => Buffer.from(s).toString('hex');
const user = (n: number) => 'user.' + 'n'.repeat(n - 5);

describe('xattrs at the limits ext4 shares', () => {
  it('name length, empty names, bad flags, value sizes, small buffers, symlinks and namespaces: as ext4', async () => {
    const res = await onBoth('limits', [
      ['setxattr', 'f', user(255), 'v255'], ['getxattr', 'f', user(255)],
      ['setxattr', 'f', user(256), 'v256'], ['getxattr', 'f', user(256)], ['removexattr', 'f', user(256)],
      ['setxattr', 'f', '', 'v'], ['getxattr', 'f', ''], ['setxattr', 'f', 'user.', 'v'], ['getxattr', 'f', 'user.'],
      ['setxattr', 'f', 'user.empty', ''], ['getxattr', 'f', 'user.empty'], ['getxattr', 'f', 'user.empty', 0],
      ['setxattr', 'f', 'user.flags', 'v', 4], ['setxattr', 'f', 'user.flags', 'v', XATTR_CREATE | XATTR_REPLACE],
      ['setxattr', 'f', 'user.big', Buffer.alloc(64 * KiB + 1, 1)], ['setxattr', 'f', 'user.mid', Buffer.alloc(2000, 2)],
      ['getxattr', 'f', 'user.mid', 1999], ['getxattr', 'f', 'user.mid', 0],
      ['listxattr', 'f', 0], ['listxattr', 'f', 1], ['listxattr', 'f'],
      ['lsetxattr', 's', 'user.onlink', 'v'], ['setxattr', 's', 'user.through', 'v'], ['getxattr', 'f', 'user.through'],
      ['setxattr', 'f', 'nosuch.name', 'v'], ['getxattr', 'f', 'nosuch.name'], ['removexattr', 'f', 'nosuch.name'],
      ['setxattr', 'f', 'user.' + '\u00e9'.repeat(125), 'utf8 255 bytes'], ['listxattr', 'f'],
    ]);
    expect(res.pagefs).toEqual(res.ext4);
    expect(res.pagefs.slice(0, 5)).toEqual(['OK', hex('v255'), 'ERANGE', 'ERANGE', 'ERANGE']);
    await expectDaemonWell(env.m);
  });
});

/** A name in user.: 1 to 20 bytes after the prefix, from a small alphabet so that sequences meet again. */
const xname = fc.stringMatching(/^[a-d]{1,3}$/).map((s) => `user.${s}`);
type XOp = { op: 'set'; name: string; value: number[]; flags: number } | { op: 'get'; name: string } | { op: 'remove'; name: string } | { op: 'list' };
const xop: fc.Arbitrary<XOp> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), name: xname, value: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }), flags: fc.constantFrom(0, 0, XATTR_CREATE, XATTR_REPLACE) }),
  fc.record({ op: fc.constant('get' as const), name: xname }),
  fc.record({ op: fc.constant('remove' as const), name: xname }),
  fc.constant({ op: 'list' as const }),
);
const toCall = (o: XOp): Call => (o.op === 'set' ? ['setxattr', 'f', o.name, Buffer.from(o.value), o.flags]
  : o.op === 'get' ? ['getxattr', 'f', o.name] : o.op === 'remove' ? ['removexattr', 'f', o.name] : ['listxattr', 'f']);

let runNo = 0;

describe('random xattr sequences that fit ext4', () => {
  it('set (with CREATE/REPLACE), get, remove and list give ext4\'s answers, also after a remount (fast-check)', async () => {
    const names: string[] = [];
    await fc.assert(fc.asyncProperty(fc.array(xop, { minLength: 1, maxLength: 30 }), async (seq) => {
      const name = `x${runNo++}`;
      const res = await onBoth(name, [...seq.map(toCall), ['listxattr', 'f']]);
      expect(res.pagefs).toEqual(res.ext4);
      names.push(name);
      await expectDaemonWell(env.m);
    }), fcParams<[XOp[]]>(12));
    const lists = async () => Promise.all(names.map((n) => pyCalls([['listxattr', 'f']], { cwd: path.join(env.m.mp, n) })));
    const before = await lists();
    await env.m.unmount();
    expectCleanLog(env.m);
    await env.m.remount();
    expect(await lists()).toEqual(before);
  }, 600_000);
});

describe('pagefs\'s own limits (no in-block limit; see the header)', () => {
  const mk = async (name: string) => {
    const dir = path.join(env.m.mp, name);
    await fsp.mkdir(dir);
    await fsp.writeFile(path.join(dir, 'f'), 'x');
    return dir;
  };

  it('one value of 64 KiB is kept exactly (ext4 answers ENOSPC: it does not fit its block)', async () => {
    const dir = await mk('big-value');
    const v = Buffer.alloc(64 * KiB);
    for (let i = 0; i < v.length; i++) v[i] = (i * 7) % 256;
    expect(await pyCalls([['setxattr', 'f', 'user.big', v], ['getxattr', 'f', 'user.big', 0], ['getxattr', 'f', 'user.big'],
      ['getxattr', 'f', 'user.big', 64 * KiB - 1], ['setxattr', 'f', 'user.over', Buffer.alloc(64 * KiB + 1)]], { cwd: dir }))
      .toEqual(['OK', 64 * KiB, v.toString('hex'), 'ERANGE', 'E2BIG']);
    await expectDaemonWell(env.m);
  });

  it('names fill listxattr\'s 64 KiB and no more (ENOSPC); the full list is then readable', async () => {
    const dir = await mk('many-names');
    // 255 bytes + NUL = 256 per name: 256 names fill 65,536 bytes exactly.
    const nm = (i: number) => `user.${String(i).padStart(4, '0')}` + 'n'.repeat(255 - 9);
    const sets: Call[] = [...Array(256)].map((_, i): Call => ['setxattr', 'f', nm(i), '']);
    const out = await pyCalls([...sets, ['setxattr', 'f', 'user.x', ''], ['listxattr', 'f', 0], ['listxattr', 'f'],
      ['removexattr', 'f', nm(0)], ['setxattr', 'f', 'user.x', 'fits now'], ['getxattr', 'f', 'user.x']], { cwd: dir, timeoutMs: 120_000 });
    expect(out.slice(0, 256).every((r) => r === 'OK')).toBe(true);
    expect(out.slice(256, 258)).toEqual(['ENOSPC', 64 * KiB]);
    expect((out[258] as string[]).length).toBe(256);
    expect(out.slice(259)).toEqual(['OK', 'OK', hex('fits now')]);
    await expectDaemonWell(env.m);
  }, 300_000);

  it('all names and values of one inode: 1 MiB, then ENOSPC and nothing changed; replacing a value counts the new size only', async () => {
    const dir = await mk('total');
    const v = Buffer.alloc(64 * KiB, 3);
    // 15 values of 64 KiB with 9-byte names: 983,175 bytes; a 16th passes 1 MiB.
    const sets: Call[] = [...Array(15)].map((_, i): Call => ['setxattr', 'f', `user.v${String(i).padStart(3, '0')}`, v]);
    const out = await pyCalls([...sets, ['setxattr', 'f', 'user.v015', v], ['getxattr', 'f', 'user.v015'],
      ['setxattr', 'f', 'user.v014', Buffer.alloc(100, 4)], ['setxattr', 'f', 'user.v015', v], ['getxattr', 'f', 'user.v015', 0],
      ['setxattr', 'f', 'user.v014', v], ['getxattr', 'f', 'user.v014', 0]], { cwd: dir, timeoutMs: 120_000 });
    expect(out.slice(0, 15).every((r) => r === 'OK')).toBe(true);
    expect(out.slice(15)).toEqual(['ENOSPC', 'ENODATA', 'OK', 'OK', v.length, 'ENOSPC', 100]);
    await expectDaemonWell(env.m);
  }, 300_000);

  it('1,000 xattrs on one inode: every one listed and read back, also after a remount', async () => {
    const dir = await mk('thousand');
    const calls: Call[] = [...Array(1000)].map((_, i): Call => ['setxattr', 'f', `user.a${i}`, `value ${i}`]);
    expect((await pyCalls(calls, { cwd: dir, timeoutMs: 300_000 })).every((r) => r === 'OK')).toBe(true);
    const check = async () => {
      const out = await pyCalls([['listxattr', 'f'], ...[...Array(1000)].map((_, i): Call => ['getxattr', 'f', `user.a${i}`])], { cwd: dir, timeoutMs: 300_000 });
      expect((out[0] as string[]).length).toBe(1000);
      expect(out.slice(1)).toEqual([...Array(1000)].map((_, i) => hex(`value ${i}`)));
    };
    await check();
    await env.m.unmount();
    expectCleanLog(env.m);
    await env.m.remount();
    await check();
    await expectDaemonWell(env.m);
  }, 600_000);

  it('unmounts cleanly with a clean log', async () => {
    await env.m.unmount();
    expectCleanLog(env.m);
  }, 120_000);
});
