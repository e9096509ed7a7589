/**
 * Directory listings through the real mount, each run the same way on a loop-mounted
 * ext4 image: "." and ".." name the right inodes, a 100,000-entry directory lists
 * completely with no duplicates, and a listing made with small getdents64 buffers or
 * with telldir/seekdir while another process adds, removes and renames entries shows
 * every entry that exists throughout exactly once and resumes where it was told to.
 * The listing program is our own C (dirlist.c), compiled here with cc.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mountFresh, run, pagefs, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { mountExt4, type Ext4 } from '../helpers/ext4.js';
import { ok, q, shOk } from './lib.js';

const SRC = path.join(path.dirname(fileURLToPath(import.meta.url)), 'dirlist.c');
const BIG = 100_000;

let m: Mounted;
let ext4: Ext4;
let bin = '';
let binDir = '';
beforeAll(async () => {
  binDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pagefs-dirlist-'));
  bin = path.join(binDir, 'dirlist');
  ok(await run('cc', ['-O2', '-Wall', '-Werror', '-o', bin, SRC], { timeoutMs: 60_000 }), 'cc dirlist.c');
  // Enough inodes for the big directory (one fifo per entry).
  [m, ext4] = await Promise.all([mountFresh(), mountExt4({ size: '256M', mkfsArgs: ['-N', String(BIG + 20_000)] })]);
}, 120_000);
afterAll(async () => {
  await m?.cleanup();
  await ext4?.cleanup();
  if (binDir) fs.rmSync(binDir, { recursive: true, force: true });
}, 90_000);

type Where = 'pagefs' | 'ext4';
const roots = (): [Where, string][] => [['pagefs', m.mp], ['ext4', ext4.mp]];

async function dirlist(args: string[], timeoutMs = 120_000): Promise<string> {
  return ok(await run(bin, args, { timeoutMs }), `dirlist ${args.join(' ')}`).trim();
}

/** dirlist count: the fields of its summary line as numbers. */
async function count(dir: string, bufsize: number): Promise<Record<string, number>> {
  const line = await dirlist(['count', dir, String(bufsize)], 300_000);
  return Object.fromEntries(line.split(' ').map((kv) => { const [k, v] = kv.split('='); return [k, Number(v)]; }));
}

const ino = async (p: string) => (await fsp.stat(p)).ino;

describe('readdir: "." and ".."', () => {
  it('carry the inode numbers stat gives, at the root, below it, and after a move', async () => {
    const res = {} as Record<Where, string[]>;
    for (const [where, root] of roots()) {
      const out: string[] = [];
      const r = await count(root, 4096);
      out.push(`root: . ${r.dot_ino === await ino(root)} .. is itself ${r.dotdot_ino === r.dot_ino}`);
      const a = path.join(root, 'dots-a');
      const b = path.join(a, 'b');
      const c = path.join(root, 'dots-c');
      await fsp.mkdir(b, { recursive: true });
      await fsp.mkdir(c);
      let s = await count(b, 4096);
      out.push(`a/b: . ${s.dot_ino === await ino(b)} .. ${s.dotdot_ino === await ino(a)} entries ${s.entries}`);
      s = await count(a, 64);
      out.push(`a: . ${s.dot_ino === await ino(a)} .. ${s.dotdot_ino === await ino(root)} entries ${s.entries}`);
      await fsp.rename(b, path.join(c, 'b'));
      s = await count(path.join(c, 'b'), 4096);
      out.push(`moved to c/b: .. ${s.dotdot_ino === await ino(c)}`);
      res[where] = out;
    }
    expect(res.pagefs).toEqual([
      'root: . true .. is itself true',
      'a/b: . true .. true entries 0',
      'a: . true .. true entries 1',
      'moved to c/b: .. true',
    ]);
    expect(res.pagefs).toEqual(res.ext4);
  });
});

describe('readdir: a directory of 100,000 entries', () => {
  it('lists completely with no duplicates, through ls -f and 256-byte getdents64 buffers', async () => {
    const res = {} as Record<Where, string[]>;
    for (const [where, root] of roots()) {
      const dir = path.join(root, 'big');
      await fsp.mkdir(dir);
      const t0 = Date.now();
      // Four creators at once (two FUSE requests per fifo): the daemon, not the client, sets the pace.
      await Promise.all(['a', 'b', 'c', 'd'].map((p) => dirlist(['create', dir, p, String(BIG / 4)], 600_000)));
      const made = Date.now() - t0;
      const ls = await shOk(`ls -f ${q(dir)} | wc -l; ls -f ${q(dir)} | sort | uniq -d | wc -l`, { timeoutMs: 300_000 });
      const [lsCount, lsDups] = ls.trim().split('\n').map(Number);
      const small = await count(dir, 256);
      const large = await count(dir, 65536);
      console.log(`${where}: ${BIG} entries made in ${made} ms; getdents64 calls: ${small.calls} (256 B), ${large.calls} (64 KiB)`);
      res[where] = [
        `ls -f: ${lsCount} names, ${lsDups} duplicated`,
        `getdents64(256): ${small.entries} entries, ${small.dups} duplicated, . ${small.dot} .. ${small.dotdot}`,
        `getdents64(64K): ${large.entries} entries, ${large.dups} duplicated, . ${large.dot} .. ${large.dotdot}`,
      ];
    }
    expect(res.pagefs).toEqual([
      `ls -f: ${BIG + 2} names, 0 duplicated`,
      `getdents64(256): ${BIG} entries, 0 duplicated, . 1 .. 1`,
      `getdents64(64K): ${BIG} entries, 0 duplicated, . 1 .. 1`,
    ]);
    expect(res.pagefs).toEqual(res.ext4);
  }, 1_200_000);
});

describe('readdir while another process changes the directory', () => {
  it('small getdents64 buffers: every entry present throughout listed exactly once; lseek to a d_off resumes there', async () => {
    for (const [where, root] of roots()) {
      const dir = path.join(root, 'churn');
      await fsp.mkdir(dir);
      expect(await dirlist(['churn', dir, '3000', '256'], 300_000), where).toMatch(/^ok stable=3000 /);
    }
  }, 600_000);

  it('opendir/readdir/telldir/seekdir: every entry present throughout listed exactly once; seekdir resumes there', async () => {
    for (const [where, root] of roots()) {
      const dir = path.join(root, 'seek');
      await fsp.mkdir(dir);
      expect(await dirlist(['seek', dir, '3000'], 300_000), where).toMatch(/^ok stable=3000 listed=\d+ marks=\d+/);
    }
  }, 600_000);

  it('leaves a clean store', async () => {
    await m.unmount();
    expectCleanLog(m);
    const r = await pagefs(['fsck', m.store], { timeoutMs: 300_000 });
    expect(r.stdout + r.stderr).toMatch(/clean/);
    await m.remount();
  }, 600_000);
});
