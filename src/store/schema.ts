/**
 * The on-disk format of a pagefs store: one SQLite database in WAL mode.
 *
 * FORMAT (version 2)
 *
 *   superblock   one row (id = 1): magic 'pagefs', format_version, block_size (bytes,
 *                a power of two, 1 KiB .. 64 KiB), capacity_blocks (data blocks the store
 *                may hold), uuid, next_pblock (high-water mark of physical blocks ever
 *                handed out), next_generation (the generation the inodes made by the
 *                next opening of the store will share; each opening that creates one takes
 *                it and adds one), and the owner of the mount
 *                (owner_pid, owner_start, owner_boot: who holds the store mounted).
 *   inodes       ino (rowid, AUTOINCREMENT so a number is never reused; 1 is the root;
 *                the daemon numbers new inodes from ranges it reserves in sqlite_sequence,
 *                Store.newIno),
 *                generation, mode, nlink, uid, gid, rdev, size, flags (the FS_*_FL bits of
 *                chattr: IMMUTABLE 0x10, APPEND 0x20, NODUMP 0x40, NOATIME 0x80; stores
 *                made before flags were kept hold 0), a/m/c/btime as seconds +
 *                nanoseconds (btime: creation, set once), target (symlink target bytes,
 *                else NULL), blocks (the inode's bmap rows, preallocated ones included:
 *                st_blocks without counting the map, whose rows grow with the file).
 *   dentries     id (rowid: the readdir cookie; a new entry always gets a larger id, so a
 *                listing resumed at a cookie never repeats an entry), parent, name (raw
 *                bytes, 1..255, no '/' or NUL), ino. UNIQUE(parent, name).
 *   bmap         (ino, fblock) -> pblock, flags. flags & 1 = UNWRITTEN: the block is
 *                allocated (fallocate) but reads as zeros, so space handed out never
 *                shows a previous owner's bytes.
 *   refs         pblock -> refcount (> 0): the allocated physical blocks.
 *   free_blocks  pblock: freed blocks, handed out again before the high-water mark grows.
 *   data         pblock -> bytes (exactly block_size). A freed block keeps its bytes, as a
 *                disk does; that is what makes reading a stale mapping dangerous, and why
 *                the invalidate_lock exists.
 *   xattrs       (ino, name) -> value. system.posix_acl_access and system.posix_acl_default
 *                hold POSIX ACLs in the kernel's xattr format (src/util/posixacl.ts).
 *
 * INVARIANTS (checked by fsck)
 *   I1  every pblock in [1, next_pblock) is in exactly one of refs, free_blocks.
 *   I2  refs.refcount = the number of bmap rows naming that pblock.
 *   I3  every bmap row names a pblock in refs; a row without UNWRITTEN has a data row.
 *   I4  count(refs) <= capacity_blocks.
 *   I5  every dentry's parent is a directory inode and its ino exists; every inode with
 *       nlink > 0 other than the root is named by nlink dentries (directories: by one),
 *       and a directory's nlink is 2 + its subdirectories.
 *   I6  no bmap row at or beyond ceil(size / block_size) unless the file was extended by
 *       fallocate KEEP_SIZE (those rows are UNWRITTEN or written beyond EOF by design).
 *   I7  an inode with nlink = 0 is an orphan: it lives only while the daemon that
 *       unlinked it still has it open or looked up, or holds its removal for a batch
 *       (a file without blocks, Vfs.reapOrphans), and is removed at the next mount.
 *   I8  a system.posix_acl_* value is a valid ACL with at least one entry beyond those
 *       the mode expresses (an equivalent access ACL is kept as the mode alone); a default
 *       ACL belongs to a directory; symlinks carry none.
 *   I9  inodes.flags has no bit outside INODE_FLAGS.
 *   I10 inodes.blocks = the number of bmap rows of that inode.
 *
 * Each operation that changes metadata runs in one SQLite transaction, so a crash at any
 * instant leaves every invariant true.
 */

