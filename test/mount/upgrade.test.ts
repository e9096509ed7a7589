/**
 * A store made by an earlier build: the mount drops the indexes this build retired
 * (schema.ts, RETIRED_INDEXES), and the store stays clean and usable. New stores never
 * get them. A store of format version 1 has no count of mapped blocks in its inode rows:
 * the mount counts every file's map once and makes it version 2, and st_blocks stays
 * what it was.
 */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { mountFresh, makeStore, pagefs, testDirPrefix, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { pyOk, shOk, q } from './lib.js';

let m: Mounted | null = null;
let dir = '';
afterEach(async () => {
  await m?.cleanup();
  m = null;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  dir = '';
});

function indexNames(store: string): string[] {
  const db = new Database(store, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%' ORDER BY name").pluck().all() as string[]);
  } finally {
    db.close();
  }
}

describe('store upgrade at mount', () => {
  it('a new store has no inodes_orphans index', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), testDirPrefix() + 'upgrade-'));
    const store = await makeStore(dir);
    expect(indexNames(store)).toEqual(['dentries_by_ino', 'dentries_by_parent']);
  });

  it('the mount drops inodes_orphans from an older store, and the store stays clean', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), testDirPrefix() + 'upgrade-'));
    const store = await makeStore(dir);
    // What mkfs of the earlier build made, word for word.
    const db = new Database(store);
    db.exec('CREATE INDEX inodes_orphans ON inodes(nlink) WHERE nlink = 0');
    db.close();
    expect(indexNames(store)).toContain('inodes_orphans');
    m = await mountFresh({ store });
    expect(indexNames(store)).not.toContain('inodes_orphans');
    await pyOk('import os, sys; open(os.path.join(sys.argv[1], "f"), "w").write("x"); os.unlink(os.path.join(sys.argv[1], "f"))', [m.mp]);
    await m.unmount();
    const r = await pagefs(['fsck', store], { timeoutMs: 60_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/: clean \(/);
    expectCleanLog(m);
  }, 60_000);

  /** st_blocks of each name under the mount, by stat(1) (the kernel asks the daemon: a fresh mount has nothing cached). */
  const blocksOf = async (mp: string, names: string[]) =>
    (await shOk(`cd ${q(mp)} && stat -c '%n %b' ${names.join(' ')}`)).trim().split('\n');
  const superblock = (store: string) => {
    const db = new Database(store, { readonly: true, fileMustExist: true });
    try {
      return db.prepare('SELECT format_version FROM superblock').pluck().get();
    } finally {
      db.close();
    }
  };

  it('a version 1 store: fsck checks it as such, the mount counts every map into the inodes and makes it version 2', async () => {
    m = await mountFresh();
    const names = ['data', 'prealloc', 'copy', 'holes', 'empty'];
    // Written, preallocated (unwritten blocks count too), shared with another file, punched.
    await shOk(`cd ${q(m.mp)} && head -c 3000000 /dev/urandom > data && fallocate -l 1000000 prealloc && touch empty &&
      cp data holes && fallocate -p -o 4096 -l 1000000 holes`);
    await pyOk(`import os, sys
s = os.open(os.path.join(sys.argv[1], "data"), os.O_RDONLY)
d = os.open(os.path.join(sys.argv[1], "copy"), os.O_WRONLY | os.O_CREAT, 0o644)
n = 0
while n < 3000000:
    n += os.copy_file_range(s, d, 3000000 - n)`, [m.mp]);
    const before = await blocksOf(m.mp, names);
    expect(before).toEqual(['data 5864', 'prealloc 1960', 'copy 5864', 'holes 3912', 'empty 0']);
    await m.unmount();
    // What the earlier build's format was: no inodes.blocks, version 1.
    const db = new Database(m.store);
    db.exec('ALTER TABLE inodes DROP COLUMN blocks; UPDATE superblock SET format_version = 1');
    db.close();
    let r = await pagefs(['fsck', m.store], { timeoutMs: 60_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/note: store format version 1: the next mount upgrades it to version 2/);
    expect(r.stdout).toMatch(/: clean \(/);

    await m.remount();
    expect(superblock(m.store)).toBe(2);
    expect(await blocksOf(m.mp, names)).toEqual(before);
    // The counts are kept from here on: more blocks, then fewer.
    await shOk(`cd ${q(m.mp)} && head -c 8192 /dev/urandom >> empty && fallocate -p -o 0 -l 1000000 prealloc`);
    await m.unmount();
    r = await pagefs(['fsck', m.store], { timeoutMs: 60_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/format version/);
    expect(r.stdout).toMatch(/: clean \(/);
    await m.remount();
    expect(await blocksOf(m.mp, names)).toEqual(['data 5864', 'prealloc 8', 'copy 5864', 'holes 3912', 'empty 16']);
    await m.unmount();
    expectCleanLog(m);
  }, 120_000);

  it('fsck finds an inode whose count of mapped blocks is wrong', async () => {
    m = await mountFresh();
    await shOk(`cd ${q(m.mp)} && head -c 40960 /dev/urandom > f`);
    await m.unmount();
    const db = new Database(m.store);
    const ino = db.prepare("SELECT ino FROM dentries WHERE name = CAST('f' AS BLOB)").pluck().get();
    expect(db.prepare('SELECT blocks FROM inodes WHERE ino = ?').pluck().get(ino)).toBe(10);
    db.prepare('UPDATE inodes SET blocks = 11 WHERE ino = ?').run(ino);
    db.close();
    const r = await pagefs(['fsck', m.store], { timeoutMs: 60_000 });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toContain(`problem: inode ${ino} counts 11 mapped block(s) but maps 10`);
  }, 60_000);
});
