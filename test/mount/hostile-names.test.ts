/**
 * Hostile names through the real mount, each call made on pagefs and on a loop-mounted
 * ext4 (4 KiB blocks, so its symlink targets may be as long as pagefs's): 255-byte names
 * accepted and 256-byte names refused (ENAMETOOLONG) by every call that makes a name,
 * symlink targets up to PATH_MAX, names of arbitrary non-UTF-8 bytes kept exactly (readdir
 * gives the same bytes back, stat and open by them work, also after a remount), and
 * "", "." and ".." as the last component of every namespace call.
 *
 * '/' and NUL cannot be part of a name that reaches a filesystem through a path (the
 * kernel splits at '/' and stops at NUL); pagefs refuses both in a name anyway (EINVAL,
 * src/vfs/names.ts) should a request carry one.
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

const roots = (): Record<Where, string> => ({ pagefs: env.m.mp, ext4: env.ext4.mp });

/** A directory `name` on both sides, and the calls `make(dir)` in it; the answers of each side. */
async function onBoth(name: string, make: (dir: Buffer) => Call[]): Promise<Record<Where, unknown[]>> {
  const out = {} as Record<Where, unknown[]>;
  for (const [where, root] of Object.entries(roots()) as [Where, string][]) {
    const dir = path.join(root, name);
    await fsp.mkdir(dir);
    out[where] = await pyCalls(make(Buffer.from(dir)));
  }
  return out;
}

const join = (dir: Buffer, ...names: (string | Buffer)[]) => Buffer.concat([dir, ...names.flatMap((n) => [Buffer.from('/'), Buffer.from(n)])]);
const n255 = 'a'.repeat(254) + 'z';
const n256 = 'a'.repeat(255) + 'z';

describe('name and target lengths', () => {
  it('every call that makes a name takes 255 bytes and refuses 256 with ENAMETOOLONG', async () => {
    const res = await onBoth('len', (d) => {
      const calls: Call[] = [['create', join(d, 'f')], ['mkdir', join(d, 'sub')]];
      for (const [n, tag] of [[n255, '5'], [n256, '6']] as const) {
        const name = (c: string) => c + n.slice(c.length + 1) + tag; // the same length, one name per call
        calls.push(
          ['create', join(d, name('c'))], ['mkdir', join(d, name('m'))], ['symlink', 'f', join(d, name('s'))],
          ['link', join(d, 'f'), join(d, name('l'))], ['mknod', join(d, name('n'))],
          ['create', join(d, name('r'))], ['rename', join(d, name('r')), join(d, 'sub', name('R'))],
          ['rename', join(d, 'f'), join(d, name('F'))], ['rename', join(d, name('F')), join(d, 'f')],
          ['stat', join(d, name('c'))], ['unlink', join(d, name('c'))], ['rmdir', join(d, name('m'))],
          ['create', join(d, name('x'), 'below')],
        );
      }
      calls.push(['listdir', d], ['listdir', join(d, 'sub')], ['stat', join(d, 'f')]);
      return calls;
    });
    expect(res.pagefs).toEqual(res.ext4);
    // Not a vacuous comparison: 255 bytes worked and 256 did not.
    expect(res.pagefs.slice(2, 15)).toEqual(['OK', 'OK', 'OK', 'OK', 'OK', 'OK', 'OK', 'OK', 'OK', [8, 1, 0], 'OK', 'OK', 'ENOENT']);
    expect(res.pagefs.slice(15, 28).every((r) => r === 'ENAMETOOLONG' || r === 'ENOENT')).toBe(true);
    await expectDaemonWell(env.m);
  });

  it('symlink targets up to PATH_MAX - 1 bytes are kept exactly; PATH_MAX bytes: ENAMETOOLONG', async () => {
    const target = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i % 50 === 49 ? 0x2f : 0x61 + (i % 26))));
    const res = await onBoth('target', (d) => [4094, 4095, 4096, 5000].flatMap((n): Call[] => [
      ['symlink', target(n), join(d, `s${n}`)], ['readlink', join(d, `s${n}`)], ['lstat', join(d, `s${n}`)],
    ]));
    expect(res.pagefs).toEqual(res.ext4);
    expect(res.pagefs.slice(0, 6)).toEqual(['OK', target(4094).toString('hex'), [10, 1, 4094], 'OK', target(4095).toString('hex'), [10, 1, 4095]]);
    expect(res.pagefs[6]).toBe('ENAMETOOLONG');
    await expectDaemonWell(env.m);
  });
});

