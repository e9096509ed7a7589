/**
 * The system calls Node lacks, from native-shim's `sys` module, for tests, stress tools
 * and CLI commands that run in processes other than the daemon. Each call is
 * synchronous and throws an Error with `.code` (the errno name, e.g. 'EOPNOTSUPP') and
 * `.errno` (positive number) on failure, like Node's own fs errors.
 */
import { loadNative } from '../fuse/binding.js';

export const FALLOC = {
  KEEP_SIZE: 0x01,
  PUNCH_HOLE: 0x02,
  NO_HIDE_STALE: 0x04,
  COLLAPSE_RANGE: 0x08,
  ZERO_RANGE: 0x10,
  INSERT_RANGE: 0x20,
  UNSHARE_RANGE: 0x40,
} as const;

export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const MAP_PRIVATE = 2;
export const MS_ASYNC = 1;
export const MS_INVALIDATE = 2;
export const MS_SYNC = 4;

export interface Mapping {
  /** Copies length bytes at offset (relative to the mapping start) out of the mapping. */
  read(offset: number, length: number): Buffer;
  /** Copies data into the mapping at offset. */
  write(offset: number, data: Buffer): void;
  msync(offset: number, length: number, flags: number): void;
  munmap(): void;
  readonly length: number;
}

export interface Sys {
  fallocate(fd: number, mode: number, offset: number | bigint, length: number | bigint): void;
  /** offIn/offOut null means "use and advance the file position". Returns bytes copied. */
  copyFileRange(fdIn: number, offIn: number | bigint | null, fdOut: number, offOut: number | bigint | null, length: number | bigint, flags: number): number;
  ficlone(destFd: number, srcFd: number): void;
  ficloneRange(destFd: number, srcFd: number, srcOffset: number, length: number, destOffset: number): void;
  /** Returns the new offset (a number; offsets here stay below 2^53). */
  lseek(fd: number, offset: number | bigint, whence: number): number;
  /** ioctl with an in/out argument buffer passed by pointer (for _IOR/_IOW/_IOWR commands); returns the ioctl result. */
  ioctl(fd: number, cmd: number, arg: Buffer | null): number;
  mmap(fd: number, offset: number, length: number, prot: number, flags: number): Mapping;
  /** open(2) with O_DIRECT or'd into flags. */
  openDirect(path: string, flags: number, mode?: number): number;
  /** pread/pwrite through a page-aligned bounce buffer, for O_DIRECT descriptors. */
  preadDirect(fd: number, length: number, offset: number): Buffer;
  pwriteDirect(fd: number, data: Buffer, offset: number): number;
  /** pread(2) into a new buffer of `length` bytes (0 to 2^31); returns the bytes read. Any offset, negative too. */
  pread(fd: number, length: number | bigint, offset: number | bigint): Buffer;
  /** pwrite(2) of the whole buffer at any offset; returns the bytes written. */
  pwrite(fd: number, data: Buffer, offset: number | bigint): number;
  /** ftruncate(2) and truncate(2) with any length, negative too. */
  ftruncate(fd: number, length: number | bigint): void;
  truncate(path: string, length: number | bigint): void;
  /**
   * stat(2): the basic fields only. node's fs.stat is statx(2) with STATX_BTIME, which on
   * a FUSE mount that serves birth times costs a request of its own after each lookup.
   */
  stat(path: string): { ino: number; mode: number; nlink: number; size: number; blocks: number };
  /** glibc's malloc_trim(0): returns the free pages inside malloc's arenas to the kernel. Touches no file (safe in the daemon). */
  mallocTrim(): number;
  /**
   * Anonymous memory of at least `bytes` (rounded up to 2 MiB), 2 MiB-aligned and advised
   * for transparent huge pages, as a Buffer; unmapped when collected. Touches no file
   * (safe in the daemon): the page cache's frames come from it (src/cache/frames.ts).
   */
  slab(bytes: number): Buffer;
}

export function sys(): Sys {
  return loadNative().sys as Sys;
}
