/**
 * Hostile trees through the real mount, each case made on pagefs and on a loop-mounted
 * ext4: a directory chain 1,000 deep (made, walked and removed with relative paths and
 * chdir in a child process; its full path is longer than PATH_MAX and gives
 * ENAMETOOLONG), renames of a directory into its own subtree (EINVAL) at any depth, and
 * 10,000 hard links to one file (nlink right, also after a remount; unlinking them all
 * frees the inode and its blocks, per statfs).
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { expectCleanLog } from '../helpers/mount.js';
import { type Where } from '../helpers/ext4.js';
import { fcParams } from '../helpers/fc.js';
import { pyCalls, expectDaemonWell, mountBothForFile, type Call } from './hostile-lib.js';
import { eventually } from './lib.js';

const env = mountBothForFile();

const sides = (): [Where, string][] => [['pagefs', env.m.mp], ['ext4', env.ext4.mp]];

/** Runs `calls(dir)` with cwd `dir`, a fresh directory `name` on each side; each side's answers. */
async function onBoth(name: string, calls: (dir: string) => Call[]): Promise<Record<Where, unknown[]>> {
  for (const [, root] of sides()) await fsp.mkdir(path.join(root, name));
  return onBothExisting(name, calls);
}

/** Like onBoth, in the existing directory `name`. */
async function onBothExisting(name: string, calls: Call[] | ((dir: string) => Call[])): Promise<Record<Where, unknown[]>> {
  const out = {} as Record<Where, unknown[]>;
  for (const [where, root] of sides()) {
    const dir = path.join(root, name);
    out[where] = await pyCalls(typeof calls === 'function' ? calls(dir) : calls, { cwd: dir, timeoutMs: 300_000 });
  }
  return out;
}

describe('deep trees', () => {
  const DEPTH = 1000;
  const N = 'level-0123'; // 10 bytes: the chain's path is 11,000 bytes, past PATH_MAX (4096)
  const up = (n: number) => '../'.repeat(n);

  it(`a chain ${DEPTH} deep: made with chdir, walked, its full path ENAMETOOLONG, renamed into itself EINVAL, removed`, async () => {
    const res = await onBoth('deep', (dir) => [
      ['chdir_mkdirs', DEPTH, N], // cwd: the bottom
      ['create', 'leaf'], ['stat', 'leaf'], ['listdir', '.'],
      ['stat', path.join(dir, ...Array(DEPTH).fill(N), 'leaf')], // the full path
      ['stat', up(DEPTH - 1) + N], // the top, from the bottom (3,007 bytes)
      ['rename', up(DEPTH) + N, 'inside'], // the top into the bottom
      ['rename', up(DEPTH - 500) + N, 'inside'], // the middle into the bottom
      ['rename', up(1) + N, 'inside'], // the bottom into itself
      ['rename', 'leaf', up(DEPTH) + 'leaf-moved-up'], // a file to the top: fine
      ['chdir', dir], ['listdir', '.'], ['stat', 'leaf-moved-up'],
      ['chdir_rmdirs', DEPTH, N], ['listdir', '.'],
    ]);
    expect(res.pagefs).toEqual(res.ext4);
    expect(res.pagefs).toEqual(['OK', 'OK', [8, 1, 0], ['6c656166'], 'ENAMETOOLONG', [4, 3, null], 'EINVAL', 'EINVAL', 'EINVAL', 'OK',
      'OK', [Buffer.from('leaf-moved-up').toString('hex'), Buffer.from(N).toString('hex')].sort(), [8, 1, 0], 'OK', [Buffer.from('leaf-moved-up').toString('hex')]]);
    await expectDaemonWell(env.m);
  }, 600_000);

  it(`the chain survives a remount and is walked from the store`, async () => {
    const dir = path.join(env.m.mp, 'deep-remount');
    await fsp.mkdir(dir);
    expect(await pyCalls([['chdir_mkdirs', DEPTH, N], ['create', 'leaf']], { cwd: dir, timeoutMs: 300_000 })).toEqual(['OK', 'OK']);
    await env.m.unmount();
    expectCleanLog(env.m);
    await env.m.remount();
    const walk: Call[] = [...Array(DEPTH)].map((): Call => ['chdir', N]);
    const out = await pyCalls([...walk, ['stat', 'leaf'], ['unlink', 'leaf'], ['chdir', dir], ['chdir_rmdirs', DEPTH, N], ['listdir', '.']], { cwd: dir, timeoutMs: 300_000 });
    expect(out.slice(DEPTH)).toEqual([[8, 1, 0], 'OK', 'OK', 'OK', []]);
    await expectDaemonWell(env.m);
  }, 600_000);
});

