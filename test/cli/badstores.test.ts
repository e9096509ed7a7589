/**
 * Bad input to the command line: every mistake gets one clear line on stderr that names
 * the path (or the bad value), a non-zero exit, never a stack trace, and changes nothing
 * (no mount left behind, no store claimed or rewritten, no file created).
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import Database from 'better-sqlite3';
import { mountFresh, makeStore, testDirPrefix, pagefs, run, forceClear, fuseMountAt, expectCleanLog, BIN, type Mounted, type RunResult } from '../helpers/mount.js';

/** One non-empty line on stderr, no stack trace, a failing exit, naming every `names`. */
function expectOneLineError(r: RunResult, ...names: string[]): void {
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines, `stderr: ${r.stderr}`).toHaveLength(1);
  expect(lines[0]).not.toMatch(STACK);
  for (const n of names) expect(lines[0]).toContain(n);
  expect(r.code, `exit status (stderr: ${r.stderr})`).toBeGreaterThanOrEqual(1);
}

/**
 * A stack trace or an uncaught error: "    at fn (file:1:2)", "at /file.js:1:2", "TypeError:",
 * "node:internal/...". (The plain /at .*\(/ would also match "format version 99 ... (it reads".)
 */
const STACK = /internal error|^\s+at |\bat .*\(.*:\d+:\d+\)|\bat (?:async )?(?:file:\/\/)?\/\S+:\d+:\d+|Error:|node:internal/m;

const sha = (p: string) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');

