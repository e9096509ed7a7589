/** The fsx checker's operations: their names, default weights and help texts. */
export const FSX_OPS = [
  'read', 'write', 'mapread', 'mapwrite', 'dread', 'truncate',
  'falloc', 'falloc_keep', 'punch', 'zero', 'zero_keep', 'collapse', 'insert',
  'copy', 'fsync', 'reopen', 'seek',
] as const;
export type FsxOp = (typeof FSX_OPS)[number];

/** Relative frequencies; --op-mix overrides single entries (0 switches an operation off). */
export const DEFAULT_MIX: Record<FsxOp, number> = {
  read: 20, write: 20, mapread: 8, mapwrite: 8, dread: 3, truncate: 6,
  falloc: 3, falloc_keep: 3, punch: 5, zero: 4, zero_keep: 3, collapse: 3, insert: 3,
  copy: 8, fsync: 2, reopen: 2, seek: 3,
};

/** What each operation does, for --help and the README. */
export const OP_HELP: Record<FsxOp, string> = {
  read: 'pread(2), checked against the model (and fstat size)',
  write: 'pwrite(2): stamped blocks when block-aligned, random bytes otherwise',
  mapread: 'mmap MAP_SHARED PROT_READ of the file, read a range, and the rest of the EOF page must be zero',
  mapwrite: 'mmap MAP_SHARED PROT_READ|PROT_WRITE, store, msync(MS_SYNC) (ftruncate first when it extends)',
  dread: 'O_DIRECT pread of page-aligned ranges',
  truncate: 'ftruncate up or down',
  falloc: 'fallocate mode 0',
  falloc_keep: 'fallocate KEEP_SIZE',
  punch: 'fallocate PUNCH_HOLE|KEEP_SIZE',
  zero: 'fallocate ZERO_RANGE',
  zero_keep: 'fallocate ZERO_RANGE|KEEP_SIZE',
  collapse: 'fallocate COLLAPSE_RANGE (pagefs: its ioctl)',
  insert: 'fallocate INSERT_RANGE (pagefs: its ioctl)',
  copy: 'copy_file_range within a file and across files',
  fsync: 'fsync(2)',
  reopen: 'close and open again',
  seek: 'lseek SEEK_DATA / SEEK_HOLE: no data skipped, a hole reads as zeros',
};
