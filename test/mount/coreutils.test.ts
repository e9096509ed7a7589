/**
 * Real programs through the mount: coreutils, tar, git, python's mmap. Each test works in
 * its own directory of one shared mount and checks what the programs produced (contents,
 * inode numbers, link counts, modes, times), not only their exit codes.
 */
import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach } from 'vitest';
import path from 'node:path';
import fsp from 'node:fs/promises';
import { mountFresh, sh, run, expectCleanLog, ROOT, type Mounted } from '../helpers/mount.js';
import { ok, shOk, pyOk, q, sha256, dropCaches, statfs, eventually, expectNoMountUnder, logErrorsSince } from './lib.js';

let m: Mounted;
let logMark = 0;
const mp = (...p: string[]) => path.join(m.mp, ...p);
const out = (...p: string[]) => path.join(m.dir, ...p);
const UTC = { ...process.env, TZ: 'UTC', LC_ALL: 'C' };

/** `stat -c FORMAT` of one path, trimmed. */
async function st(fmt: string, p: string, extra = ''): Promise<string> {
  return (await shOk(`stat ${extra} -c ${q(fmt)} ${q(p)}`, { timeoutMs: 30_000, env: UTC })).trim();
}

async function remount(): Promise<void> {
  await m.unmount();
  await m.remount();
}

beforeAll(async () => {
  m = await mountFresh({ capacity: '4G' });
}, 60_000);

afterAll(async () => {
  if (!m) return;
  try {
    if (process.env.PAGEFS_TEST_LOG) await fsp.writeFile(process.env.PAGEFS_TEST_LOG, m.log());
    expectCleanLog(m);
  } finally {
    await m.cleanup();
    await expectNoMountUnder(m.dir);
  }
}, 120_000);

beforeEach(() => {
  logMark = m.log().length;
});

afterEach(() => {
  expect(logErrorsSince(m.log(), logMark), 'daemon log errors during this test').toEqual([]);
});