let dir = '';
/** Mountpoints a test pointed pagefs mount at: none may stay mounted, whatever happened. */
const mountpoints: string[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), testDirPrefix() + 'badstores-'));
});
afterEach(async () => {
  for (const mp of mountpoints.splice(0)) {
    if (fuseMountAt(mp)) {
      await run('umount', [mp], { timeoutMs: 15_000 });
      await forceClear(mp);
    }
  }
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** A fresh empty directory to mount on, registered for cleanup. */
function newMountpoint(name: string): string {
  const mp = path.join(dir, name);
  fs.mkdirSync(mp);
  mountpoints.push(mp);
  return mp;
}

/** pagefs mount with a short timeout: a mount that wrongly succeeds must not stall the test. */
function tryMount(store: string, mp: string, extra: string[] = []): Promise<RunResult> {
  if (!mountpoints.includes(mp)) mountpoints.push(mp);
  return pagefs(['mount', store, mp, ...extra], { timeoutMs: 20_000 });
}

describe('a store that is already mounted', () => {
  let m: Mounted;
  beforeAll(async () => { m = await mountFresh(); });
  afterAll(async () => { await m?.cleanup(); });

  it('a second mount of it is refused, and the first mount keeps working', async () => {
    const mp2 = newMountpoint('second-mount');
    const r = await tryMount(m.store, mp2);
    expectOneLineError(r, m.store);
    expect(r.stderr).toMatch(/already mounted/);
    expect(fuseMountAt(mp2)).toBeUndefined();
    await fsp.writeFile(path.join(m.mp, 'still-works'), 'yes');
    expect(await fsp.readFile(path.join(m.mp, 'still-works'), 'utf8')).toBe('yes');
  });

  it('a second mount in the foreground is refused too', async () => {
    const mp2 = newMountpoint('second-mount-fg');
    const r = await tryMount(m.store, mp2, ['--foreground']);
    expectOneLineError(r, m.store);
    expect(fuseMountAt(mp2)).toBeUndefined();
  });

  it('fsck of it is refused', async () => {
    const r = await pagefs(['fsck', m.store]);
    expectOneLineError(r, m.store);
    expect(r.stderr).toMatch(/mounted/);
    expect(r.stdout).toBe('');
  });

  it('the mount is unaffected: it unmounts cleanly with a clean log', async () => {
    expect(await fsp.readFile(path.join(m.mp, 'still-works'), 'utf8')).toBe('yes');
    await m.unmount();
    expectCleanLog(m);
    const r = await pagefs(['fsck', m.store]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });
});

describe('a store with an unknown format version', () => {
  let store = '';
  beforeAll(async () => {
    const d = path.join(dir, 'v99');
    fs.mkdirSync(d);
    store = await makeStore(d, { capacity: '16M' });
    const db = new Database(store);
    db.prepare('UPDATE superblock SET format_version = 99').run();
    db.close();
  });

  const unchanged = () => {
    const db = new Database(store, { readonly: true });
    try {
      return db.prepare('SELECT format_version, owner_pid FROM superblock').get();
    } finally {
      db.close();
    }
  };

  it('mount names the store and the version, mounts nothing and leaves the store as it was', async () => {
    const mp = newMountpoint('v99-mnt');
    const r = await tryMount(store, mp);
    expectOneLineError(r, store, '99');
    expect(fuseMountAt(mp)).toBeUndefined();
    expect(unchanged()).toEqual({ format_version: 99, owner_pid: null });
  });
  it('fsck names the store and the version', async () => {
    const r = await pagefs(['fsck', store]);
    expectOneLineError(r, store, '99');
    expect(unchanged()).toEqual({ format_version: 99, owner_pid: null });
  });
  it('stat names the store and the version', async () => {
    const r = await pagefs(['stat', store]);
    expectOneLineError(r, store, '99');
  });
});

describe('a file that is not a pagefs store', () => {
  const cases: [string, () => string][] = [
    ['random bytes', () => {
      const p = path.join(dir, 'random.bin');
      fs.writeFileSync(p, crypto.randomBytes(65536));
      return p;
    }],
    ['an SQLite database without pagefs tables', () => {
      const p = path.join(dir, 'foreign.db');
      const db = new Database(p);
      db.exec("CREATE TABLE foo (x INTEGER); INSERT INTO foo VALUES (42);");
      db.close();
      return p;
    }],
    ['an empty file', () => {
      const p = path.join(dir, 'empty.db');
      fs.writeFileSync(p, '');
      return p;
    }],
  ];
  for (const [what, make] of cases) {
    describe(what, () => {
      let p = '';
      let hash = '';
      beforeAll(() => {
        p = make();
        hash = sha(p);
      });
      it('mount refuses it, mounts nothing and leaves the file unchanged', async () => {
        const mp = newMountpoint(`notastore-${what.replace(/\W+/g, '-')}`);
        const r = await tryMount(p, mp);
        expectOneLineError(r, p);
        expect(r.stderr).toMatch(/not a pagefs store/);
        expect(fuseMountAt(mp)).toBeUndefined();
        expect(sha(p)).toBe(hash);
      });
      it('fsck refuses it and leaves the file unchanged', async () => {
        const r = await pagefs(['fsck', p]);
        expectOneLineError(r, p);
        expect(r.stderr).toMatch(/not a pagefs store/);
        expect(sha(p)).toBe(hash);
      });
      it('stat refuses it', async () => {
        const r = await pagefs(['stat', p]);
        expectOneLineError(r, p);
        expect(r.stderr).toMatch(/not a pagefs store/);
        expect(sha(p)).toBe(hash);
      });
    });
  }
});

describe('a missing store path', () => {
  let missing = '';
  beforeAll(() => { missing = path.join(dir, 'no-such-store.db'); });

  it('mount names it and creates nothing', async () => {
    const mp = newMountpoint('missing-store-mnt');
    const r = await tryMount(missing, mp);
    expectOneLineError(r, missing);
    expect(fuseMountAt(mp)).toBeUndefined();
    expect(fs.existsSync(missing)).toBe(false);
  });
  it('fsck names it and creates nothing', async () => {
    const r = await pagefs(['fsck', missing]);
    expectOneLineError(r, missing);
    expect(fs.existsSync(missing)).toBe(false);
  });
  it('stat names it and creates nothing', async () => {
    const r = await pagefs(['stat', missing]);
    expectOneLineError(r, missing);
    expect(fs.existsSync(missing)).toBe(false);
  });
});

/**
 * A store for the refused mounts of one describe block, made before its tests. None of
 * them may claim it: fsck, which refuses a claimed store, checks after them.
 */
function storeForRefusals(name: string): () => string {
  let store = '';
  beforeAll(async () => {
    const d = path.join(dir, name);
    fs.mkdirSync(d);
    store = await makeStore(d, { capacity: '16M' });
  });
  afterAll(async () => {
    const r = await pagefs(['fsck', store]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });
  return () => store;
}

describe('a mountpoint that is not an empty directory', () => {
  const theStore = storeForRefusals('mp-cases');

  it('a non-empty directory', async () => {
    const mp = newMountpoint('mp-nonempty');
    fs.writeFileSync(path.join(mp, 'keep'), 'data');
    const r = await tryMount(theStore(), mp);
    expectOneLineError(r, mp);
    expect(fuseMountAt(mp)).toBeUndefined();
    expect(fs.readFileSync(path.join(mp, 'keep'), 'utf8')).toBe('data');
  });
  it('a regular file', async () => {
    const mp = path.join(dir, 'mp-file');
    fs.writeFileSync(mp, 'content');
    mountpoints.push(mp);
    const r = await tryMount(theStore(), mp);
    expectOneLineError(r, mp);
    expect(fuseMountAt(mp)).toBeUndefined();
    expect(fs.readFileSync(mp, 'utf8')).toBe('content');
  });
  it('the temporary directory itself (TMPDIR), where the control socket would be hidden under the mount', async () => {
    const mp = newMountpoint('mp-tmpdir');
    const r = await run(process.execPath, [BIN, 'mount', theStore(), mp], { env: { ...process.env, TMPDIR: mp }, timeoutMs: 20_000 });
    expectOneLineError(r, mp, 'TMPDIR');
    expect(fuseMountAt(mp)).toBeUndefined();
    expect(fs.readdirSync(mp)).toEqual([]);
  });
  it('a missing path', async () => {
    const mp = path.join(dir, 'mp-missing');
    const r = await tryMount(theStore(), mp);
    expectOneLineError(r, mp);
    expect(fs.existsSync(mp)).toBe(false);
  });
});

describe('mount options out of range', () => {
  const theStore = storeForRefusals('opt-cases');
  for (const [opt, value] of [['--poll-us', '10001'], ['--poll-us', '-5'], ['--poll-us', '1e3'], ['--read-threads', '65'], ['--read-threads', 'two'], ['--dirty-expire', '3601'], ['--dirty-expire', '-1'], ['--dirty-expire', '2.5']]) {
    for (const fg of [false, true]) {
      it(`${opt} ${value}${fg ? ' --foreground' : ''}: refused, names the option and the value, mounts nothing`, async () => {
        const mp = newMountpoint(`mp-opt-${opt.slice(2)}-${value}-${fg}`);
        const r = await tryMount(theStore(), mp, [opt, value, ...(fg ? ['--foreground'] : [])]);
        expectOneLineError(r, opt, `'${value}'`);
        expect(fuseMountAt(mp)).toBeUndefined();
      });
    }
  }
});

describe('mkfs', () => {
  it('onto an existing store: refused, the store unchanged', async () => {
    const d = path.join(dir, 'mkfs-existing');
    fs.mkdirSync(d);
    const store = await makeStore(d, { capacity: '16M' });
    const hash = sha(store);
    const r = await pagefs(['mkfs', store, '--capacity', '32M']);
    expectOneLineError(r, store);
    expect(sha(store)).toBe(hash);
  });
  it('onto an existing regular file: refused, the file unchanged', async () => {
    const p = path.join(dir, 'mkfs-onto-file');
    fs.writeFileSync(p, 'precious');
    const r = await pagefs(['mkfs', p]);
    expectOneLineError(r, p);
    expect(fs.readFileSync(p, 'utf8')).toBe('precious');
  });
  it('onto an existing directory: refused', async () => {
    const p = path.join(dir, 'mkfs-onto-dir');
    fs.mkdirSync(p);
    const r = await pagefs(['mkfs', p]);
    expectOneLineError(r, p);
    expect(fs.readdirSync(p)).toEqual([]);
  });
  it('--block-size 1000: refused, names the value, creates nothing', async () => {
    const p = path.join(dir, 'mkfs-bs1000.db');
    const r = await pagefs(['mkfs', p, '--block-size', '1000']);
    expectOneLineError(r, '1000');
    expect(r.stderr).toMatch(/block.size/i);
    expect(fs.existsSync(p)).toBe(false);
  });
  it('--capacity junk: refused, names the value, creates nothing', async () => {
    const p = path.join(dir, 'mkfs-capjunk.db');
    const r = await pagefs(['mkfs', p, '--capacity', 'junk']);
    expectOneLineError(r, 'junk', '--capacity');
    expect(fs.existsSync(p)).toBe(false);
  });
});

describe('umount', () => {
  it('of an existing directory that is not mounted: refused, names it', async () => {
    const p = path.join(dir, 'umount-notmounted');
    fs.mkdirSync(p);
    const r = await pagefs(['umount', p]);
    expectOneLineError(r, p);
    expect(r.stderr).toMatch(/not mounted/);
  });
  it('of a missing path: refused, names it', async () => {
    const p = path.join(dir, 'umount-missing');
    const r = await pagefs(['umount', p]);
    expectOneLineError(r, p);
  });
  it('of a mount that is not pagefs: refused, and it stays mounted', async () => {
    const p = path.join(dir, 'umount-tmpfs');
    fs.mkdirSync(p);
    const mr = await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'pagefs-test-tmpfs', p], { timeoutMs: 15_000 });
    expect(mr.code, mr.stderr).toBe(0);
    try {
      const r = await pagefs(['umount', p]);
      expectOneLineError(r, p);
      expect(r.stderr).toMatch(/not a pagefs mount/);
      expect(fs.readFileSync('/proc/self/mounts', 'utf8')).toContain(` ${p} tmpfs `);
    } finally {
      await run('umount', [p], { timeoutMs: 15_000 });
    }
  });
});

describe('help and usage', () => {
  const OPTIONS: Record<string, string[]> = {
    '': ['--version', '--help', 'mkfs', 'mount', 'umount', 'fsck', 'stat'],
    mkfs: ['-b, --block-size', '-c, --capacity', '--help'],
    mount: ['-f, --foreground', '-o, --options', '--cache-size', '--read-threads', '--poll-us', '--dirty-expire', '--log', '--debug-locks', '--unsafe-no-invalidate-lock', '--inject-delay', '--help'],
    umount: ['-l, --lazy', '--help'],
    fsck: ['--help'],
    stat: ['--json', '--help'],
  };
  for (const [cmd, opts] of Object.entries(OPTIONS)) {
    it(`pagefs ${cmd ? cmd + ' ' : ''}--help exits 0 and mentions every option`, async () => {
      const r = await pagefs([...(cmd ? [cmd] : []), '--help']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toBe('');
      for (const o of opts) expect(r.stdout).toContain(o);
    });
  }
  it('an unknown command exits 2 and names it, without a stack trace', async () => {
    const r = await pagefs(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('frobnicate');
    expect(r.stderr).not.toMatch(STACK);
  });
  it('an unknown option to a subcommand exits 2 (bad usage) and creates nothing', async () => {
    const p = path.join(dir, 'usage-bogus.db');
    const r = await pagefs(['mkfs', p, '--bogus']);
    expect(r.stderr).toContain('--bogus');
    expect(r.stderr).not.toMatch(STACK);
    expect(fs.existsSync(p)).toBe(false);
    expect(r.code, 'pagefs --help: "Exit status: ... 2 on bad usage"').toBe(2);
  });
  it('a missing argument to a subcommand exits 2 (bad usage)', async () => {
    const r = await pagefs(['fsck']);
    expect(r.stderr).toContain('store');
    expect(r.stderr).not.toMatch(STACK);
    expect(r.code, 'pagefs --help: "Exit status: ... 2 on bad usage"').toBe(2);
  });
});