let runNo = 0;

describe('rename of a directory into its own subtree', () => {
  it('EINVAL at every depth, and the tree unchanged; a descendant moved up is fine (fast-check, as ext4)', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 8 }), fc.nat(), fc.nat(), fc.boolean(), async (depth, a, b, exchange) => {
      const i = a % depth;
      const j = i + (b % (depth - i)); // i <= j: level j is level i or below it
      const chain = (k: number) => ['t', ...[...Array(k + 1)].map((_, n) => `d${n}`)].join('/');
      const res = await onBoth(`sub${runNo++}`, () => [
        ['mkdir', 't'], ...[...Array(depth)].map((_, k): Call => ['mkdir', chain(k)]),
        ['rename', chain(i), `${chain(j)}/moved`],
        // RENAME_EXCHANGE is not reachable from python's os; rename onto an existing empty directory is:
        ...(exchange ? [['mkdir', `${chain(j)}/empty`] as Call, ['rename', chain(i), `${chain(j)}/empty`] as Call] : []),
        ['stat', chain(depth - 1)],
        ...(j > i ? [['rename', chain(j), 't/up'] as Call, ['listdir', 't'] as Call] : []),
      ]);
      expect(res.pagefs).toEqual(res.ext4);
      expect(res.pagefs[depth + 1]).toBe('EINVAL');
      await expectDaemonWell(env.m);
    }), fcParams<[number, number, number, boolean]>(12));
  }, 600_000);
});

describe('many hard links', () => {
  const LINKS = 10_000;
  const DATA = 1 << 20;

  it(`${LINKS} links to one file: nlink right on both, also after a remount; unlinking all frees the inode and its blocks`, async () => {
    for (const [, root] of sides()) await fsp.mkdir(path.join(root, 'links'));
    const before = await fsp.statfs(env.m.mp);
    const res = await onBothExisting('links', () => [
      ['write', 'f', Buffer.alloc(DATA, 0x5a)], ['mkdir', 'l'],
      ['links', LINKS, 'f', 'l/link'], ['stat', 'f'], ['stat', `l/link${LINKS - 1}`], ['listdir', '.'],
    ]);
    expect(res.pagefs).toEqual(res.ext4);
    expect(res.pagefs.slice(0, 5)).toEqual(['OK', 'OK', 'OK', [8, LINKS + 1, DATA], [8, LINKS + 1, DATA]]);

    await env.m.unmount();
    expectCleanLog(env.m);
    await env.m.remount();
    await env.ext4.remount();
    const again = await onBothExisting('links', [['stat', 'f'], ['stat', 'l/link0'], ['read', 'l/link5000']]);
    expect(again.pagefs).toEqual(again.ext4);
    expect(again.pagefs.slice(0, 2)).toEqual([[8, LINKS + 1, DATA], [8, LINKS + 1, DATA]]);
    expect(again.pagefs[2]).toBe(Buffer.alloc(DATA, 0x5a).toString('hex'));

    const gone = await onBothExisting('links', [['unlinks', LINKS, 'l/link'], ['stat', 'f'], ['unlink', 'f'], ['rmdir', 'l'], ['listdir', '.']]);
    expect(gone.pagefs).toEqual(gone.ext4);
    expect(gone.pagefs).toEqual(['OK', [8, 1, DATA], 'OK', 'OK', []]);
    // The kernel forgets the inode (FORGET) a moment after the last unlink; then its blocks and its inode are free.
    const freed = await eventually(async () => {
      const s = await fsp.statfs(env.m.mp);
      return s.bfree === before.bfree && s.ffree === before.ffree;
    }, 30_000);
    const after = await fsp.statfs(env.m.mp);
    expect({ freed, bfree: after.bfree, ffree: after.ffree }).toEqual({ freed: true, bfree: before.bfree, ffree: before.ffree });
    await expectDaemonWell(env.m);
  }, 900_000);

  it('unmounts cleanly with a clean log', async () => {
    await env.m.unmount();
    expectCleanLog(env.m);
  }, 120_000);
});

