/**
 * The inodes table. Rows are read whole into an InodeRecord and written whole: an inode
 * row is small, and writing all fields keeps one statement per change.
 */
import type { DB } from './open.js';

export interface InodeRecord {
  ino: number;
  generation: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  flags: number;
  atimeS: number; atimeNs: number;
  mtimeS: number; mtimeNs: number;
  ctimeS: number; ctimeNs: number;
  btimeS: number; btimeNs: number;
  target: Buffer | null;
}

const COLS = `ino, generation, mode, nlink, uid, gid, rdev, size, flags,
  atime_s AS atimeS, atime_ns AS atimeNs, mtime_s AS mtimeS, mtime_ns AS mtimeNs,
  ctime_s AS ctimeS, ctime_ns AS ctimeNs, btime_s AS btimeS, btime_ns AS btimeNs, target`;

export class InodeTable {
  private readonly getStmt;
  private readonly insertStmt;
  private readonly updateStmt;
  private readonly deleteStmt;
  private readonly orphansStmt;
  private readonly countStmt;

  constructor(db: DB) {
    this.getStmt = db.prepare(`SELECT ${COLS} FROM inodes WHERE ino = ?`);
    // ino NULL: AUTOINCREMENT numbers the row.
    this.insertStmt = db.prepare(`INSERT INTO inodes (ino, generation, mode, nlink, uid, gid, rdev, size, flags,
        atime_s, atime_ns, mtime_s, mtime_ns, ctime_s, ctime_ns, btime_s, btime_ns, target)
      VALUES (@ino, @generation, @mode, @nlink, @uid, @gid, @rdev, @size, @flags,
        @atimeS, @atimeNs, @mtimeS, @mtimeNs, @ctimeS, @ctimeNs, @btimeS, @btimeNs, @target)`);
    this.updateStmt = db.prepare(`UPDATE inodes SET mode = @mode, nlink = @nlink, uid = @uid, gid = @gid,
        rdev = @rdev, size = @size, flags = @flags, atime_s = @atimeS, atime_ns = @atimeNs,
        mtime_s = @mtimeS, mtime_ns = @mtimeNs, ctime_s = @ctimeS, ctime_ns = @ctimeNs
      WHERE ino = @ino`);
    this.deleteStmt = db.prepare('DELETE FROM inodes WHERE ino = ?');
    this.orphansStmt = db.prepare('SELECT ino FROM inodes WHERE nlink = 0').pluck();
    this.countStmt = db.prepare('SELECT count(*) FROM inodes').pluck();
  }

  get(ino: number): InodeRecord | undefined {
    return this.getStmt.get(ino) as InodeRecord | undefined;
  }

  /**
   * Inserts a new inode and returns its number: `ino` (from Store.newIno), or without it
   * the next AUTOINCREMENT gives (which writes sqlite_sequence); `rec.ino` is ignored.
   */
  insert(rec: Omit<InodeRecord, 'ino'>, ino?: number): number {
    return Number(this.insertStmt.run({ ...rec, ino: ino ?? null }).lastInsertRowid);
  }

  update(rec: InodeRecord): void {
    this.updateStmt.run(rec);
  }

  delete(ino: number): void {
    this.deleteStmt.run(ino);
  }

  orphans(): number[] {
    return this.orphansStmt.all() as number[];
  }

  count(): number {
    return this.countStmt.get() as number;
  }
}
