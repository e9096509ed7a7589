/**
 * Errno conformance through the real mount: each bad call gets the exact errno a Linux
 * filesystem gives. Wherever it is cheap, the same call is made on a loop-mounted ext4
 * image and both answers must agree.
 *
 * Everything that touches the FUSE mount is asynchronous (fs.promises) or a child
 * process with a timeout: a synchronous call on a broken mount would hang the worker.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { mountFresh, run, pagefs, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { mountExt4, code, onBoth as onBothRoots, both, type Ext4, type Where } from '../helpers/ext4.js';
import { finish } from './lib.js';

const TiB = 2 ** 40;
/** ext4's maximum file size with 4 KiB blocks: (2^32 - 1) blocks, 16 TiB - 4 KiB. */
const MAX_FILE = 16 * TiB - 4096;
const PY = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const NOBODY = { uid: 65534, gid: 65534 };

// ---------------------------------------------------------------------------------------
// A loop-mounted ext4 image: the reference every comparable case is checked against.

let ext4: Ext4 | null = null;
let extMp = '';

beforeAll(async () => {
  ext4 = await mountExt4({ prefix: 'pagefs-errno-ext4-' });
  extMp = ext4.mp;
}, 60_000);

afterAll(async () => {
  await ext4?.cleanup();
}, 60_000);

const onBoth = <T>(m: Mounted, name: string, fn: (dir: string, where: Where) => Promise<T>) => onBothRoots(m, extMp, name, fn);

/**
 * Syscalls Node lacks, through python3 ctypes / os: prints 'OK' (or 'OK:<detail>') or the
 * errno name on one line.
 */
const PROBE = String.raw`
import ctypes, errno, os, platform, sys
libc = ctypes.CDLL(None, use_errno=True)
def name(e): return 'EOPNOTSUPP' if e == errno.EOPNOTSUPP else errno.errorcode.get(e, str(e))  # ENOTSUP is the same number on Linux
def check(r):
    if r < 0:
        print(name(ctypes.get_errno()))
        sys.exit(0)
    return r
op, a = sys.argv[1], sys.argv[2:]
try:
    if op == 'renameat2':
        fn = getattr(libc, 'renameat2', None)
        if fn is not None:
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            check(fn(-100, a[0].encode(), -100, a[1].encode(), int(a[2])))
        else:
            nr = {'x86_64': 316, 'aarch64': 276}[platform.machine()]
            libc.syscall.restype = ctypes.c_long
            check(libc.syscall(ctypes.c_long(nr), ctypes.c_int(-100), a[0].encode(), ctypes.c_int(-100), a[1].encode(), ctypes.c_uint(int(a[2]))))
        print('OK')
    elif op == 'setxattr':
        os.setxattr(a[0], a[1], a[2].encode(), int(a[3]) if len(a) > 3 else 0)
        print('OK')
    elif op == 'getxattr':
        # path name size: size < 0 lets os.getxattr size the buffer itself
        size = int(a[2]) if len(a) > 2 else -1
        if size < 0:
            print('OK:' + os.getxattr(a[0], a[1]).decode())
        else:
            fn = libc.getxattr
            fn.restype = ctypes.c_ssize_t
            fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
            buf = ctypes.create_string_buffer(max(size, 1))
            r = check(fn(a[0].encode(), a[1].encode(), buf if size > 0 else None, size))
            print('OK:' + (buf.raw[:r].decode() if size > 0 else 'size=%d' % r))
    elif op == 'listxattr':
        size = int(a[1]) if len(a) > 1 else -1
        if size < 0:
            print('OK:' + ','.join(sorted(os.listxattr(a[0]))))
        else:
            fn = libc.listxattr
            fn.restype = ctypes.c_ssize_t
            fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
            buf = ctypes.create_string_buffer(max(size, 1))
            r = check(fn(a[0].encode(), buf if size > 0 else None, size))
            print('OK:' + ('size=%d' % r))
    elif op == 'removexattr':
        os.removexattr(a[0], a[1])
        print('OK')
    elif op == 'read':
        with open(a[0], 'rb') as f:
            print('OK:%d' % len(f.read()))
    elif op == 'write':
        with open(a[0], 'ab') as f:
            f.write(b'x')
        print('OK')
    elif op == 'create':
        fd = os.open(a[0], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.close(fd)
        print('OK')
    elif op == 'stat':
        os.stat(a[0])
        print('OK')
    elif op == 'listdir':
        print('OK:' + ','.join(sorted(os.listdir(a[0]))))
    else:
        print('bad probe op ' + op)
except OSError as e:
    print(name(e.errno))
`;

