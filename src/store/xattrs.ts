/** The xattrs table: (ino, name) -> value, names and values as raw bytes. */
import type { DB } from './open.js';

export class XattrTable {
  private readonly getStmt;
  private readonly setStmt;
  private readonly deleteStmt;
  private readonly listStmt;
  private readonly deleteAllStmt;
  private readonly usageStmt;

  constructor(db: DB) {
    this.getStmt = db.prepare('SELECT value FROM xattrs WHERE ino = ? AND name = ?').pluck();
    this.setStmt = db.prepare('INSERT OR REPLACE INTO xattrs (ino, name, value) VALUES (?, ?, ?)');
    this.deleteStmt = db.prepare('DELETE FROM xattrs WHERE ino = ? AND name = ?');
    this.listStmt = db.prepare('SELECT name FROM xattrs WHERE ino = ? ORDER BY name').pluck();
    this.deleteAllStmt = db.prepare('DELETE FROM xattrs WHERE ino = ?');
    this.usageStmt = db.prepare(`SELECT COUNT(*) AS count, COALESCE(SUM(length(name)), 0) AS names, COALESCE(SUM(length(value)), 0) AS values_
      FROM xattrs WHERE ino = ? AND name != ?`);
  }

  /** The number of `ino`'s xattrs other than `except`, and the bytes of their names and values. */
  usage(ino: number, except: Buffer): { count: number; names: number; values: number } {
    const r = this.usageStmt.get(ino, except) as { count: number; names: number; values_: number };
    return { count: r.count, names: r.names, values: r.values_ };
  }

  get(ino: number, name: Buffer): Buffer | undefined {
    return this.getStmt.get(ino, name) as Buffer | undefined;
  }

  set(ino: number, name: Buffer, value: Buffer): void {
    this.setStmt.run(ino, name, value);
  }

  /** Returns whether the attribute existed. */
  remove(ino: number, name: Buffer): boolean {
    return this.deleteStmt.run(ino, name).changes > 0;
  }

  list(ino: number): Buffer[] {
    return this.listStmt.all(ino) as Buffer[];
  }

  removeAll(ino: number): void {
    this.deleteAllStmt.run(ino);
  }
}
