/**
 * The dentries table: (parent, name) -> ino, with the row id as the readdir cookie.
 * Names are raw bytes (Buffers): Linux names are byte strings, not UTF-8.
 */
import type { DB } from './open.js';

export interface DirEntryRow {
  id: number;
  name: Buffer;
  ino: number;
}

export class DentryTable {
  private readonly lookupStmt;
  private readonly insertStmt;
  private readonly deleteStmt;
  private readonly listStmt;
  private readonly anyStmt;
  private readonly deleteAllStmt;
  private readonly parentStmt;
  private readonly retargetStmt;

  constructor(db: DB) {
    this.lookupStmt = db.prepare('SELECT ino FROM dentries WHERE parent = ? AND name = ?').pluck();
    this.insertStmt = db.prepare('INSERT INTO dentries (parent, name, ino) VALUES (?, ?, ?)');
    this.deleteStmt = db.prepare('DELETE FROM dentries WHERE parent = ? AND name = ?');
    this.listStmt = db.prepare('SELECT id, name, ino FROM dentries WHERE parent = ? AND id > ? ORDER BY id LIMIT ?');
    this.anyStmt = db.prepare('SELECT 1 FROM dentries WHERE parent = ? LIMIT 1').pluck();
    this.deleteAllStmt = db.prepare('DELETE FROM dentries WHERE parent = ?');
    this.parentStmt = db.prepare('SELECT parent FROM dentries WHERE ino = ? LIMIT 1').pluck();
    this.retargetStmt = db.prepare('UPDATE dentries SET ino = ? WHERE parent = ? AND name = ?');
  }

  lookup(parent: number, name: Buffer): number | undefined {
    return this.lookupStmt.get(parent, name) as number | undefined;
  }

  insert(parent: number, name: Buffer, ino: number): void {
    this.insertStmt.run(parent, name, ino);
  }

  /**
   * Points an existing entry at another inode, keeping its row id: a name that exists
   * throughout a rename over it or an exchange keeps its place in listings (a new row
   * would give it a new cookie, and a listing under way would show it twice).
   */
  retarget(parent: number, name: Buffer, ino: number): void {
    this.retargetStmt.run(ino, parent, name);
  }

  remove(parent: number, name: Buffer): void {
    this.deleteStmt.run(parent, name);
  }

  /** Entries of `parent` whose cookie is greater than `afterId`, in cookie order. */
  list(parent: number, afterId: number, limit: number): DirEntryRow[] {
    return this.listStmt.all(parent, afterId, limit) as DirEntryRow[];
  }

  /** The directory holding an entry for `ino` (for a directory: its only one). */
  parentOf(ino: number): number | undefined {
    return this.parentStmt.get(ino) as number | undefined;
  }

  isEmpty(parent: number): boolean {
    return this.anyStmt.get(parent) === undefined;
  }

  removeAll(parent: number): void {
    this.deleteAllStmt.run(parent);
  }
}