async function probe(args: string[], opts: { uid?: number; gid?: number } = {}): Promise<string> {
  if (opts.uid === undefined) {
    const r = await run(PY, ['-c', PROBE, ...args], { timeoutMs: 30_000, cwd: '/' });
    if (r.code !== 0) throw new Error(`probe ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout.trim();
  }
  return asUser(opts.uid, opts.gid ?? opts.uid, [PY, '-c', PROBE, ...args]);
}

/** Runs argv as another user (spawn with uid/gid), with a timeout; returns its stdout. */
function asUser(uid: number, gid: number, argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { uid, gid, cwd: '/', env: { PATH: '/usr/bin:/bin', HOME: '/' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (c, sig) => {
      clearTimeout(timer);
      if (c !== 0) reject(new Error(`${argv.join(' ').slice(0, 80)} as uid ${uid}: exit ${c ?? sig}: ${err}`));
      else resolve(out.trim());
    });
  });
}


// ---------------------------------------------------------------------------------------

describe('errno: namespace operations (pagefs vs ext4)', () => {
  let m: Mounted;
  beforeAll(async () => { m = await mountFresh(); });
  afterAll(async () => { await m?.cleanup(); });

  // ENOENT
  it('open of a missing file: ENOENT', async () => {
    expect(await onBoth(m, 'enoent-open', (d) => code(fsp.open(path.join(d, 'missing'), 'r')))).toEqual(both('ENOENT'));
  });
  it('unlink of a missing file: ENOENT', async () => {
    expect(await onBoth(m, 'enoent-unlink', (d) => code(fsp.unlink(path.join(d, 'missing'))))).toEqual(both('ENOENT'));
  });
  it('rmdir of a missing directory: ENOENT', async () => {
    expect(await onBoth(m, 'enoent-rmdir', (d) => code(fsp.rmdir(path.join(d, 'missing'))))).toEqual(both('ENOENT'));
  });

  // EEXIST
  it('mkdir of an existing name: EEXIST', async () => {
    expect(await onBoth(m, 'eexist-mkdir', async (d) => {
      await fsp.mkdir(path.join(d, 'x'));
      return code(fsp.mkdir(path.join(d, 'x')));
    })).toEqual(both('EEXIST'));
    await expect(fsp.mkdir(path.join(m.mp, 'eexist-mkdir', 'x'))).rejects.toMatchObject({ code: 'EEXIST' });
  });
  it('link onto an existing name: EEXIST', async () => {
    expect(await onBoth(m, 'eexist-link', async (d) => {
      await fsp.writeFile(path.join(d, 'a'), 'a');
      await fsp.writeFile(path.join(d, 'b'), 'b');
      return code(fsp.link(path.join(d, 'a'), path.join(d, 'b')));
    })).toEqual(both('EEXIST'));
    // The existing name still names its own file.
    expect(await fsp.readFile(path.join(m.mp, 'eexist-link', 'b'), 'utf8')).toBe('b');
    expect((await fsp.stat(path.join(m.mp, 'eexist-link', 'a'))).nlink).toBe(1);
  });
  it('symlink onto an existing name: EEXIST', async () => {
    expect(await onBoth(m, 'eexist-symlink', async (d) => {
      await fsp.writeFile(path.join(d, 'b'), 'b');
      return code(fsp.symlink('target', path.join(d, 'b')));
    })).toEqual(both('EEXIST'));
  });
  it('open O_CREAT|O_EXCL of an existing file: EEXIST', async () => {
    const flags = fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY;
    expect(await onBoth(m, 'eexist-excl', async (d) => {
      await fsp.writeFile(path.join(d, 'f'), 'data');
      return code(fsp.open(path.join(d, 'f'), flags));
    })).toEqual(both('EEXIST'));
    expect(await fsp.readFile(path.join(m.mp, 'eexist-excl', 'f'), 'utf8')).toBe('data');
  });

  // ENOTDIR
  it('a path through a regular file: ENOTDIR', async () => {
    expect(await onBoth(m, 'enotdir-path', async (d) => {
      await fsp.writeFile(path.join(d, 'file'), 'x');
      return code(fsp.stat(path.join(d, 'file', 'child')));
    })).toEqual(both('ENOTDIR'));
  });
  it('rmdir of a regular file: ENOTDIR', async () => {
    expect(await onBoth(m, 'enotdir-rmdir', async (d) => {
      await fsp.writeFile(path.join(d, 'file'), 'x');
      return code(fsp.rmdir(path.join(d, 'file')));
    })).toEqual(both('ENOTDIR'));
  });
  it('rename of a directory over a regular file: ENOTDIR', async () => {
    expect(await onBoth(m, 'enotdir-rename', async (d) => {
      await fsp.mkdir(path.join(d, 'dir'));
      await fsp.writeFile(path.join(d, 'file'), 'x');
      return code(fsp.rename(path.join(d, 'dir'), path.join(d, 'file')));
    })).toEqual(both('ENOTDIR'));
    expect((await fsp.stat(path.join(m.mp, 'enotdir-rename', 'dir'))).isDirectory()).toBe(true);
    expect(await fsp.readFile(path.join(m.mp, 'enotdir-rename', 'file'), 'utf8')).toBe('x');
  });

  // EISDIR
  it('unlink of a directory: EISDIR', async () => {
    expect(await onBoth(m, 'eisdir-unlink', async (d) => {
      await fsp.mkdir(path.join(d, 'dir'));
      return code(fsp.unlink(path.join(d, 'dir')));
    })).toEqual(both('EISDIR'));
  });
  it('open of a directory for writing: EISDIR', async () => {
    expect(await onBoth(m, 'eisdir-open', async (d) => {
      await fsp.mkdir(path.join(d, 'dir'));
      return [await code(fsp.open(path.join(d, 'dir'), 'r+')), await code(fsp.open(path.join(d, 'dir'), fs.constants.O_WRONLY))];
    })).toEqual({ pagefs: ['EISDIR', 'EISDIR'], ext4: ['EISDIR', 'EISDIR'] });
  });
  it('rename of a regular file over a directory: EISDIR', async () => {
    expect(await onBoth(m, 'eisdir-rename', async (d) => {
      await fsp.mkdir(path.join(d, 'dir'));
      await fsp.writeFile(path.join(d, 'file'), 'x');
      return code(fsp.rename(path.join(d, 'file'), path.join(d, 'dir')));
    })).toEqual(both('EISDIR'));
  });

  // ENOTEMPTY
  it('rmdir of a non-empty directory: ENOTEMPTY', async () => {
    expect(await onBoth(m, 'enotempty-rmdir', async (d) => {
      await fsp.mkdir(path.join(d, 'dir'));
      await fsp.writeFile(path.join(d, 'dir', 'f'), 'x');
      return code(fsp.rmdir(path.join(d, 'dir')));
    })).toEqual(both('ENOTEMPTY'));
    expect(await fsp.readFile(path.join(m.mp, 'enotempty-rmdir', 'dir', 'f'), 'utf8')).toBe('x');
  });
  it('rename of a directory over a non-empty directory: ENOTEMPTY', async () => {
    expect(await onBoth(m, 'enotempty-rename', async (d) => {
      await fsp.mkdir(path.join(d, 'src'));
      await fsp.mkdir(path.join(d, 'dst'));
      await fsp.writeFile(path.join(d, 'dst', 'f'), 'x');
      return code(fsp.rename(path.join(d, 'src'), path.join(d, 'dst')));
    })).toEqual(both('ENOTEMPTY'));
    expect(await fsp.readFile(path.join(m.mp, 'enotempty-rename', 'dst', 'f'), 'utf8')).toBe('x');
  });

  // ENAMETOOLONG
  const n255 = 'n'.repeat(255);
  const n256 = 'n'.repeat(256);
  it('create of a 256-byte name: ENAMETOOLONG', async () => {
    expect(await onBoth(m, 'enametoolong-create', (d) => code(fsp.open(path.join(d, n256), 'w')))).toEqual(both('ENAMETOOLONG'));
  });
  it('mkdir of a 256-byte name: ENAMETOOLONG', async () => {
    expect(await onBoth(m, 'enametoolong-mkdir', (d) => code(fsp.mkdir(path.join(d, n256))))).toEqual(both('ENAMETOOLONG'));
  });
  it('lookup of a 256-byte name: ENAMETOOLONG', async () => {
    expect(await onBoth(m, 'enametoolong-lookup', (d) => code(fsp.stat(path.join(d, n256))))).toEqual(both('ENAMETOOLONG'));
  });
  it('rename onto a 256-byte name: ENAMETOOLONG', async () => {
    expect(await onBoth(m, 'enametoolong-rename', async (d) => {
      await fsp.writeFile(path.join(d, 'f'), 'x');
      return code(fsp.rename(path.join(d, 'f'), path.join(d, n256)));
    })).toEqual(both('ENAMETOOLONG'));
  });
  it('a 255-byte name works for create, mkdir, lookup and readdir', async () => {
    const res = await onBoth(m, 'name255', async (d) => {
      await fsp.writeFile(path.join(d, n255), 'x');
      await fsp.mkdir(path.join(d, 'd'));
      await fsp.mkdir(path.join(d, 'd', n255));
      return {
        file: (await fsp.stat(path.join(d, n255))).isFile(),
        dir: (await fsp.stat(path.join(d, 'd', n255))).isDirectory(),
        content: await fsp.readFile(path.join(d, n255), 'utf8'),
        list: (await fsp.readdir(d)).sort(),
      };
    });
    expect(res.pagefs).toEqual({ file: true, dir: true, content: 'x', list: ['d', n255].sort() });
    expect(res.pagefs).toEqual(res.ext4);
  });
  it('the name limit counts bytes, not characters (UTF-8)', async () => {
    const ok = 'é'.repeat(127) + 'a'; // 255 bytes
    const long = 'é'.repeat(128); // 256 bytes, 128 characters
    expect(Buffer.byteLength(ok)).toBe(255);
    expect(Buffer.byteLength(long)).toBe(256);
    expect(await onBoth(m, 'name-utf8', async (d) => [
      await code(fsp.writeFile(path.join(d, ok), 'x')),
      await code(fsp.writeFile(path.join(d, long), 'x')),
    ])).toEqual({ pagefs: ['OK', 'ENAMETOOLONG'], ext4: ['OK', 'ENAMETOOLONG'] });
  });

  // EINVAL
  it('rename of a directory into its own subdirectory: EINVAL', async () => {
    expect(await onBoth(m, 'einval-rename-sub', async (d) => {
      await fsp.mkdir(path.join(d, 'a', 'b'), { recursive: true });
      return [await code(fsp.rename(path.join(d, 'a'), path.join(d, 'a', 'b', 'c'))), await code(fsp.rename(path.join(d, 'a'), path.join(d, 'a', 'c')))];
    })).toEqual({ pagefs: ['EINVAL', 'EINVAL'], ext4: ['EINVAL', 'EINVAL'] });
    expect((await fsp.stat(path.join(m.mp, 'einval-rename-sub', 'a', 'b'))).isDirectory()).toBe(true);
  });
  it('readlink of a regular file: EINVAL', async () => {
    expect(await onBoth(m, 'einval-readlink', async (d) => {
      await fsp.writeFile(path.join(d, 'f'), 'x');
      return code(fsp.readlink(path.join(d, 'f')));
    })).toEqual(both('EINVAL'));
  });
  it('renameat2 with RENAME_NOREPLACE|RENAME_EXCHANGE: EINVAL', async () => {
    expect(await onBoth(m, 'einval-rename-flags', async (d) => {
      await fsp.writeFile(path.join(d, 'a'), 'a');
      await fsp.writeFile(path.join(d, 'b'), 'b');
      return probe(['renameat2', path.join(d, 'a'), path.join(d, 'b'), String(1 | 2)]);
    })).toEqual(both('EINVAL'));
  });

  // renameat2 flags
  it('renameat2 RENAME_NOREPLACE onto an existing name: EEXIST, and both files stay', async () => {
    expect(await onBoth(m, 'noreplace-exists', async (d) => {
      await fsp.writeFile(path.join(d, 'a'), 'A');
      await fsp.writeFile(path.join(d, 'b'), 'B');
      const c = await probe(['renameat2', path.join(d, 'a'), path.join(d, 'b'), '1']);
      return [c, await fsp.readFile(path.join(d, 'a'), 'utf8'), await fsp.readFile(path.join(d, 'b'), 'utf8')];
    })).toEqual({ pagefs: ['EEXIST', 'A', 'B'], ext4: ['EEXIST', 'A', 'B'] });
  });
  it('renameat2 RENAME_NOREPLACE onto a free name renames', async () => {
    expect(await onBoth(m, 'noreplace-free', async (d) => {
      await fsp.writeFile(path.join(d, 'a'), 'A');
      const c = await probe(['renameat2', path.join(d, 'a'), path.join(d, 'b'), '1']);
      return [c, await fsp.readdir(d), await fsp.readFile(path.join(d, 'b'), 'utf8')];
    })).toEqual({ pagefs: ['OK', ['b'], 'A'], ext4: ['OK', ['b'], 'A'] });
  });
  it('renameat2 RENAME_EXCHANGE swaps two files', async () => {
    expect(await onBoth(m, 'exchange-files', async (d) => {
      await fsp.writeFile(path.join(d, 'a'), 'A');
      await fsp.writeFile(path.join(d, 'b'), 'BB');
      const ia = (await fsp.stat(path.join(d, 'a'))).ino;
      const c = await probe(['renameat2', path.join(d, 'a'), path.join(d, 'b'), '2']);
      return [c, await fsp.readFile(path.join(d, 'a'), 'utf8'), await fsp.readFile(path.join(d, 'b'), 'utf8'),
        (await fsp.stat(path.join(d, 'b'))).ino === ia, (await fsp.readdir(d)).sort()];
    })).toEqual({ pagefs: ['OK', 'BB', 'A', true, ['a', 'b']], ext4: ['OK', 'BB', 'A', true, ['a', 'b']] });
  });
  it('renameat2 RENAME_EXCHANGE of a file and a directory in different parents swaps them and fixes the link counts', async () => {
    expect(await onBoth(m, 'exchange-dir', async (d) => {
      await fsp.mkdir(path.join(d, 'p1', 'sub'), { recursive: true });
      await fsp.writeFile(path.join(d, 'p1', 'sub', 'inside'), 'i');
      await fsp.mkdir(path.join(d, 'p2'));
      await fsp.writeFile(path.join(d, 'p2', 'file'), 'F');
      const before = [(await fsp.stat(path.join(d, 'p1'))).nlink, (await fsp.stat(path.join(d, 'p2'))).nlink];
      const c = await probe(['renameat2', path.join(d, 'p1', 'sub'), path.join(d, 'p2', 'file'), '2']);
      return {
        c, before,
        after: [(await fsp.stat(path.join(d, 'p1'))).nlink, (await fsp.stat(path.join(d, 'p2'))).nlink],
        p1sub: await fsp.readFile(path.join(d, 'p1', 'sub'), 'utf8'),
        p2file: await fsp.readdir(path.join(d, 'p2', 'file')),
        dotdot: (await fsp.stat(path.join(d, 'p2', 'file', '..'))).ino === (await fsp.stat(path.join(d, 'p2'))).ino,
      };
    })).toEqual(both({ c: 'OK', before: [3, 2], after: [2, 3], p1sub: 'F', p2file: ['inside'], dotdot: true } as any));
  });
  it('renameat2 RENAME_EXCHANGE with a missing target: ENOENT', async () => {
    expect(await onBoth(m, 'exchange-missing', async (d) => {
      await fsp.writeFile(path.join(d, 'a'), 'A');
      return probe(['renameat2', path.join(d, 'a'), path.join(d, 'b'), '2']);
    })).toEqual(both('ENOENT'));
  });

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m);
  });
});

describe('errno: file size limit (EFBIG at 16 TiB - 4 KiB with 4 KiB blocks, as ext4)', () => {
  let m: Mounted;
  beforeAll(async () => { m = await mountFresh({ blockSize: 4096 }); });
  afterAll(async () => { await m?.cleanup(); });

  it('pwrite at exactly the maximum size: EFBIG (as on ext4)', async () => {
    expect(await onBoth(m, 'efbig-write', async (d) => {
      const fh = await fsp.open(path.join(d, 'f'), 'w');
      try {
        return await code(fh.write(Buffer.from('x'), 0, 1, MAX_FILE));
      } finally {
        await fh.close();
      }
    })).toEqual(both('EFBIG'));
    expect((await fsp.stat(path.join(m.mp, 'efbig-write', 'f'))).size).toBe(0);
  });
  it('truncate to the maximum size + 1: EFBIG (as on ext4)', async () => {
    expect(await onBoth(m, 'efbig-truncate', async (d) => {
      await fsp.writeFile(path.join(d, 'f'), 'abc');
      return code(fsp.truncate(path.join(d, 'f'), MAX_FILE + 1));
    })).toEqual(both('EFBIG'));
    expect(await fsp.readFile(path.join(m.mp, 'efbig-truncate', 'f'), 'utf8')).toBe('abc');
  });
  it('the last byte below the maximum size can be written and read back; the size is then the maximum', async () => {
    const p = path.join(m.mp, 'efbig-last-byte');
    const fh = await fsp.open(p, 'w+');
    try {
      const w = await fh.write(Buffer.from('Z'), 0, 1, MAX_FILE - 1);
      expect(w.bytesWritten).toBe(1);
      await fh.sync();
      expect((await fh.stat()).size).toBe(MAX_FILE);
      const buf = Buffer.alloc(2);
      const r = await fh.read(buf, 0, 2, MAX_FILE - 1);
      expect(r.bytesRead).toBe(1);
      expect(buf.subarray(0, 1).toString()).toBe('Z');
      const z = Buffer.alloc(4096, 1);
      expect((await fh.read(z, 0, 4096, 8 * TiB)).bytesRead).toBe(4096);
      expect(z.equals(Buffer.alloc(4096))).toBe(true); // a hole reads as zeros
    } finally {
      await fh.close();
    }
    await fsp.unlink(p);
  });
  it('a write that crosses the maximum size is short: only the bytes below the limit are written', async () => {
    const p = path.join(m.mp, 'efbig-cross');
    const fh = await fsp.open(p, 'w+');
    try {
      const w = await fh.write(Buffer.from('AB'), 0, 2, MAX_FILE - 1);
      expect(w.bytesWritten).toBe(1);
      expect((await fh.stat()).size).toBe(MAX_FILE);
      await expect(fh.write(Buffer.from('C'), 0, 1, MAX_FILE)).rejects.toMatchObject({ code: 'EFBIG' });
    } finally {
      await fh.close();
    }
    await fsp.unlink(p);
  });
  it('truncate to exactly the maximum size works', async () => {
    const p = path.join(m.mp, 'efbig-truncate-max');
    await fsp.writeFile(p, '');
    await fsp.truncate(p, MAX_FILE);
    expect((await fsp.stat(p)).size).toBe(MAX_FILE);
    await fsp.unlink(p);
  });

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m);
  });
});

describe('errno: extended attributes (pagefs vs ext4)', () => {
  let m: Mounted;
  beforeAll(async () => { m = await mountFresh(); });
  afterAll(async () => { await m?.cleanup(); });

  const XATTR_CREATE = 1;
  const XATTR_REPLACE = 2;

  it('getxattr of a missing user xattr: ENODATA', async () => {
    expect(await onBoth(m, 'enodata-get', async (d) => {
      await fsp.writeFile(path.join(d, 'f'), 'x');
      return probe(['getxattr', path.join(d, 'f'), 'user.x']);
    })).toEqual(both('ENODATA'));
  });
  it('removexattr of a missing user xattr: ENODATA', async () => {
    expect(await onBoth(m, 'enodata-remove', async (d) => {
      await fsp.writeFile(path.join(d, 'f'), 'x');
      return probe(['removexattr', path.join(d, 'f'), 'user.x']);
    })).toEqual(both('ENODATA'));
  });
  it('set, get, list, remove round trip', async () => {
    const res = await onBoth(m, 'xattr-roundtrip', async (d) => {
      const f = path.join(d, 'f');
      await fsp.writeFile(f, 'x');
      return [
        await probe(['setxattr', f, 'user.a', 'hello']),
        await probe(['setxattr', f, 'user.b', 'world']),
        await probe(['getxattr', f, 'user.a']),
        await probe(['listxattr', f]),
        await probe(['setxattr', f, 'user.a', 'replaced']),
        await probe(['getxattr', f, 'user.a']),
        await probe(['removexattr', f, 'user.a']),
        await probe(['getxattr', f, 'user.a']),
        await probe(['listxattr', f]),
        await probe(['getxattr', f, 'user.b']),
      ];
    });
    expect(res.pagefs).toEqual(['OK', 'OK', 'OK:hello', 'OK:user.a,user.b', 'OK', 'OK:replaced', 'OK', 'ENODATA', 'OK:user.b', 'OK:world']);
    expect(res.pagefs).toEqual(res.ext4);
  });
  it('xattrs on a directory and survive a remount', async () => {
    const d = path.join(m.mp, 'xattr-dir');
    await fsp.mkdir(d);
    expect(await probe(['setxattr', d, 'user.dir', 'v1'])).toBe('OK');
    await m.unmount();
    await m.remount();
    expect(await probe(['getxattr', d, 'user.dir'])).toBe('OK:v1');
  });
  it('XATTR_CREATE on an existing xattr: EEXIST (value unchanged)', async () => {
    expect(await onBoth(m, 'xattr-create', async (d) => {
      const f = path.join(d, 'f');
      await fsp.writeFile(f, 'x');
      await probe(['setxattr', f, 'user.a', 'old']);
      return [await probe(['setxattr', f, 'user.a', 'new', String(XATTR_CREATE)]), await probe(['getxattr', f, 'user.a']),
        await probe(['setxattr', f, 'user.c', 'fresh', String(XATTR_CREATE)])];
    })).toEqual({ pagefs: ['EEXIST', 'OK:old', 'OK'], ext4: ['EEXIST', 'OK:old', 'OK'] });
  });
  it('XATTR_REPLACE on a missing xattr: ENODATA (nothing created)', async () => {
    expect(await onBoth(m, 'xattr-replace', async (d) => {
      const f = path.join(d, 'f');
      await fsp.writeFile(f, 'x');
      return [await probe(['setxattr', f, 'user.a', 'v', String(XATTR_REPLACE)]), await probe(['listxattr', f])];
    })).toEqual({ pagefs: ['ENODATA', 'OK:'], ext4: ['ENODATA', 'OK:'] });
  });
  it('getxattr with a too-small buffer: ERANGE; size 0 reports the size', async () => {
    expect(await onBoth(m, 'xattr-erange', async (d) => {
      const f = path.join(d, 'f');
      await fsp.writeFile(f, 'x');
      await probe(['setxattr', f, 'user.a', 'hello']);
      return [await probe(['getxattr', f, 'user.a', '1']), await probe(['getxattr', f, 'user.a', '0']), await probe(['getxattr', f, 'user.a', '5'])];
    })).toEqual({ pagefs: ['ERANGE', 'OK:size=5', 'OK:hello'], ext4: ['ERANGE', 'OK:size=5', 'OK:hello'] });
  });
  it('listxattr with a too-small buffer: ERANGE; size 0 reports the size', async () => {
    expect(await onBoth(m, 'xattr-list-erange', async (d) => {
      const f = path.join(d, 'f');
      await fsp.writeFile(f, 'x');
      await probe(['setxattr', f, 'user.abc', 'v']);
      return [await probe(['listxattr', f, '1']), await probe(['listxattr', f, '0'])];
    })).toEqual({ pagefs: ['ERANGE', 'OK:size=9'], ext4: ['ERANGE', 'OK:size=9'] });
  });
  it('an unknown namespace (foo.bar): EOPNOTSUPP for set and get', async () => {
    expect(await onBoth(m, 'xattr-namespace', async (d) => {
      const f = path.join(d, 'f');
      await fsp.writeFile(f, 'x');
      return [await probe(['setxattr', f, 'foo.bar', 'v']), await probe(['getxattr', f, 'foo.bar'])];
    })).toEqual({ pagefs: ['EOPNOTSUPP', 'EOPNOTSUPP'], ext4: ['EOPNOTSUPP', 'EOPNOTSUPP'] });
  });

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m);
  });
});

describe('errno: EACCES for a non-root user (mounted with -o allow_other)', () => {
  let m: Mounted;
  beforeAll(async () => {
    m = await mountFresh({ mountArgs: ['-o', 'allow_other'] });
    fs.chmodSync(m.dir, 0o755); // mkdtemp made it 0700: nobody must be stopped by the mount, not by its parent
  });
  afterAll(async () => { await m?.cleanup(); });

  const nobody = (args: string[]) => probe(args, NOBODY);

  it('nobody can read a 0644 root file (control)', async () => {
    expect(await onBoth(m, 'eacces-control', async (d) => {
      await fsp.chmod(d, 0o755);
      await fsp.writeFile(path.join(d, 'public'), 'hello');
      await fsp.chmod(path.join(d, 'public'), 0o644);
      return [await nobody(['read', path.join(d, 'public')]), await nobody(['listdir', d])];
    })).toEqual({ pagefs: ['OK:5', 'OK:public'], ext4: ['OK:5', 'OK:public'] });
  });
  it('nobody reading a 0600 root file: EACCES', async () => {
    expect(await onBoth(m, 'eacces-read', async (d) => {
      await fsp.chmod(d, 0o755);
      await fsp.writeFile(path.join(d, 'secret'), 'hello');
      await fsp.chmod(path.join(d, 'secret'), 0o600);
      return nobody(['read', path.join(d, 'secret')]);
    })).toEqual(both('EACCES'));
  });
  it('nobody writing a 0644 root file: EACCES', async () => {
    expect(await onBoth(m, 'eacces-write', async (d) => {
      await fsp.chmod(d, 0o755);
      await fsp.writeFile(path.join(d, 'f'), 'hello');
      await fsp.chmod(path.join(d, 'f'), 0o644);
      return nobody(['write', path.join(d, 'f')]);
    })).toEqual(both('EACCES'));
    expect(await fsp.readFile(path.join(m.mp, 'eacces-write', 'f'), 'utf8')).toBe('hello');
  });
  it('nobody creating a file in a 0755 root directory: EACCES', async () => {
    expect(await onBoth(m, 'eacces-create', async (d) => {
      await fsp.chmod(d, 0o755);
      return [await nobody(['create', path.join(d, 'new')]), await fsp.readdir(d)];
    })).toEqual({ pagefs: ['EACCES', []], ext4: ['EACCES', []] });
  });
  it('nobody traversing a 0700 root directory: EACCES', async () => {
    expect(await onBoth(m, 'eacces-traverse', async (d) => {
      await fsp.chmod(d, 0o755);
      await fsp.mkdir(path.join(d, 'private'));
      await fsp.chmod(path.join(d, 'private'), 0o700);
      await fsp.writeFile(path.join(d, 'private', 'f'), 'x');
      await fsp.chmod(path.join(d, 'private', 'f'), 0o644);
      return [await nobody(['stat', path.join(d, 'private', 'f')]), await nobody(['read', path.join(d, 'private', 'f')]),
        await nobody(['listdir', path.join(d, 'private')]), await nobody(['stat', path.join(d, 'private')])];
    })).toEqual({ pagefs: ['EACCES', 'EACCES', 'EACCES', 'OK'], ext4: ['EACCES', 'EACCES', 'EACCES', 'OK'] });
  });

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m);
  });
});

describe('errno: EACCES on the mountpoint without -o allow_other', () => {
  let m: Mounted;
  beforeAll(async () => {
    m = await mountFresh();
    fs.chmodSync(m.dir, 0o755);
  });
  afterAll(async () => { await m?.cleanup(); });

  it('root can use the mount; nobody can reach its parent but gets EACCES on the mountpoint', async () => {
    await fsp.writeFile(path.join(m.mp, 'f'), 'x');
    await fsp.chmod(path.join(m.mp, 'f'), 0o644);
    expect((await fsp.stat(m.mp)).mode & 0o777).toBe(0o755);
    expect(await probe(['stat', m.dir], NOBODY)).toBe('OK'); // control: the parent is reachable
    expect(await probe(['stat', m.mp], NOBODY)).toBe('EACCES');
    expect(await probe(['listdir', m.mp], NOBODY)).toBe('EACCES');
    expect(await probe(['read', path.join(m.mp, 'f')], NOBODY)).toBe('EACCES');
  });

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m);
  });
});

describe('errno: ENOSPC on an 8 MiB store, and service resumes after a delete', () => {
  let m: Mounted;
  beforeAll(async () => { m = await mountFresh({ capacity: '8M' }); });
  afterAll(async () => { await m?.cleanup(); });

  const CHUNK = 64 * 1024;
  const pattern = (i: number) => Buffer.alloc(CHUNK, (i * 7 + 1) & 0xff);

  /** Fills `dir` until ENOSPC; returns what happened, checking every step on the way. */
  async function fillUp(dir: string) {
    const before = await fsp.statfs(dir);
    const freeBytes = before.bfree * before.bsize;
    const p = path.join(dir, 'big');
    const fh = await fsp.open(p, 'w+');
    let written = 0;
    let err = 'none';
    let closed = false;
    try {
      for (let i = 0; written <= freeBytes + 4 * CHUNK; i++) {
        const buf = pattern(i);
        let off = 0;
        try {
          while (off < CHUNK) {
            const w = await fh.write(buf, off, CHUNK - off, i * CHUNK + off);
            if (w.bytesWritten === 0) throw Object.assign(new Error('zero-byte write'), { code: 'ZERO' });
            off += w.bytesWritten;
          }
        } catch (e: any) {
          written += off;
          err = e?.code ?? String(e);
          break;
        }
        written += off;
      }
      const sync = await code(fh.sync());
      const size = (await fh.stat()).size;
      // What was written is there, byte for byte.
      const back = Buffer.alloc(written);
      const r = await fh.read(back, 0, written, 0);
      let intact = r.bytesRead === written;
      for (let off = 0; intact && off < written; off += CHUNK) {
        const want = pattern(off / CHUNK).subarray(0, Math.min(CHUNK, written - off));
        intact = back.subarray(off, off + want.length).equals(want);
      }
      const close = await code(fh.close());
      closed = true;
      return { err, sync, close, sizeMatches: size === written, intact, written, freeBytes, blocks: before.blocks, bsize: before.bsize };
    } finally {
      if (!closed) await fh.close().catch(() => undefined);
    }
  }

  /**
   * statfs of `dir` once at least `fraction` of its blocks are free, or after 10 s: the
   * kernel forgets an unlinked inode (FORGET) asynchronously, so its blocks may be freed
   * a moment after unlink returns.
   */
  async function waitFree(dir: string, fraction: number) {
    let s = await fsp.statfs(dir);
    for (let t = 0; t < 100 && s.bfree < s.blocks * fraction; t++) {
      await new Promise((r) => setTimeout(r, 100));
      s = await fsp.statfs(dir);
    }
    return s;
  }

  it('writing until full ends in ENOSPC; fsync and close then succeed and the data is intact', async () => {
    const res = await onBoth(m, 'enospc', (d) => fillUp(d));
    for (const where of ['pagefs', 'ext4'] as Where[]) {
      const r = res[where];
      expect({ where, err: r.err, sync: r.sync, close: r.close, sizeMatches: r.sizeMatches, intact: r.intact })
        .toEqual({ where, err: 'ENOSPC', sync: 'OK', close: 'OK', sizeMatches: true, intact: true });
      expect(r.written).toBeLessThanOrEqual(r.freeBytes);
      expect(r.written).toBeGreaterThanOrEqual(r.freeBytes * 0.9);
    }
    // pagefs: 8 MiB of 4 KiB blocks, all of them usable.
    expect(res.pagefs.blocks * res.pagefs.bsize).toBe(8 << 20);
    expect(res.pagefs.written).toBe(8 << 20);
  });

  it('statfs shows the store full', async () => {
    const s = await fsp.statfs(m.mp);
    expect(s.bfree).toBe(0);
    expect(s.bavail).toBe(0);
  });

  it('after deleting the file, statfs shows the space free again and writes succeed', async () => {
    for (const dir of [path.join(m.mp, 'enospc'), path.join(extMp, 'enospc')]) {
      await fsp.unlink(path.join(dir, 'big'));
      const s = await waitFree(dir, 0.9);
      expect(s.bfree / s.blocks, `free fraction of ${dir}`).toBeGreaterThan(0.9);
      const data = Buffer.alloc(4 << 20, 0x5a);
      const p = path.join(dir, 'again');
      const fh = await fsp.open(p, 'w');
      try {
        expect((await fh.write(data, 0, data.length, 0)).bytesWritten).toBe(data.length);
        await fh.sync();
      } finally {
        await fh.close();
      }
      expect((await fsp.readFile(p)).equals(data)).toBe(true);
      await fsp.unlink(p);
    }
    // Every block of the store is free again.
    const s = await waitFree(m.mp, 1);
    expect([s.blocks, s.bfree, s.bavail]).toEqual([2048, 2048, 2048]);
  });

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m);
  });
});
