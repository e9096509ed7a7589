/** The store-fault table (errno per SQLite code) and its log: one line per fault, one when it ends. */
import { describe, it, expect } from 'vitest';
import { storeFault, StoreHealth, StoreGoneError } from '../../src/store/faults.js';

const sqliteError = (code: string) => Object.assign(new Error('msg'), { code });

describe('storeFault', () => {
  it('maps each SQLite fault of the store file to its errno and kind', () => {
    const cases: [unknown, string, string][] = [
      [sqliteError('SQLITE_FULL'), 'full', 'ENOSPC'],
      [sqliteError('SQLITE_READONLY'), 'readonly', 'EIO'],
      [sqliteError('SQLITE_READONLY_DBMOVED'), 'readonly', 'EIO'],
      [sqliteError('SQLITE_IOERR_WRITE'), 'ioerr', 'EIO'],
      [sqliteError('SQLITE_IOERR_FSYNC'), 'ioerr', 'EIO'],
      [sqliteError('SQLITE_CANTOPEN'), 'ioerr', 'EIO'],
      [sqliteError('SQLITE_BUSY'), 'busy', 'EIO'],
      [sqliteError('SQLITE_BUSY_SNAPSHOT'), 'busy', 'EIO'],
      [new StoreGoneError('the store x was removed'), 'gone', 'EIO'],
    ];
    for (const [e, kind, errno] of cases) expect([(e as any).code, storeFault(e)?.kind, storeFault(e)?.errno]).toEqual([(e as any).code, kind, errno]);
  });
  it('is null for what is not a fault of the store file (a bug: EIO with a stack)', () => {
    expect(storeFault(sqliteError('SQLITE_CONSTRAINT_UNIQUE'))).toBe(null);
    expect(storeFault(sqliteError('SQLITE_CORRUPT'))).toBe(null);
    expect(storeFault(new TypeError('x'))).toBe(null);
    expect(storeFault(undefined)).toBe(null);
  });
});

describe('StoreHealth', () => {
  it('logs a fault once however many requests fail, once when it ends, and a new fault again', () => {
    const lines: string[] = [];
    const h = new StoreHealth();
    h.log = (m) => lines.push(m);
    h.ok();
    expect(lines).toEqual([]);
    for (let i = 0; i < 100; i++) h.fault(storeFault(sqliteError('SQLITE_IOERR_WRITE'))!);
    expect(lines).toHaveLength(1);
    expect(h.faulty).toBe(true);
    h.ok();
    h.ok();
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/takes writes again \(100 request\(s\) failed meanwhile\)/);
    h.fault(storeFault(sqliteError('SQLITE_BUSY'))!);
    h.fault(storeFault(sqliteError('SQLITE_FULL'))!);
    expect(lines.slice(2).map((l) => l.replace(/\(.*/, ''))).toEqual(['store fault: another process held the store\'s write lock for more than 5 s ', 'store fault: the store\'s filesystem is full ']);
  });
});