describe('coreutils through the mount', () => {
  it('cp copies a file in, within the mount (copy_file_range) and over a larger file', async () => {
    await fsp.mkdir(mp('cp'));
    await shOk(`head -c 3000001 /dev/urandom > ${q(out('cp-src.bin'))}; head -c 777 /dev/urandom > ${q(out('cp-small.bin'))}`);
    await shOk(`cp ${q(out('cp-src.bin'))} ${q(mp('cp', 'a.bin'))}`);
    await shOk(`cmp ${q(out('cp-src.bin'))} ${q(mp('cp', 'a.bin'))}`);
    await shOk(`cp ${q(mp('cp', 'a.bin'))} ${q(mp('cp', 'b.bin'))}`);
    await shOk(`cmp ${q(out('cp-src.bin'))} ${q(mp('cp', 'b.bin'))}`);
    expect(await st('%s', mp('cp', 'b.bin'))).toBe('3000001');
    // O_TRUNC of an existing, larger destination: nothing of the old content may remain.
    await shOk(`cp ${q(out('cp-small.bin'))} ${q(mp('cp', 'b.bin'))}`);
    expect(await st('%s', mp('cp', 'b.bin'))).toBe('777');
    await dropCaches();
    await shOk(`cmp ${q(out('cp-src.bin'))} ${q(mp('cp', 'a.bin'))}`);
    await shOk(`cmp ${q(out('cp-small.bin'))} ${q(mp('cp', 'b.bin'))}`);
    // Changing the copy must not change the original (shared blocks are copied on write).
    await shOk(`cp ${q(mp('cp', 'a.bin'))} ${q(mp('cp', 'c.bin'))} && printf XYZ | dd of=${q(mp('cp', 'c.bin'))} bs=1 seek=8192 conv=notrunc status=none`);
    await shOk(`cmp ${q(out('cp-src.bin'))} ${q(mp('cp', 'a.bin'))}`);
    expect(await shOk(`dd if=${q(mp('cp', 'c.bin'))} bs=1 skip=8192 count=3 status=none`)).toBe('XYZ');
  });

  it('cp -r copies a tree in and within the mount; diff -r finds no difference', async () => {
    const srcTree = path.join(ROOT, 'node_modules', 'better-sqlite3');
    await shOk(`cp -r ${q(srcTree)} ${q(mp('tree1'))}`);
    ok(await sh(`diff -r ${q(srcTree)} ${q(mp('tree1'))}`, { timeoutMs: 60_000 }), 'diff -r source tree1');
    await shOk(`cp -a ${q(mp('tree1'))} ${q(mp('tree2'))}`);
    ok(await sh(`diff -r ${q(mp('tree1'))} ${q(mp('tree2'))}`, { timeoutMs: 60_000 }), 'diff -r tree1 tree2');
    // cp -a keeps modes and nanosecond mtimes.
    const listing = (d: string) => shOk(`cd ${q(d)} && find . -printf '%P|%y|%m|%s|%T@|%l\\n' | sort`, { env: UTC });
    const l1 = await listing(mp('tree1'));
    expect(l1.split('\n').length).toBeGreaterThan(20);
    expect(await listing(mp('tree2'))).toBe(l1);
    await dropCaches();
    ok(await sh(`diff -r ${q(srcTree)} ${q(mp('tree2'))}`, { timeoutMs: 60_000 }), 'diff -r source tree2 after drop_caches');
  });

  it('mv renames a file (same inode, old name gone)', async () => {
    await fsp.mkdir(mp('mv1'));
    await shOk(`echo hello-mv > ${q(mp('mv1', 'a'))}`);
    const ino = await st('%i', mp('mv1', 'a'));
    await shOk(`mv ${q(mp('mv1', 'a'))} ${q(mp('mv1', 'b'))}`);
    expect((await sh(`test -e ${q(mp('mv1', 'a'))}`)).code).toBe(1);
    expect(await shOk(`cat ${q(mp('mv1', 'b'))}`)).toBe('hello-mv\n');
    expect(await st('%i %h', mp('mv1', 'b'))).toBe(`${ino} 1`);
    // mv over an existing file replaces it.
    await shOk(`echo other > ${q(mp('mv1', 'c'))} && mv ${q(mp('mv1', 'b'))} ${q(mp('mv1', 'c'))}`);
    expect(await shOk(`ls -A ${q(mp('mv1'))}`)).toBe('c\n');
    expect(await shOk(`cat ${q(mp('mv1', 'c'))}`)).toBe('hello-mv\n');
    expect(await st('%i', mp('mv1', 'c'))).toBe(ino);
  });

  it('mv renames a directory with its contents', async () => {
    await shOk(`mkdir -p ${q(mp('mv2', 'd1', 'sub', 'deep'))} && echo x1 > ${q(mp('mv2', 'd1', 'f'))} && echo x2 > ${q(mp('mv2', 'd1', 'sub', 'deep', 'g'))}`);
    const before = await shOk(`cd ${q(mp('mv2', 'd1'))} && find . -printf '%P|%y|%i|%n|%s\\n' | sort`);
    const ino = await st('%i', mp('mv2', 'd1'));
    await shOk(`mv ${q(mp('mv2', 'd1'))} ${q(mp('mv2', 'd2'))}`);
    expect(await shOk(`ls -A ${q(mp('mv2'))}`)).toBe('d2\n');
    expect(await st('%i', mp('mv2', 'd2'))).toBe(ino);
    expect(await shOk(`cd ${q(mp('mv2', 'd2'))} && find . -printf '%P|%y|%i|%n|%s\\n' | sort`)).toBe(before);
    expect(await shOk(`cat ${q(mp('mv2', 'd2', 'sub', 'deep', 'g'))}`)).toBe('x2\n');
    expect(await shOk(`cd ${q(mp('mv2', 'd2', 'sub', 'deep'))} && cd ../.. && pwd -P`)).toBe(mp('mv2', 'd2') + '\n');
    expect(await st('%h', mp('mv2'))).toBe('3');
  });

  it('mv moves files and directories across directories (link counts follow)', async () => {
    await shOk(`mkdir -p ${q(mp('mv3', 'p1', 'dir', 'inner'))} ${q(mp('mv3', 'p2'))} && head -c 100000 /dev/urandom > ${q(out('mv3.bin'))}`);
    await shOk(`cp ${q(out('mv3.bin'))} ${q(mp('mv3', 'p1', 'file'))}`);
    expect(await st('%h', mp('mv3', 'p1'))).toBe('3');
    expect(await st('%h', mp('mv3', 'p2'))).toBe('2');
    const fino = await st('%i', mp('mv3', 'p1', 'file'));
    await shOk(`mv ${q(mp('mv3', 'p1', 'file'))} ${q(mp('mv3', 'p2', 'file2'))}`);
    await shOk(`mv ${q(mp('mv3', 'p1', 'dir'))} ${q(mp('mv3', 'p2'))}/`);
    expect(await shOk(`ls -A ${q(mp('mv3', 'p1'))}`)).toBe('');
    expect(await shOk(`ls -A ${q(mp('mv3', 'p2'))}`)).toBe('dir\nfile2\n');
    expect(await st('%i', mp('mv3', 'p2', 'file2'))).toBe(fino);
    await shOk(`cmp ${q(out('mv3.bin'))} ${q(mp('mv3', 'p2', 'file2'))}`);
    expect(await st('%h', mp('mv3', 'p1'))).toBe('2');
    expect(await st('%h', mp('mv3', 'p2'))).toBe('3');
    expect(await shOk(`cd ${q(mp('mv3', 'p2', 'dir', 'inner'))} && cd ../.. && pwd -P`)).toBe(mp('mv3', 'p2') + '\n');
    await dropCaches();
    expect(await st('%h', mp('mv3', 'p1'))).toBe('2');
    expect(await st('%h', mp('mv3', 'p2'))).toBe('3');
    // rmdir of the emptied source now works; it must be empty.
    await shOk(`rmdir ${q(mp('mv3', 'p1'))}`);
  });

  it('ln makes a hard link: same inode, link count 2, survives unlink of the other name', async () => {
    await fsp.mkdir(mp('ln'));
    await shOk(`echo first > ${q(mp('ln', 'f'))} && ln ${q(mp('ln', 'f'))} ${q(mp('ln', 'g'))}`);
    const [fi, fh] = (await st('%i %h', mp('ln', 'f'))).split(' ');
    expect(await st('%i %h', mp('ln', 'g'))).toBe(`${fi} 2`);
    expect(fh).toBe('2');
    await shOk(`echo second >> ${q(mp('ln', 'g'))}`);
    expect(await shOk(`cat ${q(mp('ln', 'f'))}`)).toBe('first\nsecond\n');
    await shOk(`rm ${q(mp('ln', 'f'))}`);
    expect(await st('%i %h', mp('ln', 'g'))).toBe(`${fi} 1`);
    expect(await shOk(`cat ${q(mp('ln', 'g'))}`)).toBe('first\nsecond\n');
    await dropCaches();
    expect(await st('%i %h', mp('ln', 'g'))).toBe(`${fi} 1`);
    expect(await shOk(`cat ${q(mp('ln', 'g'))}`)).toBe('first\nsecond\n');
    // A link into another directory, then the original name removed there too.
    await shOk(`mkdir ${q(mp('ln', 'sub'))} && ln ${q(mp('ln', 'g'))} ${q(mp('ln', 'sub', 'h'))} && rm ${q(mp('ln', 'g'))}`);
    expect(await st('%i %h', mp('ln', 'sub', 'h'))).toBe(`${fi} 1`);
    expect(await shOk(`cat ${q(mp('ln', 'sub', 'h'))}`)).toBe('first\nsecond\n');
    // Hard links to directories are refused.
    const r = await sh(`ln ${q(mp('ln', 'sub'))} ${q(mp('ln', 'sub2'))}`);
    expect(r.code).not.toBe(0);
  });

  it('ln -s makes symlinks: readlink, follow, dangling, to a directory', async () => {
    await fsp.mkdir(mp('sym'));
    await shOk(`echo target-data > ${q(mp('sym', 'target.txt'))} && mkdir ${q(mp('sym', 'dir'))} && echo in-dir > ${q(mp('sym', 'dir', 'x'))}`);
    await shOk(`cd ${q(mp('sym'))} && ln -s target.txt rel && ln -s ${q(mp('sym', 'target.txt'))} abs && ln -s nowhere dangling && ln -s dir dlink`);
    expect(await shOk(`readlink ${q(mp('sym', 'rel'))}`)).toBe('target.txt\n');
    expect(await shOk(`readlink ${q(mp('sym', 'abs'))}`)).toBe(mp('sym', 'target.txt') + '\n');
    expect(await shOk(`readlink ${q(mp('sym', 'dangling'))}`)).toBe('nowhere\n');
    expect(await shOk(`cat ${q(mp('sym', 'rel'))} ${q(mp('sym', 'abs'))}`)).toBe('target-data\ntarget-data\n');
    expect(await st('%F|%s', mp('sym', 'rel'))).toBe(`symbolic link|${'target.txt'.length}`);
    expect(await st('%F|%s|%i', mp('sym', 'rel'), '-L')).toBe(`regular file|12|${await st('%i', mp('sym', 'target.txt'))}`);
    expect(await shOk(`readlink -f ${q(mp('sym', 'rel'))}`)).toBe(mp('sym', 'target.txt') + '\n');
    const d = await sh(`cat ${q(mp('sym', 'dangling'))}`);
    expect(d.code).not.toBe(0);
    expect(d.stderr).toMatch(/No such file or directory/);
    expect(await shOk(`ls ${q(mp('sym', 'dlink'))}/`)).toBe('x\n');
    expect(await shOk(`cat ${q(mp('sym', 'dlink', 'x'))}`)).toBe('in-dir\n');
    // A long target (near PATH_MAX) survives as is.
    const long = 'a/'.repeat(1500) + 'end';
    await shOk(`ln -s ${q(long)} ${q(mp('sym', 'long'))}`);
    expect(await shOk(`readlink ${q(mp('sym', 'long'))}`)).toBe(long + '\n');
    await dropCaches();
    expect(await shOk(`readlink ${q(mp('sym', 'rel'))} ${q(mp('sym', 'long'))}`)).toBe(`target.txt\n${long}\n`);
    // Removing the link leaves the target.
    await shOk(`rm ${q(mp('sym', 'rel'))}`);
    expect(await shOk(`cat ${q(mp('sym', 'target.txt'))}`)).toBe('target-data\n');
  });

  it('rm -r removes a deep tree and frees its blocks', async () => {
    const before = await statfs(m.mp);
    // 100 levels, each with three small files and one 64 KiB file.
    await shOk(`cd ${q(m.mp)} && mkdir deep && cd deep && for i in $(seq -w 1 100); do mkdir L$i && cd L$i && for j in 1 2 3; do echo $i-$j > f$j; done && head -c 65536 /dev/urandom > big; done`, { timeoutMs: 120_000 });
    expect((await shOk(`find ${q(mp('deep'))} | wc -l`)).trim()).toBe(String(1 + 100 * 5));
    const full = await statfs(m.mp);
    expect(full.usedBytes - before.usedBytes).toBeGreaterThanOrEqual(100 * (65536 + 3 * 4096));
    await shOk(`rm -r ${q(mp('deep'))}`, { timeoutMs: 120_000 });
    expect((await sh(`test -e ${q(mp('deep'))}`)).code).toBe(1);
    // Blocks come back once the kernel forgets the unlinked inodes.
    let after = full;
    const freed = await eventually(async () => {
      after = await statfs(m.mp);
      return after.usedBytes <= before.usedBytes;
    }, 15_000, 200);
    expect(freed, `used before ${before.usedBytes}, with tree ${full.usedBytes}, after rm ${after.usedBytes}`).toBe(true);
  });

  it('mkdir -p makes every missing level and accepts existing ones', async () => {
    await shOk(`mkdir -p ${q(mp('mk', 'a', 'b', 'c', 'd', 'e', 'f'))}`);
    expect(await shOk(`cd ${q(mp('mk'))} && find . -printf '%P|%y|%n\\n' | sort`, { env: UTC })).toBe(
      ['|d|3', 'a|d|3', 'a/b|d|3', 'a/b/c|d|3', 'a/b/c/d|d|3', 'a/b/c/d/e|d|3', 'a/b/c/d/e/f|d|2'].sort().join('\n') + '\n');
    await shOk(`mkdir -p ${q(mp('mk', 'a', 'b', 'c'))}`);
    await shOk(`mkdir -p -m 700 ${q(mp('mk', 'a', 'x', 'y'))}`);
    expect(await st('%a', mp('mk', 'a', 'x', 'y'))).toBe('700');
    const r = await sh(`mkdir ${q(mp('mk', 'a'))}`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/File exists/);
    expect(await st('%h', mp('mk', 'a'))).toBe('4');
    const f = await sh(`echo > ${q(mp('mk', 'file'))} && mkdir -p ${q(mp('mk', 'file', 'sub'))}`);
    expect(f.code).not.toBe(0);
    expect(f.stderr).toMatch(/Not a directory/);
  });

  it("touch -d sets nanosecond atime and mtime (stat shows them)", async () => {
    await fsp.mkdir(mp('touch'));
    const T = '2001-02-03 04:05:06.123456789';
    await shOk(`touch -d ${q(T)} ${q(mp('touch', 'f'))}`, { env: UTC });
    expect(await st('%y|%x', mp('touch', 'f'))).toBe(`${T} +0000|${T} +0000`);
    // Only mtime, only atime.
    const M = '1999-12-31 23:59:59.999999999';
    await shOk(`touch -m -d ${q(M)} ${q(mp('touch', 'f'))}`, { env: UTC });
    expect(await st('%y|%x', mp('touch', 'f'))).toBe(`${M} +0000|${T} +0000`);
    const A = '2030-01-01 00:00:00.000000001';
    await shOk(`touch -a -d ${q(A)} ${q(mp('touch', 'f'))}`, { env: UTC });
    expect(await st('%y|%x', mp('touch', 'f'))).toBe(`${M} +0000|${A} +0000`);
    // A directory, and a symlink itself (touch -h).
    await shOk(`mkdir ${q(mp('touch', 'd'))} && ln -s f ${q(mp('touch', 'l'))} && touch -d ${q(T)} ${q(mp('touch', 'd'))} && touch -h -d ${q(A)} ${q(mp('touch', 'l'))}`, { env: UTC });
    expect(await st('%y', mp('touch', 'd'))).toBe(`${T} +0000`);
    expect(await st('%y', mp('touch', 'l'))).toBe(`${A} +0000`);
    expect(await st('%y', mp('touch', 'f'))).toBe(`${M} +0000`);
    await dropCaches();
    expect(await st('%y|%x', mp('touch', 'f'))).toBe(`${M} +0000|${A} +0000`);
    expect(await st('%y', mp('touch', 'd'))).toBe(`${T} +0000`);
    expect(await st('%y', mp('touch', 'l'))).toBe(`${A} +0000`);
  });

  it('chmod sets every mode bit, setuid, setgid and sticky included', async () => {
    await fsp.mkdir(mp('chmod'));
    await shOk(`touch ${q(mp('chmod', 'f'))} && mkdir ${q(mp('chmod', 'd'))}`);
    for (const [mode, sym] of [['4755', '-rwsr-xr-x'], ['2755', '-rwxr-sr-x'], ['1777', '-rwxrwxrwt'], ['0', '----------'],
      ['644', '-rw-r--r--'], ['6711', '-rws--s--x'], ['7777', '-rwsrwsrwt'], ['4644', '-rwSr--r--']]) {
      await shOk(`chmod ${mode} ${q(mp('chmod', 'f'))}`);
      expect(await st('%a|%A', mp('chmod', 'f'))).toBe(`${mode}|${sym}`);
    }
    await shOk(`chmod 1777 ${q(mp('chmod', 'd'))}`);
    expect(await st('%a|%A', mp('chmod', 'd'))).toBe('1777|drwxrwxrwt');
    await shOk(`chmod o-w ${q(mp('chmod', 'd'))}`);
    expect(await st('%a|%A', mp('chmod', 'd'))).toBe('1775|drwxrwxr-t');
    await shOk(`chmod g+s ${q(mp('chmod', 'd'))}`);
    expect(await st('%a', mp('chmod', 'd'))).toBe('3775');
    await dropCaches();
    expect(await st('%a', mp('chmod', 'f'))).toBe('4644');
    expect(await st('%a', mp('chmod', 'd'))).toBe('3775');
    // A file made in a set-group-ID directory inherits its group; a subdirectory also the bit.
    await shOk(`chgrp 4242 ${q(mp('chmod', 'd'))} && touch ${q(mp('chmod', 'd', 'inner'))} && mkdir ${q(mp('chmod', 'd', 'sub'))}`);
    expect(await st('%g', mp('chmod', 'd', 'inner'))).toBe('4242');
    expect(await st('%g|%A', mp('chmod', 'd', 'sub'))).toMatch(/^4242\|d.....s...$/);
  });

  it('chown changes uid and gid (root); stat shows them; it clears setuid as ext4 does', async () => {
    await fsp.mkdir(mp('chown'));
    await shOk(`echo x > ${q(mp('chown', 'f'))} && ln -s f ${q(mp('chown', 'l'))} && mkdir ${q(mp('chown', 'd'))}`);
    await shOk(`chown 1234:5678 ${q(mp('chown', 'f'))}`);
    expect(await st('%u %g', mp('chown', 'f'))).toBe('1234 5678');
    await shOk(`chgrp 99 ${q(mp('chown', 'f'))}`);
    expect(await st('%u %g', mp('chown', 'f'))).toBe('1234 99');
    await shOk(`chown 4000000000:4000000001 ${q(mp('chown', 'd'))}`);
    expect(await st('%u %g', mp('chown', 'd'))).toBe('4000000000 4000000001');
    // chown -h changes the link, not its target.
    await shOk(`chown -h 42:43 ${q(mp('chown', 'l'))}`);
    expect(await st('%u %g', mp('chown', 'l'))).toBe('42 43');
    expect(await st('%u %g', mp('chown', 'f'))).toBe('1234 99');
    // The kernel turns chown of a set-user-ID file into a mode change that drops S_ISUID (and
    // S_ISGID when group-executable): ext4 shows 0755 after this.
    await shOk(`chmod 6755 ${q(mp('chown', 'f'))} && chown 1:1 ${q(mp('chown', 'f'))}`);
    expect(await st('%u %g %a', mp('chown', 'f'))).toBe('1 1 755');
    await dropCaches();
    expect(await st('%u %g %a', mp('chown', 'f'))).toBe('1 1 755');
    expect(await st('%u %g', mp('chown', 'd'))).toBe('4000000000 4000000001');
    expect(await st('%u %g', mp('chown', 'l'))).toBe('42 43');
  });

  it('truncate: grow gives zeros, shrink drops bytes, growing again gives zeros and not the old bytes', async () => {
    await fsp.mkdir(mp('trunc'));
    const f = mp('trunc', 'f');
    // Checks the file's bytes against a run-length spec like "A:5000,0:7000".
    const check = async (spec: string) => {
      const script = `
import sys
p, spec = sys.argv[1], sys.argv[2]
exp = b''.join((b'\\0' if c == '0' else c.encode()) * int(n) for c, n in (x.split(':') for x in spec.split(',') if x))
with open(p, 'rb') as f:
    got = f.read()
if got != exp:
    diff = next((i for i in range(min(len(got), len(exp))) if got[i] != exp[i]), min(len(got), len(exp)))
    print(f'mismatch: size {len(got)} expected {len(exp)}, first difference at {diff}: got {got[diff:diff+8]!r}')
    sys.exit(1)
`;
      await pyOk(script, [f, spec]);
      expect(await st('%s', f)).toBe(String(spec.split(',').filter(Boolean).reduce((n, x) => n + Number(x.split(':')[1]), 0)));
    };
    await shOk(`head -c 10000 /dev/zero | tr '\\0' A > ${q(f)}`);
    await check('A:10000');
    await shOk(`truncate -s 20000 ${q(f)}`);
    await check('A:10000,0:10000');
    await shOk(`truncate -s 5000 ${q(f)}`);
    await check('A:5000');
    await shOk(`truncate -s 12000 ${q(f)}`);
    await check('A:5000,0:7000');
    await dropCaches();
    await check('A:5000,0:7000');
    // Again with the old bytes only in the daemon (kernel cache dropped before the shrink).
    await shOk(`head -c 30000 /dev/zero | tr '\\0' B > ${q(f)}`);
    await dropCaches();
    await shOk(`truncate -s 4097 ${q(f)} && truncate -s 30000 ${q(f)}`);
    await check('B:4097,0:25903');
    await dropCaches();
    await check('B:4097,0:25903');
    await shOk(`truncate -s 0 ${q(f)} && truncate -s 9000 ${q(f)}`);
    await check('0:9000');
    expect(await st('%b', f)).toBe('0');
    // Write past a shrunk end: the gap between the old end and the write is zeros.
    await shOk(`head -c 8192 /dev/zero | tr '\\0' C > ${q(f)} && truncate -s 100 ${q(f)} && printf D | dd of=${q(f)} bs=1 seek=8000 conv=notrunc status=none`);
    await check('C:100,0:7900,D:1');
    await dropCaches();
    await check('C:100,0:7900,D:1');
  });

  it('stat shows the right type, size, blocks, links, inode and times', async () => {
    await fsp.mkdir(mp('stat'));
    const f = mp('stat', 'f');
    const t0 = Math.floor(Date.now() / 1000);
    await shOk(`head -c 12345 /dev/urandom > ${q(f)}`);
    const t1 = Math.ceil(Date.now() / 1000);
    const [size, blocks, bsz, links, type, uid, gid, ino, ioblk, mtime, ctime] = (await st('%s|%b|%B|%h|%F|%u|%g|%i|%o|%Y|%Z', f)).split('|');
    expect([size, blocks, bsz, links, type, uid, gid, ioblk]).toEqual(['12345', '32', '512', '1', 'regular file', '0', '0', '4096']);
    expect((await shOk(`ls -i ${q(f)}`)).split(' ')[0]).toBe(ino);
    expect(Number(mtime)).toBeGreaterThanOrEqual(t0);
    expect(Number(mtime)).toBeLessThanOrEqual(t1);
    expect(Number(ctime)).toBeGreaterThanOrEqual(Number(mtime));
    // A sparse file has no blocks; a directory counts its subdirectories.
    await shOk(`truncate -s 1G ${q(mp('stat', 'sparse'))}`);
    expect(await st('%s|%b', mp('stat', 'sparse'))).toBe(`${2 ** 30}|0`);
    await shOk(`mkdir ${q(mp('stat', 'd'))} ${q(mp('stat', 'd', 's1'))} ${q(mp('stat', 'd', 's2'))} && touch ${q(mp('stat', 'd', 'file'))}`);
    expect(await st('%F|%h', mp('stat', 'd'))).toBe('directory|4');
    await shOk(`ln -s 0123456789 ${q(mp('stat', 'l'))} && mkfifo ${q(mp('stat', 'p'))} && mknod ${q(mp('stat', 'c'))} c 1 3`);
    expect(await st('%F|%s', mp('stat', 'l'))).toBe('symbolic link|10');
    expect(await st('%F', mp('stat', 'p'))).toBe('fifo');
    expect(await st('%F|%t|%T', mp('stat', 'c'))).toBe('character special file|1|3');
    // Inode numbers are distinct.
    const inos = (await shOk(`stat -c %i ${q(mp('stat'))}/*`)).trim().split('\n');
    expect(new Set(inos).size).toBe(inos.length);
    // chmod moves ctime, not mtime; a write moves both.
    await shOk(`touch -d '2001-01-01' ${q(f)}`, { env: UTC });
    const c1 = Number(await st('%Z', f));
    await shOk(`sleep 1.1 && chmod 600 ${q(f)}`);
    const [m2, c2] = (await st('%Y|%Z', f)).split('|').map(Number);
    expect(m2).toBe(978307200);
    expect(c2).toBeGreaterThanOrEqual(c1 + 1);
    await shOk(`sleep 1.1 && echo more >> ${q(f)}`);
    const [m3, c3] = (await st('%Y|%Z', f)).split('|').map(Number);
    expect(m3).toBeGreaterThanOrEqual(c2 + 1);
    expect(c3).toBe(m3);
    // statfs: block size, capacity, name length.
    expect((await shOk(`stat -f -c '%S|%b|%l' ${q(m.mp)}`)).trim()).toBe(`4096|${(4 * 2 ** 30) / 4096}|255`);
  });
});

