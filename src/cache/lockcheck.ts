/**
 * A small lockdep for pagefs's asynchronous locks.
 *
 * Every operation carries an OpCtx that lists the locks it holds. The order rules
 * (design.md §3, docs/LOCKING.md): classes in rank order (i_rwsem before
 * invalidate_lock), within a class ascending inode number, never the same lock twice.
 * The checker tests each acquisition against what the context already holds and, when
 * enabled (tests, `pagefs mount --debug-locks`), throws LockOrderError and logs it:
 * an inversion is a latent deadlock even when this run happened not to deadlock.
 * assertHeld is always on: it is a field compare, and a missing lock is a data race.
 */

export type LockMode = 'shared' | 'exclusive';

export interface LockClass {
  readonly name: string;
  readonly rank: number;
}

export const I_RWSEM: LockClass = { name: 'i_rwsem', rank: 1 };
export const INVALIDATE_LOCK: LockClass = { name: 'invalidate_lock', rank: 2 };

export interface Lockable {
  readonly cls: LockClass;
  readonly ino: number;
}

export interface Held {
  lock: Lockable;
  mode: LockMode;
  /** For a shared hold of an RwLock: when it was granted (clock.ts). */
  at?: number;
}

/** The locks one operation holds. Create one per request; never share between requests. */
export class OpCtx {
  readonly held: Held[] = [];
  constructor(readonly op: string) {}

  holds(lock: Lockable, mode: LockMode): boolean {
    for (const h of this.held) {
      if (h.lock === lock && (mode === 'shared' || h.mode === 'exclusive')) return true;
    }
    return false;
  }
}

export class LockOrderError extends Error {}

export const lockChecker = {
  enabled: false,
  violations: 0,
  /** Called by the checker instead of throwing only, so a daemon log shows every report. */
  report: (msg: string): void => {
    process.stderr.write(`pagefs: LOCK CHECKER: ${msg}\n`);
  },
};

function describe(l: Lockable): string {
  return `${l.cls.name}(ino ${l.ino})`;
}

export function checkAcquire(ctx: OpCtx, lock: Lockable, mode: LockMode): void {
  if (!lockChecker.enabled) return;
  for (const h of ctx.held) {
    let why: string | null = null;
    if (h.lock === lock) why = 'recursive acquisition';
    else if (h.lock.cls.rank > lock.cls.rank) why = `class order inversion: ${lock.cls.name} must be taken before ${h.lock.cls.name}`;
    else if (h.lock.cls === lock.cls && h.lock.ino > lock.ino) why = `inode order inversion: ${lock.cls.name} locks are taken in ascending inode number`;
    if (why) {
      lockChecker.violations++;
      const msg = `${ctx.op}: taking ${describe(lock)} ${mode} while holding ${describe(h.lock)} ${h.mode}: ${why}`;
      lockChecker.report(msg);
      throw new LockOrderError(msg);
    }
  }
}

export function assertHeld(ctx: OpCtx, lock: Lockable, mode: LockMode): void {
  if (!ctx.holds(lock, mode)) {
    lockChecker.violations++;
    const msg = `${ctx.op}: ${describe(lock)} must be held ${mode}`;
    lockChecker.report(msg);
    throw new LockOrderError(msg);
  }
}