describe('"", "." and ".." as the last component', () => {
  it('every namespace call gives ext4\'s errno', async () => {
    const res = await onBoth('dots', (d) => {
      const calls: Call[] = [['create', join(d, 'f')], ['mkdir', join(d, 'sub')]];
      for (const last of ['', '.', '..']) {
        const p = Buffer.concat([join(d, 'sub'), Buffer.from('/' + last)]);
        calls.push(
          ['create', p], ['mkdir', p], ['mknod', p], ['symlink', 'f', p], ['link', join(d, 'f'), p],
          ['rename', join(d, 'f'), p], ['rename', p, join(d, 'moved')], ['unlink', p], ['rmdir', p], ['stat', p],
        );
      }
      calls.push(['create', Buffer.alloc(0)], ['mkdir', Buffer.alloc(0)], ['unlink', Buffer.alloc(0)], ['rmdir', Buffer.alloc(0)],
        ['rename', Buffer.alloc(0), join(d, 'x')], ['symlink', Buffer.alloc(0), join(d, 'emptytarget')], ['listdir', d]);
      return calls;
    });
    expect(res.pagefs).toEqual(res.ext4);
    await expectDaemonWell(env.m);
  });
});

/** A name of 1 to 255 bytes, none of them NUL or '/', and not "." or "..". */
const byteName = fc.uint8Array({ minLength: 1, maxLength: 255 })
  .map((a) => Buffer.from(a.map((x) => (x === 0 || x === 0x2f ? 0x80 | x : x))))
  .filter((b) => b.toString('latin1') !== '.' && b.toString('latin1') !== '..');

let runNo = 0;

describe('non-UTF-8 names', () => {
  it('arbitrary byte names: created, listed, stat-ed and opened by their exact bytes, as on ext4, and after a remount', async () => {
    const made = new Map<string, Buffer[]>(); // directory -> the names of its files, checked after the remount
    await fc.assert(fc.asyncProperty(fc.array(byteName, { minLength: 1, maxLength: 10 }), fc.array(byteName, { maxLength: 3 }), async (files, dirs) => {
      const name = `n${runNo++}`;
      const res = await onBoth(name, (d) => [
        ...files.map((f, i): Call => ['write', join(d, f), Buffer.from(`content ${i}`)]),
        ...dirs.map((n): Call => ['mkdir', join(d, n)]),
        ['listdir', d],
        ...files.flatMap((f): Call[] => [['stat', join(d, f)], ['read', join(d, f)]]),
        ...files.map((f): Call => ['link', join(d, f), join(d, Buffer.concat([f.subarray(0, 200), Buffer.from([0xff, 0xfe])]))]),
        ['listdir', d],
      ]);
      expect(res.pagefs).toEqual(res.ext4);
      // readdir returns exactly the bytes that were created.
      const listed = new Set(res.pagefs[files.length + dirs.length] as string[]);
      for (const f of files) expect(listed.has(f.toString('hex')), `${f.toString('hex')} listed`).toBe(true);
      made.set(name, files);
      await expectDaemonWell(env.m);
    }), fcParams<[Buffer[], Buffer[]]>(10));

    // The same names, by the same bytes, from the store after a remount.
    const before = new Map<string, unknown[]>();
    const calls = (name: string): Call[] => {
      const d = Buffer.from(path.join(env.m.mp, name));
      return [['listdir', d], ...made.get(name)!.flatMap((f): Call[] => [['stat', join(d, f)], ['read', join(d, f)]])];
    };
    for (const name of made.keys()) before.set(name, await pyCalls(calls(name)));
    await env.m.unmount();
    expectCleanLog(env.m);
    await env.m.remount();
    for (const name of made.keys()) expect(await pyCalls(calls(name)), `${name} after the remount`).toEqual(before.get(name));
  }, 600_000);

  it('a 256-byte name of non-UTF-8 bytes: ENAMETOOLONG; 255 of them with multi-byte sequences cut in half: kept', async () => {
    const cut = Buffer.concat([Buffer.from('é'.repeat(127)), Buffer.from([0xc3])]); // 255 bytes, the last character cut
    const long = Buffer.concat([cut, Buffer.from([0xa9])]);
    const res = await onBoth('cut', (d) => [['create', join(d, cut)], ['create', join(d, long)], ['listdir', d], ['stat', join(d, cut)]]);
    expect(res.pagefs).toEqual(res.ext4);
    expect(res.pagefs).toEqual(['OK', 'ENAMETOOLONG', [cut.toString('hex')], [8, 1, 0]]);
  });

  it('unmounts cleanly with a clean log', async () => {
    await env.m.unmount();
    expectCleanLog(env.m);
  }, 120_000);
});