describe('real programs through the mount', () => {
  it('tar -x of a node_modules tarball: diff -r against the source is empty, also after remount', async () => {
    const tarball = out('nm.tar');
    // .vite holds vitest's own cache, which test runs rewrite while this one reads the tree.
    await shOk(`tar --format=posix --exclude=.vite -cf ${q(tarball)} -C ${q(ROOT)} node_modules`, { timeoutMs: 120_000 });
    const count = Number((await shOk(`tar -tf ${q(tarball)} | wc -l`)).trim());
    expect(count).toBeGreaterThan(2000);
    // A reference extraction outside the mount (ext4) from the same tarball.
    await fsp.mkdir(out('ref'));
    await shOk(`tar -xf ${q(tarball)} -C ${q(out('ref'))}`, { timeoutMs: 120_000 });
    await fsp.mkdir(mp('tarx'));
    await shOk(`tar -xf ${q(tarball)} -C ${q(mp('tarx'))}`, { timeoutMs: 240_000 });
    // Type, mode, owner, link count, size (not for directories), mtime to the nanosecond, link target.
    const listing = (d: string) => shOk(
      `cd ${q(d)} && find . -mindepth 1 \\( -type d -printf '%P|%y|%m|%U|%G|%n|-|%T@|%l\\n' \\) -o \\( ! -type d -printf '%P|%y|%m|%U|%G|%n|%s|%T@|%l\\n' \\) | sort`,
      { timeoutMs: 60_000, env: UTC });
    const ref = await listing(out('ref'));
    expect(ref.split('\n').length).toBeGreaterThan(2000);
    const check = async (when: string) => {
      ok(await sh(`diff -r -x .vite ${q(path.join(ROOT, 'node_modules'))} ${q(mp('tarx', 'node_modules'))}`, { timeoutMs: 120_000 }), `diff -r against the source ${when}`);
      ok(await sh(`diff -r --no-dereference ${q(out('ref'))} ${q(mp('tarx'))}`, { timeoutMs: 120_000 }), `diff -r against the reference extraction ${when}`);
      const got = await listing(mp('tarx'));
      if (got !== ref) {
        await fsp.writeFile(out('listing.ref'), ref);
        await fsp.writeFile(out('listing.got'), got);
        const r = await sh(`diff ${q(out('listing.ref'))} ${q(out('listing.got'))} | head -20`);
        throw new Error(`listing differs ${when}:\n${r.stdout}`);
      }
    };
    await check('after extraction');
    await remount();
    await check('after unmount and mount');
  }, 600_000);

  it('git init, add, commit, gc and clone inside the mount; fsck and log are clean', async () => {
    const env = {
      ...process.env, HOME: m.dir, GIT_CONFIG_NOSYSTEM: '1', GIT_AUTHOR_NAME: 'Pagefs Test', GIT_AUTHOR_EMAIL: 'test@pagefs.invalid',
      GIT_COMMITTER_NAME: 'Pagefs Test', GIT_COMMITTER_EMAIL: 'test@pagefs.invalid', LC_ALL: 'C',
    };
    const repo = mp('git', 'repo');
    const g = (args: string, cwd = repo) => shOk(`git ${args}`, { cwd, env, timeoutMs: 120_000 });
    await fsp.mkdir(mp('git'));
    await shOk(`git init -q ${q(repo)}`, { env });
    await shOk(`cp -r ${q(path.join(ROOT, 'node_modules', 'commander'))} ${q(repo)}/ && echo hello > ${q(repo)}/README && head -c 300000 /dev/urandom > ${q(repo)}/blob.bin`);
    await g('add -A');
    await g('commit -q -m first');
    await shOk(`echo changed >> ${q(repo)}/README && rm ${q(repo)}/commander/package.json && mkdir ${q(repo)}/newdir && echo n > ${q(repo)}/newdir/n`);
    await g('add -A');
    await g('commit -q -m second');
    expect(await g('log --format=%s')).toBe('second\nfirst\n');
    expect(await g('status --porcelain')).toBe('');
    expect(await g('diff --name-status HEAD~1 HEAD')).toBe('M\tREADME\nD\tcommander/package.json\nA\tnewdir/n\n');
    const fsck1 = await sh('git fsck --full --strict', { cwd: repo, env, timeoutMs: 120_000 });
    expect(fsck1.code, fsck1.stderr).toBe(0);
    expect(fsck1.stderr + fsck1.stdout).toBe('');
    // gc packs objects (renames, unlinks), clone hard-links the objects of a local repository.
    await g('gc -q');
    await shOk(`git clone -q ${q(repo)} ${q(mp('git', 'clone'))}`, { env, timeoutMs: 120_000 });
    ok(await sh(`diff -r --exclude=.git ${q(repo)} ${q(mp('git', 'clone'))}`), 'diff -r repo clone');
    await dropCaches();
    for (const d of [repo, mp('git', 'clone')]) {
      const r = await sh('git fsck --full --strict', { cwd: d, env, timeoutMs: 120_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr + r.stdout).toBe('');
      expect(await g('log --format=%s', d)).toBe('second\nfirst\n');
      expect(await g('status --porcelain', d)).toBe('');
    }
  });

  it('readdir of a directory with 5,000 files lists each exactly once', async () => {
    const d = mp('many');
    // Names of varied lengths so that entries straddle the buffers of getdents in many ways.
    await pyOk(`
import os, sys
d = sys.argv[1]
os.mkdir(d)
for i in range(5000):
    os.close(os.open(os.path.join(d, 'f%05d_' % i + 'x' * (i % 97)), os.O_CREAT | os.O_WRONLY, 0o644))
`, [d], { timeoutMs: 120_000 });
    const expected = ['.', '..', ...Array.from({ length: 5000 }, (_, i) => `f${String(i).padStart(5, '0')}_${'x'.repeat(i % 97)}`)].sort();
    const check = async () => {
      expect(await shOk(`ls -f ${q(d)} | sort | uniq -d`)).toBe('');
      expect((await shOk(`ls -f ${q(d)} | wc -l`)).trim()).toBe('5002');
      expect((await shOk(`ls -f ${q(d)} | LC_ALL=C sort`, { env: UTC })).split('\n').slice(0, -1)).toEqual(expected);
      // Plain readdir (getdents64 without readdirplus entries being used) by python.
      const py = JSON.parse(await pyOk('import os, sys, json; print(json.dumps(os.listdir(sys.argv[1])))', [d]));
      expect(py.length).toBe(5000);
      expect(new Set(py).size).toBe(5000);
    };
    await check();
    await dropCaches();
    await check();
  });

  it('readdir while unlinking what was already listed: every remaining entry exactly once', async () => {
    const d = mp('many2');
    const r = await pyOk(`
import os, sys, json
d = sys.argv[1]
os.mkdir(d)
names = ['g%05d' % i + 'y' * (i % 61) for i in range(3000)]
for n in names:
    os.close(os.open(os.path.join(d, n), os.O_CREAT | os.O_WRONLY, 0o644))
seen = []
with os.scandir(d) as it:
    for e in it:
        seen.append(e.name)
        # Remove every third entry already listed, and create new ones, while listing goes on.
        if len(seen) % 3 == 0:
            os.unlink(os.path.join(d, e.name))
        if len(seen) % 50 == 0:
            os.close(os.open(os.path.join(d, 'new%05d' % len(seen)), os.O_CREAT | os.O_WRONLY, 0o644))
dups = sorted({n for n in seen if seen.count(n) > 1}) if len(seen) != len(set(seen)) else []
missing = [n for n in names if n not in set(seen)]
print(json.dumps({'dups': dups[:10], 'missing': missing[:10], 'nmissing': len(missing)}))
`, [d], { timeoutMs: 120_000 });
    expect(JSON.parse(r)).toEqual({ dups: [], missing: [], nmissing: 0 });
    expect(await shOk(`ls -f ${q(d)} | sort | uniq -d`)).toBe('');
  });

  it('mmap MAP_SHARED: writes through the map reach read(2), the daemon and the store', async () => {
    const f = mp('mmap', 'f');
    const g = mp('mmap', 'g');
    await fsp.mkdir(mp('mmap'));
    // f: written with write(2), patched through the map, msync'd.
    // g: made with ftruncate (all holes), written only through the map, msync'd.
    const script = `
import mmap, os, sys, hashlib
f, g = sys.argv[1], sys.argv[2]
N = 5 * 4096 + 123
data = bytearray(os.urandom(N))
fd = os.open(f, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, bytes(data))
mm = mmap.mmap(fd, N, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
for off, n in ((0, 100), (4000, 200), (3 * 4096 + 5, 3000), (N - 50, 50)):
    pat = os.urandom(n)
    mm[off:off + n] = pat
    data[off:off + n] = pat
mm.flush()
if os.pread(fd, N, 0) != bytes(data):
    sys.exit('pread after msync differs from the map')
mm.close()
os.close(fd)

M = 3 * 4096
gd = bytearray(M)
fd = os.open(g, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, M)
mm = mmap.mmap(fd, M, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
for off in (10, 4096 + 2000, M - 7):
    pat = os.urandom(7)
    mm[off:off + 7] = pat
    gd[off:off + 7] = pat
mm.flush()
mm.close()
os.close(fd)
print(hashlib.sha256(data).hexdigest(), hashlib.sha256(gd).hexdigest())
`;
    const [hf, hg] = (await pyOk(script, [f, g])).trim().split(' ');
    const check = async (when: string) => {
      expect(await sha256(f), `f ${when}`).toBe(hf);
      expect(await sha256(g), `g ${when}`).toBe(hg);
      expect(await st('%s', f)).toBe(String(5 * 4096 + 123));
      expect(await st('%s', g)).toBe(String(3 * 4096));
    };
    await check('through the kernel cache');
    await dropCaches();
    await check('after drop_caches');
    await remount();
    await check('after unmount and mount');
  });
});
