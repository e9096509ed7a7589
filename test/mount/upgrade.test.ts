/**
 * A store made by an earlier build: the mount drops the indexes this build retired
 * (schema.ts, RETIRED_INDEXES), and the store stays clean and usable. New stores never
 * get them.
 */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { mountFresh, makeStore, pagefs, testDirPrefix, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { pyOk } from './lib.js';

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
});