export const MAGIC = 'pagefs';
export const FORMAT_VERSION: number = 2;
/**
 * Format versions this build opens. A version 1 store lacks inodes.blocks; a mount adds
 * the column and counts every file's map once (Store.upgrade), and the store is version
 * 2 from then on, which builds that read only version 1 refuse: they would change maps
 * without keeping the counts. Before that, fsck checks it as version 1 (without I10).
 */
export const OLDEST_FORMAT_VERSION: number = 1;
export const ROOT_INO = 1;
export const BMAP_UNWRITTEN = 1;
/** The inode flag bits a store may hold (FS_IMMUTABLE_FL | FS_APPEND_FL | FS_NODUMP_FL | FS_NOATIME_FL). */
export const INODE_FLAGS = 0xf0;

/**
 * Indexes that stores made by earlier builds carry and this one neither needs nor keeps
 * up to date; a mount drops them (Store.upgrade). Same format version: no query needs
 * them, so an older build mounting the store afterwards still works, only without them.
 *
 *   inodes_orphans  inodes(nlink) WHERE nlink = 0: every unlink wrote one more 16 KiB page
 *                   for it, and only the mount's orphan scan read it, which now scans the
 *                   inodes table (a few milliseconds for 100,000 inodes).
 */
export const RETIRED_INDEXES = ['inodes_orphans'];

export const DDL = `
CREATE TABLE superblock (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  magic TEXT NOT NULL,
  format_version INTEGER NOT NULL,
  block_size INTEGER NOT NULL,
  capacity_blocks INTEGER NOT NULL,
  uuid TEXT NOT NULL,
  created_s INTEGER NOT NULL,
  next_pblock INTEGER NOT NULL,
  next_generation INTEGER NOT NULL,
  owner_pid INTEGER,
  owner_start TEXT,
  owner_boot TEXT
);
CREATE TABLE inodes (
  ino INTEGER PRIMARY KEY AUTOINCREMENT,
  generation INTEGER NOT NULL,
  mode INTEGER NOT NULL,
  nlink INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  rdev INTEGER NOT NULL DEFAULT 0,
  size INTEGER NOT NULL DEFAULT 0,
  flags INTEGER NOT NULL DEFAULT 0,
  atime_s INTEGER NOT NULL, atime_ns INTEGER NOT NULL,
  mtime_s INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
  ctime_s INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
  btime_s INTEGER NOT NULL, btime_ns INTEGER NOT NULL,
  target BLOB,
  blocks INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE dentries (
  id INTEGER PRIMARY KEY,
  parent INTEGER NOT NULL,
  name BLOB NOT NULL,
  ino INTEGER NOT NULL,
  UNIQUE (parent, name)
);
CREATE INDEX dentries_by_parent ON dentries(parent, id);
CREATE INDEX dentries_by_ino ON dentries(ino);
CREATE TABLE bmap (
  ino INTEGER NOT NULL,
  fblock INTEGER NOT NULL,
  pblock INTEGER NOT NULL,
  flags INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (ino, fblock)
) WITHOUT ROWID;
CREATE TABLE refs (
  pblock INTEGER PRIMARY KEY,
  refcount INTEGER NOT NULL CHECK (refcount > 0)
);
CREATE TABLE free_blocks (
  pblock INTEGER PRIMARY KEY
);
CREATE TABLE data (
  pblock INTEGER PRIMARY KEY,
  bytes BLOB NOT NULL
);
CREATE TABLE xattrs (
  ino INTEGER NOT NULL,
  name BLOB NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (ino, name)
) WITHOUT ROWID;
`;

/**
 * SQLite page size chosen at mkfs. A 4 KiB block is a 4 KiB+ record; with 4 KiB pages
 * every block would spill into an overflow page (two pages per block). 16 KiB pages hold
 * three blocks each (75% use) while a random 4 KiB update rewrites 16 KiB of WAL, not
 * 64 KiB: the middle of the trade-off between space and write amplification.
 */
export const SQLITE_PAGE_SIZE = 16384;
