/**
 * Durability: what was written survives unmount and mount; `pagefs fsck` is clean after an
 * unmount and after a SIGKILL of the daemon; every file whose fsync returned survives a
 * SIGKILL; an unlinked-but-open file left by a killed daemon is removed at the next mount.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import fsp from 'node:fs/promises';
import { mountFresh, pagefs, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { ok, pyOk, expectNoMountUnder } from './lib.js';

let m: Mounted | undefined;
const children = new Set<ChildProcess>();

afterEach(async () => {
  // Our own child processes first (they may hold files on the mount open), then the mount.
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  if (m) {
    const mm = m;
    m = undefined;
    if (process.env.PAGEFS_TEST_LOG) await fsp.writeFile(process.env.PAGEFS_TEST_LOG, mm.log(), { flag: 'a' });
    await mm.cleanup();
    await expectNoMountUnder(mm.dir);
  }
}, 120_000);

/** pagefs fsck STORE: exit 0, no problem lines; returns stdout. */
async function fsckClean(store: string): Promise<string> {
  const r = await pagefs(['fsck', store], { timeoutMs: 120_000 });
  const text = r.stdout + r.stderr;
  expect(r.code, `pagefs fsck ${store}:\n${text}`).toBe(0);
  expect(text).not.toMatch(/problem/);
  expect(r.stdout).toMatch(/: clean \(/);
  return r.stdout;
}

async function storeStat(store: string): Promise<{ usedBlocks: number; inodes: number }> {
  const r = await pagefs(['stat', store, '--json'], { timeoutMs: 30_000 });
  return JSON.parse(ok(r, 'pagefs stat --json'));
}

/** Builds a varied tree under argv[1]: files of many sizes, dirs, symlinks, hard links, xattrs, modes, owners, times. */
const POPULATE = `
import os, sys, random
root = sys.argv[1]
os.mkdir(root)
rnd = random.Random(1234)
sizes = [0, 1, 100, 4095, 4096, 4097, 8191, 65536, 100000, (1 << 20) + 3, 3000001]
dirs = [root]
for i in range(25):
    parent = rnd.choice(dirs)
    d = os.path.join(parent, 'dir%02d' % i)
    os.mkdir(d)
    dirs.append(d)
files = []
for i in range(300):
    d = rnd.choice(dirs)
    p = os.path.join(d, 'file%03d.bin' % i)
    size = sizes[i % len(sizes)]
    with open(p, 'wb') as f:
        f.write(rnd.randbytes(size))
    files.append(p)
# Overwrite parts of some files in place, append to others.
for p in files[::7]:
    with open(p, 'r+b') as f:
        f.seek(rnd.randrange(0, 5000))
        f.write(rnd.randbytes(3000))
for p in files[3::11]:
    with open(p, 'ab') as f:
        f.write(rnd.randbytes(777))
# A sparse file: data at 0, a hole, data at 100 MB.
with open(os.path.join(root, 'sparse'), 'wb') as f:
    f.write(b'head')
    f.seek(100 << 20)
    f.write(b'tail')
# Symlinks: relative, absolute, dangling, to a directory, long.
os.symlink('file000.bin', os.path.join(root, 'rel-link'))
os.symlink(files[5], os.path.join(root, 'abs-link'))
os.symlink('no/such/target', os.path.join(root, 'dangling'))
os.symlink(os.path.relpath(dirs[3], root), os.path.join(root, 'dir-link'))
os.symlink('x/' * 1000 + 'y', os.path.join(root, 'long-link'))
# Hard links, some across directories.
for i in range(10):
    src = files[20 + i]
    os.link(src, os.path.join(rnd.choice(dirs), 'hard%02d' % i))
# Special files.
os.mkfifo(os.path.join(root, 'fifo'))
os.mknod(os.path.join(root, 'chardev'), 0o20644, os.makedev(1, 3))
# xattrs: binary values, an empty one, a large one, on files and directories.
for i, p in enumerate(files[::13] + dirs[1::5]):
    os.setxattr(p, 'user.idx', str(i).encode())
    os.setxattr(p, 'user.bin', bytes(range(256)) * 3)
    os.setxattr(p, 'user.empty', b'')
os.setxattr(files[1], 'user.big', rnd.randbytes(60000))
os.setxattr(files[1], 'trusted.t', b'trusted-value')
# Modes, owners.
modes = [0o644, 0o600, 0o755, 0o4755, 0o2711, 0o1777, 0o000, 0o7777]
for i, p in enumerate(files[::5]):
    os.chmod(p, modes[i % len(modes)])
    os.chown(p, 1000 + i, 2000 + i)
os.chmod(dirs[2], 0o1770)
os.lchown(os.path.join(root, 'rel-link'), 77, 88)
# Times to the nanosecond (after everything else in the directories is done).
for i, p in enumerate(files[::3]):
    os.utime(p, ns=(1_000_000_000 + i * 1_000_000_007, 900_000_000_123_456_789 + i))
os.utime(os.path.join(root, 'abs-link'), ns=(5, 1_234_567_890_123_456_789), follow_symlinks=False)
for i, d in enumerate(dirs[1:]):
    os.utime(d, ns=(2_000_000_000_000_000_000 + i, 1_500_000_000_987_654_321 + i))
`;

/** Everything lstat and the contents say about every entry under argv[1], as JSON (atime excluded: reading moves it). */
const SNAPSHOT = `
import os, sys, json, hashlib, stat
root = sys.argv[1]
out = {}
def entry(p):
    st = os.lstat(p)
    e = {'mode': st.st_mode, 'uid': st.st_uid, 'gid': st.st_gid, 'nlink': st.st_nlink, 'ino': st.st_ino,
         'mtime': st.st_mtime_ns, 'ctime': st.st_ctime_ns, 'rdev': st.st_rdev}
    if not stat.S_ISDIR(st.st_mode):
        e['size'] = st.st_size
        e['blocks'] = st.st_blocks
    if stat.S_ISREG(st.st_mode):
        h = hashlib.sha256()
        with open(p, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                h.update(chunk)
        e['sha256'] = h.hexdigest()
    if stat.S_ISLNK(st.st_mode):
        e['target'] = os.readlink(p)
    if not stat.S_ISLNK(st.st_mode) and not stat.S_ISFIFO(st.st_mode) and not stat.S_ISCHR(st.st_mode):
        e['xattrs'] = {n: hashlib.sha256(os.getxattr(p, n, follow_symlinks=False)).hexdigest() for n in sorted(os.listxattr(p, follow_symlinks=False))}
    return e
for dirpath, dirnames, filenames in os.walk(root):
    out[os.path.relpath(dirpath, root)] = entry(dirpath)
    for n in dirnames + filenames:
        p = os.path.join(dirpath, n)
        if os.path.islink(p) or n not in dirnames:
            out[os.path.relpath(p, root)] = entry(p)
print(json.dumps(out, sort_keys=True))
`;

async function snapshot(dir: string): Promise<Record<string, any>> {
  return JSON.parse(await pyOk(SNAPSHOT, [dir], { timeoutMs: 120_000 }));
}

/** Waits for a child's exit, SIGKILLing it (our own child) after `ms`. */
function waitExit(c: ChildProcess, ms: number): Promise<number | string | null> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(c.exitCode ?? c.signalCode);
  return new Promise((resolve) => {
    const t = setTimeout(() => c.kill('SIGKILL'), ms);
    c.on('exit', (code, sig) => { clearTimeout(t); resolve(code ?? sig); });
  });
}

