import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { OpCtx, lockChecker, assertHeld, LockOrderError, I_RWSEM, INVALIDATE_LOCK } from '../../src/cache/lockcheck.js';
import { RwLock, lockOrder, type LockStats } from '../../src/cache/rwlock.js';

const stats: LockStats = { waits: 0, waitNs: 0n };
let reports: string[] = [];

beforeEach(() => {
  lockChecker.enabled = true;
  reports = [];
  lockChecker.report = (m) => { reports.push(m); };
});
afterEach(() => {
  lockChecker.enabled = false;
});

describe('lock checker', () => {
  it('reports invalidate_lock taken before i_rwsem (class order inversion)', async () => {
    const ctx = new OpCtx('inverted');
    const inv = new RwLock(INVALIDATE_LOCK, 5, stats);
    const rw = new RwLock(I_RWSEM, 5, stats);
    await inv.acquire(ctx, 'exclusive');
    expect(() => rw.acquire(ctx, 'exclusive')).toThrow(LockOrderError);
    expect(reports.join('\n')).toMatch(/class order inversion/);
  });

  it('reports two locks of one class taken in descending inode order', async () => {
    const ctx = new OpCtx('descending');
    const a = new RwLock(I_RWSEM, 9, stats);
    const b = new RwLock(I_RWSEM, 3, stats);
    await a.acquire(ctx, 'exclusive');
    expect(() => b.acquire(ctx, 'exclusive')).toThrow(/inode order inversion/);
  });

  it('reports a recursive acquisition', async () => {
    const ctx = new OpCtx('recursive');
    const a = new RwLock(INVALIDATE_LOCK, 2, stats);
    await a.acquire(ctx, 'shared');
    expect(() => a.acquire(ctx, 'shared')).toThrow(/recursive/);
  });

  it('accepts the documented order: i_rwsems ascending, then invalidate_locks ascending', async () => {
    const ctx = new OpCtx('ordered');
    const locks = [new RwLock(I_RWSEM, 7, stats), new RwLock(I_RWSEM, 3, stats)];
    for (const l of lockOrder(locks)) await l.acquire(ctx, 'exclusive');
    const invs = [new RwLock(INVALIDATE_LOCK, 7, stats), new RwLock(INVALIDATE_LOCK, 3, stats)];
    for (const l of lockOrder(invs)) await l.acquire(ctx, 'shared');
    expect(reports).toEqual([]);
    expect(ctx.held.map((h) => `${h.lock.cls.name}:${h.lock.ino}`)).toEqual(['i_rwsem:3', 'i_rwsem:7', 'invalidate_lock:3', 'invalidate_lock:7']);
  });

  it('assertHeld fails when the lock is not held in the mode asked', async () => {
    const ctx = new OpCtx('assert');
    const l = new RwLock(INVALIDATE_LOCK, 1, stats);
    expect(() => assertHeld(ctx, l, 'shared')).toThrow(/must be held shared/);
    await l.acquire(ctx, 'shared');
    assertHeld(ctx, l, 'shared');
    expect(() => assertHeld(ctx, l, 'exclusive')).toThrow(/must be held exclusive/);
    l.release(ctx, 'shared');
    await l.acquire(ctx, 'exclusive');
    assertHeld(ctx, l, 'shared');
  });
});

describe('rw lock', () => {
  it('lets readers share, and queues a writer until they leave', async () => {
    const l = new RwLock(INVALIDATE_LOCK, 1, stats);
    const r1 = new OpCtx('r1');
    const r2 = new OpCtx('r2');
    const w = new OpCtx('w');
    await l.acquire(r1, 'shared');
    await l.acquire(r2, 'shared');
    let got = false;
    const pw = Promise.resolve(l.acquire(w, 'exclusive')).then(() => { got = true; });
    await new Promise((r) => setTimeout(r, 5));
    expect(got).toBe(false);
    l.release(r1, 'shared');
    await new Promise((r) => setTimeout(r, 5));
    expect(got).toBe(false);
    l.release(r2, 'shared');
    await pw;
    expect(got).toBe(true);
  });

  it('makes a reader that arrives behind a waiting writer wait too (no writer starvation)', async () => {
    const l = new RwLock(INVALIDATE_LOCK, 1, stats);
    const r1 = new OpCtx('r1');
    const w = new OpCtx('w');
    const r2 = new OpCtx('r2');
    await l.acquire(r1, 'shared');
    const order: string[] = [];
    const pw = Promise.resolve(l.acquire(w, 'exclusive')).then(() => { order.push('w'); l.release(w, 'exclusive'); });
    const pr = Promise.resolve(l.acquire(r2, 'shared')).then(() => { order.push('r2'); });
    l.release(r1, 'shared');
    await Promise.all([pw, pr]);
    expect(order).toEqual(['w', 'r2']);
  });
});
