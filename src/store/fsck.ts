/**
 * fsck: checks every invariant of schema.ts against a store that no daemon is using,
 * and lists each violation as one line. Read-only: it reports, it never repairs.
 */
import type { DB, Superblock } from './open.js';
import { BMAP_UNWRITTEN, FORMAT_VERSION, INODE_FLAGS, ROOT_INO } from './schema.js';
import { aclProblem } from '../util/posixacl.js';

export interface FsckReport {
  problems: string[];
  notes: string[];
  inodes: number;
  usedBlocks: number;
  freeBlocks: number;
  sharedBlocks: number;
}

const LIMIT = 20;

export function fsck(db: DB, sb: Superblock): FsckReport {
  const problems: string[] = [];
  const notes: string[] = [];
  const all = (sql: string, ...args: unknown[]) => db.prepare(sql).all(...args) as any[];
  const one = (sql: string, ...args: unknown[]) => db.prepare(sql).pluck().get(...args) as any;
  const report = (rows: any[], fmt: (r: any) => string) => {
    for (const r of rows.slice(0, LIMIT)) problems.push(fmt(r));
    if (rows.length > LIMIT) problems.push(`... and ${rows.length - LIMIT} more like the above`);
  };
  const hwm = one('SELECT next_pblock FROM superblock WHERE id = 1') as number;
  const bs = sb.blockSize;

  // I1: each physical block below the high-water mark is allocated or free, never both.
  report(all('SELECT pblock FROM refs WHERE pblock IN (SELECT pblock FROM free_blocks)'), (r) => `block ${r.pblock} is both allocated and on the free list`);
  report(all('SELECT pblock FROM refs WHERE pblock < 1 OR pblock >= ? UNION ALL SELECT pblock FROM free_blocks WHERE pblock < 1 OR pblock >= ?', hwm, hwm),
    (r) => `block ${r.pblock} is outside the range handed out (1..${hwm - 1})`);
  const used = one('SELECT count(*) FROM refs') as number;
  const free = one('SELECT count(*) FROM free_blocks') as number;
  const both = one('SELECT count(*) FROM refs WHERE pblock IN (SELECT pblock FROM free_blocks)') as number;
  if (problems.length === 0 && used + free - both !== hwm - 1) {
    problems.push(`${hwm - 1 - (used + free - both)} block(s) are neither allocated nor free (leaked)`);
  }
  // I2, I3: refcounts equal references; references name allocated blocks; written blocks have bytes.
  report(all(`SELECT r.pblock, r.refcount, coalesce(b.c, 0) AS c FROM refs r
              LEFT JOIN (SELECT pblock, count(*) AS c FROM bmap GROUP BY pblock) b ON b.pblock = r.pblock
              WHERE coalesce(b.c, 0) != r.refcount`),
    (r) => `block ${r.pblock} has refcount ${r.refcount} but ${r.c} reference(s)`);
  report(all('SELECT ino, fblock, pblock FROM bmap WHERE pblock NOT IN (SELECT pblock FROM refs)'),
    (r) => `inode ${r.ino} block ${r.fblock} maps block ${r.pblock}, which is not allocated`);
  report(all(`SELECT b.ino, b.fblock, b.pblock FROM bmap b WHERE (b.flags & ${BMAP_UNWRITTEN}) = 0
              AND NOT EXISTS (SELECT 1 FROM data d WHERE d.pblock = b.pblock)`),
    (r) => `inode ${r.ino} block ${r.fblock} maps written block ${r.pblock}, which has no data`);
  report(all('SELECT pblock, length(bytes) AS n FROM data WHERE length(bytes) != ?', bs),
    (r) => `block ${r.pblock} holds ${r.n} bytes, not ${bs}`);
  // I4
  if (used > sb.capacityBlocks) problems.push(`${used} blocks allocated, more than the capacity of ${sb.capacityBlocks}`);
  // I5: the namespace.
  report(all('SELECT d.id, d.parent, d.ino FROM dentries d LEFT JOIN inodes i ON i.ino = d.ino WHERE i.ino IS NULL'),
    (r) => `entry ${r.id} in directory ${r.parent} names inode ${r.ino}, which does not exist`);
  report(all(`SELECT d.id, d.parent FROM dentries d LEFT JOIN inodes p ON p.ino = d.parent
              WHERE p.ino IS NULL OR (p.mode & 61440) != 16384`),
    (r) => `entry ${r.id} has parent ${r.parent}, which is not a directory`);
  report(all(`SELECT i.ino, i.nlink, coalesce(n.c, 0) AS c FROM inodes i
              LEFT JOIN (SELECT ino, count(*) AS c FROM dentries GROUP BY ino) n ON n.ino = i.ino
              WHERE (i.mode & 61440) != 16384 AND i.nlink > 0 AND coalesce(n.c, 0) != i.nlink`),
    (r) => `inode ${r.ino} has link count ${r.nlink} but ${r.c} name(s)`);
  report(all(`SELECT i.ino, i.nlink, coalesce(n.c, 0) AS names, coalesce(s.c, 0) AS subdirs FROM inodes i
              LEFT JOIN (SELECT ino, count(*) AS c FROM dentries GROUP BY ino) n ON n.ino = i.ino
              LEFT JOIN (SELECT d.parent, count(*) AS c FROM dentries d JOIN inodes c ON c.ino = d.ino
                         WHERE (c.mode & 61440) = 16384 GROUP BY d.parent) s ON s.parent = i.ino
              WHERE (i.mode & 61440) = 16384 AND i.nlink > 0
                AND (i.nlink != 2 + coalesce(s.c, 0) OR coalesce(n.c, 0) != (CASE WHEN i.ino = ${ROOT_INO} THEN 0 ELSE 1 END))`),
    (r) => `directory ${r.ino} has link count ${r.nlink}, ${r.names} name(s) and ${r.subdirs} subdirectories`);
  if (one('SELECT count(*) FROM inodes WHERE ino = ?', ROOT_INO) !== 1) problems.push('the root directory (inode 1) is missing');
  // I6: block maps belong to regular files and stay within the size unless preallocated.
  report(all(`SELECT DISTINCT b.ino FROM bmap b LEFT JOIN inodes i ON i.ino = b.ino WHERE i.ino IS NULL OR (i.mode & 61440) != 32768`),
    (r) => `inode ${r.ino} has a block map but is not a regular file`);
  report(all(`SELECT b.ino, b.fblock, i.size FROM bmap b JOIN inodes i ON i.ino = b.ino
              WHERE (b.flags & ${BMAP_UNWRITTEN}) = 0 AND b.fblock * ? >= i.size`, bs),
    (r) => `inode ${r.ino} has written block ${r.fblock} past its size ${r.size}`);
  report(all(`SELECT ino FROM inodes WHERE (mode & 61440) = 40960 AND (target IS NULL OR length(target) != size)`),
    (r) => `symlink ${r.ino} has no target or a size that differs from it`);
  report(all(`SELECT x.ino FROM xattrs x LEFT JOIN inodes i ON i.ino = x.ino WHERE i.ino IS NULL GROUP BY x.ino`),
    (r) => `xattrs belong to inode ${r.ino}, which does not exist`);
  // I8: ACL rows.
  report(all(`SELECT x.ino, x.name, x.value, i.mode FROM xattrs x JOIN inodes i ON i.ino = x.ino
              WHERE x.name IN (CAST('system.posix_acl_access' AS BLOB), CAST('system.posix_acl_default' AS BLOB))`)
    .map((r) => ({ ...r, problem: aclProblem(r.name, r.value, r.mode) })).filter((r) => r.problem),
  (r) => `inode ${r.ino}: ${Buffer.from(r.name).toString('latin1')}: ${r.problem}`);
  // I9
  report(all(`SELECT ino, flags FROM inodes WHERE (flags & ~${INODE_FLAGS}) != 0`),
    (r) => `inode ${r.ino} has unknown flags 0x${(r.flags as number).toString(16)}`);
  // I10: each inode's count of mapped blocks (st_blocks); version 1 stores have none yet.
  if (sb.formatVersion >= 2) {
    report(all(`SELECT i.ino, i.blocks, coalesce(b.c, 0) AS c FROM inodes i
                LEFT JOIN (SELECT ino, count(*) AS c FROM bmap GROUP BY ino) b ON b.ino = i.ino
                WHERE i.blocks != coalesce(b.c, 0)`),
      (r) => `inode ${r.ino} counts ${r.blocks} mapped block(s) but maps ${r.c}`);
  } else {
    notes.push(`store format version ${sb.formatVersion}: the next mount upgrades it to version ${FORMAT_VERSION} (each file's count of mapped blocks is then kept in its inode)`);
  }
  // I7: orphans are legal after a crash; the next mount removes them.
  const orphans = one('SELECT count(*) FROM inodes WHERE nlink = 0') as number;
  if (orphans > 0) notes.push(`${orphans} orphaned inode(s) (unlinked, and still open or not yet removed, when the daemon stopped); the next mount removes them`);

  return {
    problems, notes,
    inodes: one('SELECT count(*) FROM inodes') as number,
    usedBlocks: used,
    freeBlocks: sb.capacityBlocks - used,
    sharedBlocks: one('SELECT count(*) FROM refs WHERE refcount > 1') as number,
  };
}