describe('persistence', () => {
  it('a populated tree survives unmount and mount (contents, sizes, modes, owners, times, links, xattrs); fsck is clean', async () => {
    m = await mountFresh({ capacity: '2G' });
    const root = path.join(m.mp, 'tree');
    await pyOk(POPULATE, [root], { timeoutMs: 120_000 });
    const before = await snapshot(m.mp);
    expect(Object.keys(before).length).toBeGreaterThan(340);
    expect(before['tree/sparse'].size).toBe((100 << 20) + 4);

    await m.unmount();
    await fsckClean(m.store);
    await m.remount();
    const after = await snapshot(m.mp);
    expect(after).toEqual(before);

    // Changes after a remount persist too: delete, rename, rewrite, remove an xattr, truncate.
    await pyOk(`
import os, sys
r = sys.argv[1]
os.unlink(os.path.join(r, 'file000.bin')) if os.path.exists(os.path.join(r, 'file000.bin')) else None
for dp, dn, fn in os.walk(r):
    for n in fn:
        p = os.path.join(dp, n)
        if n.endswith('.bin') and not os.path.islink(p) and 'user.idx' in os.listxattr(p):
            os.removexattr(p, 'user.idx')
        if n.endswith('7.bin') and not os.path.islink(p):
            os.rename(p, p + '.renamed')
        elif n.endswith('5.bin') and not os.path.islink(p) and os.stat(p).st_nlink == 1 and os.access(p, os.W_OK):
            with open(p, 'r+b') as f:
                f.truncate(1000)
                f.seek(5000)
                f.write(b'after-remount')
`, [root]);
    const changed = await snapshot(m.mp);
    expect(changed).not.toEqual(before);
    await m.unmount();
    await fsckClean(m.store);
    await m.remount();
    expect(await snapshot(m.mp)).toEqual(changed);
    await m.unmount();
    await fsckClean(m.store);
    expectCleanLog(m);
  }, 300_000);

  it('SIGKILL of the daemon during a write loop: every fsynced file reads back exactly; fsck is clean (3 rounds)', async () => {
    m = await mountFresh({ capacity: '2G' });
    const log = path.join(m.dir, 'fsynced.log');
    // Writes new files in a loop, each by one of three patterns, and logs name, sha256 and size
    // (in a file outside the mount, fsync'd) once the file's fsync has returned.
    const WRITER = `
import os, sys, hashlib, random
d, log, tag = sys.argv[1], sys.argv[2], sys.argv[3]
rnd = random.Random()
os.makedirs(d, exist_ok=True)
lfd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
i = 0
try:
    while True:
        i += 1
        name = '%s-%06d' % (tag, i)
        size = rnd.choice([0, 1, 4095, 4096, 4097, 10000, 65536, 200000, 1 << 20]) + rnd.randrange(0, 3)
        data = rnd.randbytes(size)
        p = os.path.join(d, name)
        kind = i % 3
        if kind == 0:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            for off in range(0, size, 65536):
                os.write(fd, data[off:off + 65536])
            os.fsync(fd)
            os.close(fd)
        elif kind == 1:
            # The atomic-replace pattern: temp file, fsync, rename, fsync the directory.
            tmp = p + '.tmp'
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            os.rename(tmp, p)
            os.fsync(dfd)
        else:
            # Garbage first, fsync, then the real bytes over it and a truncate, fsync again.
            fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, rnd.randbytes(size + 5000))
            os.fsync(fd)
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, size)
            os.fsync(fd)
            os.close(fd)
        os.write(lfd, ('%s %s %d\\n' % (name, hashlib.sha256(data).hexdigest(), size)).encode())
        os.fsync(lfd)
except OSError as e:
    sys.stderr.write('writer stopped: %s\\n' % e)
`;
    const VERIFY = `
import os, sys, hashlib, json
d, log = sys.argv[1], sys.argv[2]
bad, n = [], 0
for line in open(log).read().split('\\n'):
    parts = line.split(' ')
    if len(parts) != 3:
        continue
    name, sha, size = parts
    n += 1
    p = os.path.join(d, name)
    try:
        data = open(p, 'rb').read()
    except OSError as e:
        bad.append('%s: %s' % (name, e))
        continue
    if len(data) != int(size) or hashlib.sha256(data).hexdigest() != sha:
        bad.append('%s: size %d (expected %s), sha256 %s' % (name, len(data), size, 'differs' if hashlib.sha256(data).hexdigest() != sha else 'equal'))
print(json.dumps({'n': n, 'bad': bad[:20], 'nbad': len(bad)}))
`;
    const dir = path.join(m.mp, 'w');
    let total = 0;
    for (let round = 1; round <= 3; round++) {
      const writer = spawn('python3', ['-c', WRITER, dir, log, `r${round}`], { stdio: ['ignore', 'ignore', 'pipe'], cwd: m.dir });
      children.add(writer);
      let werr = '';
      writer.stderr!.on('data', (b) => { werr += b.toString(); });
      // Let it log at least 30 fsynced files of this round (and run at least a second), then kill the daemon mid-loop.
      const t0 = Date.now();
      for (;;) {
        const text = await fsp.readFile(log, 'utf8').catch(() => '');
        const mine = text.split('\n').filter((l) => l.startsWith(`r${round}-`)).length;
        if (mine >= 30 && Date.now() - t0 > 1000) break;
        if (writer.exitCode !== null) throw new Error(`writer exited early (${writer.exitCode}): ${werr}`);
        if (Date.now() - t0 > 60_000) throw new Error(`writer logged only ${mine} files in 60 s: ${werr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      await m.kill();
      const wcode = await waitExit(writer, 20_000);
      children.delete(writer);
      expect(werr, `round ${round}: the writer must have been stopped by the dead mount (exit ${wcode})`).toMatch(/writer stopped/);

      // Right after the crash the store is consistent (orphans may be noted).
      await fsckClean(m.store);
      await m.remount();
      const v = JSON.parse(await pyOk(VERIFY, [dir, log], { timeoutMs: 120_000 }));
      expect(v.bad, `round ${round}: ${v.nbad} of ${v.n} fsynced files differ`).toEqual([]);
      expect(v.n).toBeGreaterThan(total + 29);
      total = v.n;
      await m.unmount();
      await fsckClean(m.store);
      if (round < 3) await m.remount();
    }
    expectCleanLog(m);
  }, 300_000);

  it('a file unlinked while open, then SIGKILL of the daemon: fsck notes the orphan, the next mount removes it', async () => {
    m = await mountFresh({ capacity: '2G' });
    await pyOk(`
import os, sys
with open(os.path.join(sys.argv[1], 'keep'), 'wb') as f:
    f.write(os.urandom(8192))
`, [m.mp]);
    const holder = spawn('python3', ['-c', `
import os, sys
p = os.path.join(sys.argv[1], 'orphan')
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, os.urandom(1 << 20))
os.fsync(fd)
os.unlink(p)
st = os.fstat(fd)
print('ready', st.st_nlink, st.st_size, flush=True)
sys.stdin.read()
`, m.mp], { stdio: ['pipe', 'pipe', 'pipe'], cwd: m.dir });
    children.add(holder);
    const ready = await new Promise<string>((resolve) => {
      let buf = '';
      holder.stdout!.on('data', (b) => { buf += b.toString(); if (buf.includes('\n')) resolve(buf.trim()); });
      holder.on('exit', (c) => resolve(`exited ${c}`));
      setTimeout(() => resolve('timeout'), 30_000);
    });
    expect(ready).toBe(`ready 0 ${1 << 20}`);
    expect((await pyOk('import os, sys; print(sorted(os.listdir(sys.argv[1])))', [m.mp])).trim()).toBe("['keep']");

    // Kill the daemon while the file is still open, then the holder (our child).
    await m.kill();
    holder.kill('SIGKILL');
    await waitExit(holder, 10_000);
    children.delete(holder);

    const out = await fsckClean(m.store);
    expect(out, 'fsck before the next mount lists the orphan as a note').toMatch(/note: 1 orphaned inode/);
    await m.remount();
    expect(m.log()).toMatch(/removed 1 orphaned inode/);
    expect((await pyOk('import os, sys; print(sorted(os.listdir(sys.argv[1])))', [m.mp])).trim()).toBe("['keep']");
    await m.unmount();
    const out2 = await fsckClean(m.store);
    expect(out2).not.toMatch(/note:/);
    // Only the root and "keep" remain, and only keep's two blocks are in use.
    expect(await storeStat(m.store)).toMatchObject({ inodes: 2, usedBlocks: 2 });
    expectCleanLog(m);
  }, 120_000);
});
