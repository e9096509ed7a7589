/**
 * native-shim `sys`: every call against a real local filesystem (/tmp, and tmpfs at
 * /dev/shm for the clone errors), checking both results and the errno that the kernel
 * gives for bad input, passed through unchanged with .code/.errno.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  sys, FALLOC, SEEK_DATA, SEEK_HOLE, PROT_READ, PROT_WRITE, MAP_SHARED, MS_SYNC, MS_ASYNC,
} from '../../src/sys/index.js';

const SEEK_SET = 0;
const SEEK_CUR = 1;
const FS_IOC_GETFLAGS = 0x80086601;
const O_DIRECT = 0o40000; // x86_64
const CHUNK = 64 * 1024; // a multiple of every block size a local fs uses

const S = sys();
let dir: string;
let shmDir: string;

function errnoOf(fn: () => unknown): { code: string; errno: number; message: string } {
  try {
    fn();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    expect(err).toBeInstanceOf(Error);
    return { code: err.code!, errno: err.errno!, message: err.message };
  }
  throw new Error('expected the call to throw');
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

function openRw(name: string, base = dir): number {
  return fs.openSync(path.join(base, name), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pagefs-sys-'));
  const shm = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  shmDir = fs.mkdtempSync(path.join(shm, 'pagefs-sys-'));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(shmDir, { recursive: true, force: true });
});

describe('errors', () => {
  it('carry the syscall, the errno name and the positive errno', () => {
    const fd = openRw('err');
    try {
      // PUNCH_HOLE without KEEP_SIZE is refused by the VFS itself on every filesystem.
      const e = errnoOf(() => S.fallocate(fd, FALLOC.PUNCH_HOLE, 0, 4096));
      expect(e).toEqual({ code: 'EOPNOTSUPP', errno: 95, message: 'fallocate: Operation not supported' });
    } finally {
      fs.closeSync(fd);
    }
  });

  it('bad argument types throw TypeError before any syscall', () => {
    expect(() => S.fallocate('3' as unknown as number, 0, 0, 1)).toThrow(TypeError);
    expect(() => S.lseek(0, '1' as unknown as number, SEEK_SET)).toThrow(TypeError);
    expect(() => S.ioctl(0, FS_IOC_GETFLAGS, 'x' as unknown as Buffer)).toThrow(TypeError);
  });
});

describe('fallocate and lseek', () => {
  it('punches a hole that SEEK_HOLE and SEEK_DATA report, size kept', () => {
    const fd = openRw('holes');
    try {
      fs.writeSync(fd, pattern(3 * CHUNK, 1), 0, 3 * CHUNK, 0);
      fs.fsyncSync(fd);
      S.fallocate(fd, FALLOC.PUNCH_HOLE | FALLOC.KEEP_SIZE, CHUNK, CHUNK);
      expect(fs.fstatSync(fd).size).toBe(3 * CHUNK);
      const back = Buffer.alloc(3 * CHUNK);
      fs.readSync(fd, back, 0, back.length, 0);
      expect(back.subarray(CHUNK, 2 * CHUNK).every((b) => b === 0)).toBe(true);
      expect(back.subarray(0, CHUNK).equals(pattern(3 * CHUNK, 1).subarray(0, CHUNK))).toBe(true);
      expect(S.lseek(fd, 0, SEEK_HOLE)).toBe(CHUNK);
      expect(S.lseek(fd, CHUNK, SEEK_DATA)).toBe(2 * CHUNK);
      expect(S.lseek(fd, BigInt(CHUNK + 5), SEEK_DATA)).toBe(2 * CHUNK);
      // Past EOF there is no data: the kernel answers ENXIO.
      expect(errnoOf(() => S.lseek(fd, 3 * CHUNK, SEEK_DATA)).code).toBe('ENXIO');
    } finally {
      fs.closeSync(fd);
    }
  });

  it('allocates with mode 0 and with KEEP_SIZE', () => {
    const fd = openRw('alloc');
    try {
      S.fallocate(fd, 0, 0, 2 * CHUNK);
      expect(fs.fstatSync(fd).size).toBe(2 * CHUNK);
      S.fallocate(fd, FALLOC.KEEP_SIZE, 2 * CHUNK, BigInt(CHUNK));
      expect(fs.fstatSync(fd).size).toBe(2 * CHUNK);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('passes negative and huge values to the kernel unchanged', () => {
    const fd = openRw('range');
    try {
      expect(errnoOf(() => S.fallocate(fd, 0, -1, 4096))).toMatchObject({ code: 'EINVAL', errno: 22 });
      expect(errnoOf(() => S.fallocate(fd, 0, 0, 0))).toMatchObject({ code: 'EINVAL' });
      // offset + len beyond s_maxbytes: EFBIG, which proves 2^63-1 arrived intact (a wrap would be EINVAL).
      expect(errnoOf(() => S.fallocate(fd, 0, 0, 2n ** 63n - 1n)).code).toBe('EFBIG');
      expect(errnoOf(() => S.lseek(fd, -1, SEEK_SET)).code).toBe('EINVAL');
      expect(errnoOf(() => S.lseek(fd, -1n, SEEK_SET)).code).toBe('EINVAL');
      expect(S.lseek(fd, 2n ** 40n, SEEK_SET)).toBe(2 ** 40);
      expect(() => S.lseek(fd, 2n ** 64n, SEEK_SET)).toThrow(RangeError);
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('copyFileRange', () => {
  it('copies at explicit offsets', () => {
    const src = openRw('cfr-src');
    const dst = openRw('cfr-dst');
    try {
      fs.writeSync(src, pattern(10000, 7), 0, 10000, 0);
      expect(S.copyFileRange(src, 1000, dst, 500, 4000, 0)).toBe(4000);
      const out = fs.readFileSync(path.join(dir, 'cfr-dst'));
      expect(out.length).toBe(4500);
      expect(out.subarray(500).equals(pattern(10000, 7).subarray(1000, 5000))).toBe(true);
    } finally {
      fs.closeSync(src);
      fs.closeSync(dst);
    }
  });

  it('null offsets use and advance the file positions', () => {
    const src = openRw('cfr-pos-src');
    const dst = openRw('cfr-pos-dst');
    try {
      fs.writeSync(src, pattern(8192, 3), 0, 8192, 0);
      S.lseek(src, 100, SEEK_SET);
      S.lseek(dst, 10, SEEK_SET);
      expect(S.copyFileRange(src, null, dst, null, 1000, 0)).toBe(1000);
      expect(S.lseek(src, 0, SEEK_CUR)).toBe(1100);
      expect(S.lseek(dst, 0, SEEK_CUR)).toBe(1010);
      const out = fs.readFileSync(path.join(dir, 'cfr-pos-dst'));
      expect(out.subarray(10).equals(pattern(8192, 3).subarray(100, 1100))).toBe(true);
    } finally {
      fs.closeSync(src);
      fs.closeSync(dst);
    }
  });

  it('reports the kernel error for bad flags', () => {
    const src = openRw('cfr-flags-src');
    const dst = openRw('cfr-flags-dst');
    try {
      expect(errnoOf(() => S.copyFileRange(src, 0, dst, 0, 10, 1))).toMatchObject({ code: 'EINVAL', errno: 22 });
    } finally {
      fs.closeSync(src);
      fs.closeSync(dst);
    }
  });
});

describe('ficlone / ficloneRange', () => {
  it('fail with a clone errno on filesystems without reflink', () => {
    const a = openRw('clone-a', shmDir);
    const b = openRw('clone-b', shmDir);
    try {
      fs.writeSync(a, pattern(CHUNK, 9), 0, CHUNK, 0);
      const e = errnoOf(() => S.ficlone(b, a));
      expect(['EOPNOTSUPP', 'EXDEV', 'EINVAL']).toContain(e.code);
      expect(e.message.startsWith('ioctl(FICLONE): ')).toBe(true);
      const r = errnoOf(() => S.ficloneRange(b, a, 0, CHUNK, 0));
      expect(['EOPNOTSUPP', 'EXDEV', 'EINVAL']).toContain(r.code);
    } finally {
      fs.closeSync(a);
      fs.closeSync(b);
    }
  });

  it('fail with EXDEV across mounts', () => {
    if (fs.statSync(dir).dev === fs.statSync(shmDir).dev) return; // one filesystem: nothing to cross
    const a = openRw('xdev-a', shmDir);
    const b = openRw('xdev-b');
    try {
      expect(errnoOf(() => S.ficlone(b, a)).code).toBe('EXDEV');
    } finally {
      fs.closeSync(a);
      fs.closeSync(b);
    }
  });
});

describe('ioctl', () => {
  it('FS_IOC_GETFLAGS fills the buffer (or the fs says ENOTTY)', () => {
    const fd = openRw('flags');
    try {
      const buf = Buffer.alloc(8, 0xee);
      let rc: number | undefined;
      try {
        rc = S.ioctl(fd, FS_IOC_GETFLAGS, buf);
      } catch (e) {
        expect((e as NodeJS.ErrnoException).code).toBe('ENOTTY');
      }
      if (rc !== undefined) {
        expect(rc).toBe(0);
        // The kernel writes an int: the first 4 bytes changed, the rest did not.
        expect(buf.readUInt32LE(4)).toBe(0xeeeeeeee);
        // The same command written as a negative int32 (JS bit arithmetic) is the same command.
        const again = Buffer.alloc(8, 0xee);
        expect(S.ioctl(fd, FS_IOC_GETFLAGS | 0, again)).toBe(0);
        expect(again.equals(buf)).toBe(true);
        // A null argument is a NULL pointer: the kernel's copy-out faults.
        expect(errnoOf(() => S.ioctl(fd, FS_IOC_GETFLAGS, null)).code).toBe('EFAULT');
      }
    } finally {
      fs.closeSync(fd);
    }
  });

  it('an unknown command gives ENOTTY', () => {
    const fd = openRw('ioctl-unknown');
    try {
      expect(errnoOf(() => S.ioctl(fd, 0x4004ffee, Buffer.alloc(4))).code).toBe('ENOTTY');
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('mmap', () => {
  it('writes through a shared mapping are seen by read(2) after msync', () => {
    const fd = openRw('map');
    try {
      fs.ftruncateSync(fd, 2 * 4096);
      const m = S.mmap(fd, 0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED);
      expect(m.length).toBe(2 * 4096);
      m.write(5000, Buffer.from('hello mmap'));
      // An unaligned start: the addon rounds down to the page for msync(2).
      m.msync(5000, 10, MS_SYNC);
      const onDisk = fs.readFileSync(path.join(dir, 'map'));
      expect(onDisk.subarray(5000, 5010).toString()).toBe('hello mmap');
      // And the other way: write(2) is visible through the mapping (one page cache).
      fs.writeSync(fd, Buffer.from('from write'), 0, 10, 100);
      expect(m.read(100, 10).toString()).toBe('from write');
      m.msync(0, 2 * 4096, MS_ASYNC);
      expect(() => m.read(8190, 10)).toThrow(RangeError);
      expect(() => m.write(8190, Buffer.alloc(10))).toThrow(RangeError);
      m.munmap();
      m.munmap(); // idempotent
      expect(() => m.read(0, 1)).toThrow(/unmapped/);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('mmap at an offset, and errors from the kernel', () => {
    const fd = openRw('map-off');
    try {
      fs.writeSync(fd, pattern(3 * 4096, 5), 0, 3 * 4096, 0);
      const m = S.mmap(fd, 4096, 4096, PROT_READ, MAP_SHARED);
      expect(m.read(0, 4096).equals(pattern(3 * 4096, 5).subarray(4096, 8192))).toBe(true);
      m.munmap();
      // An offset that is not page-aligned is EINVAL.
      expect(errnoOf(() => S.mmap(fd, 100, 4096, PROT_READ, MAP_SHARED))).toMatchObject({ code: 'EINVAL', message: 'mmap: Invalid argument' });
    } finally {
      fs.closeSync(fd);
    }
    // A read-only descriptor cannot be mapped shared and writable.
    const ro = fs.openSync(path.join(dir, 'map-off'), 'r');
    try {
      expect(errnoOf(() => S.mmap(ro, 0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED)).code).toBe('EACCES');
    } finally {
      fs.closeSync(ro);
    }
  });
});

describe('O_DIRECT', () => {
  it('openDirect sets O_DIRECT and aligned I/O round-trips', () => {
    const file = path.join(dir, 'direct');
    const fd = S.openDirect(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    try {
      const flags = parseInt(/flags:\s+([0-7]+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1], 8);
      expect(flags & O_DIRECT).toBe(O_DIRECT);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      const data = pattern(2 * 4096, 11);
      expect(S.pwriteDirect(fd, data, 4096)).toBe(data.length);
      expect(S.preadDirect(fd, 2 * 4096, 4096).equals(data)).toBe(true);
      // A short read at EOF comes back short, not padded.
      expect(S.preadDirect(fd, 4 * 4096, 2 * 4096).length).toBe(4096);
      // Unaligned offsets are refused by the filesystem's O_DIRECT path.
      expect(errnoOf(() => S.preadDirect(fd, 4096, 100)).code).toBe('EINVAL');
    } finally {
      fs.closeSync(fd);
    }
  });

  it('openDirect reports open(2) errors', () => {
    expect(errnoOf(() => S.openDirect(path.join(dir, 'missing', 'x'), fs.constants.O_RDONLY))).toMatchObject({
      code: 'ENOENT', errno: 2, message: 'open: No such file or directory',
    });
  });
});

describe('raw pread, pwrite, ftruncate, truncate', () => {
  it('round-trip at any offset, BigInt too; negative and huge values reach the kernel and come back as its errno', () => {
    const file = path.join(dir, 'raw');
    const fd = fs.openSync(file, 'w+');
    try {
      const data = pattern(5000, 3);
      expect(S.pwrite(fd, data, 2n ** 32n)).toBe(5000);
      expect(S.pread(fd, 6000, 2 ** 32).equals(data)).toBe(true); // short at EOF
      expect(S.pread(fd, 0, 0).length).toBe(0);
      expect(S.pwrite(fd, Buffer.alloc(0), 7)).toBe(0);
      expect(errnoOf(() => S.pread(fd, 10, -1))).toMatchObject({ code: 'EINVAL', message: 'pread: Invalid argument' });
      expect(errnoOf(() => S.pwrite(fd, data, -4096n)).code).toBe('EINVAL');
      expect(errnoOf(() => S.pwrite(fd, data, 2n ** 63n - 1n)).code).toMatch(/^E(FBIG|INVAL|OVERFLOW)$/);
      S.ftruncate(fd, 10n);
      expect(fs.fstatSync(fd).size).toBe(10);
      expect(errnoOf(() => S.ftruncate(fd, -1)).code).toBe('EINVAL');
      S.truncate(file, 2n ** 33n);
      expect(fs.statSync(file).size).toBe(2 ** 33);
      expect(errnoOf(() => S.truncate(file, -1n)).code).toBe('EINVAL');
      expect(errnoOf(() => S.truncate(path.join(dir, 'missing'), 0)).code).toBe('ENOENT');
      // Our buffer, our bounds: a length that cannot be allocated is refused before the syscall.
      expect(() => S.pread(fd, -1, 0)).toThrow(RangeError);
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('stat', () => {
  it('gives stat(2)\'s inode, mode, link count, size and blocks, and the kernel\'s errno', () => {
    const file = path.join(dir, 'st');
    fs.writeFileSync(file, Buffer.alloc(10_000, 1), { mode: 0o640 });
    fs.linkSync(file, path.join(dir, 'st2'));
    const want = fs.statSync(file);
    expect(S.stat(file)).toEqual({ ino: want.ino, mode: want.mode, nlink: 2, size: 10_000, blocks: want.blocks });
    expect(errnoOf(() => S.stat(path.join(dir, 'missing'))).code).toBe('ENOENT');
    expect(errnoOf(() => S.stat(path.join(file, 'x'))).code).toBe('ENOTDIR');
  });
});
