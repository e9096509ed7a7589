/**
 * pagefs umount MOUNTPOINT: unmounts, then waits for the daemon to write everything back
 * and exit, so that when this returns the store is complete and free to mount again.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Store } from '../store/store.js';
import { findMount, isPagefsMount } from './mounts.js';
import { UserError } from '../util/errors.js';
import { processAlive } from '../util/process.js';

const WAIT_MS = 120_000;

export async function umountCommand(mpArg: string, opts: { lazy?: boolean }): Promise<void> {
  const mp = path.resolve(mpArg);
  const m = findMount(mp);
  if (!m) throw new UserError(`pagefs umount: ${mp} is not mounted`);
  if (!isPagefsMount(m)) throw new UserError(`pagefs umount: ${mp} is not a pagefs mount (it is ${m.fstype})`);
  let pid: number | null = null;
  try {
    const store = Store.open(m.source, { readonly: false, cmd: 'pagefs umount' });
    pid = store.owner()?.pid ?? null;
    store.close();
  } catch {
    // The store may be gone or unreadable; unmounting is still right.
  }
  const r = spawnSync('umount', [...(opts.lazy ? ['-l'] : []), mp], { encoding: 'utf8' });
  if (r.status !== 0) {
    const why = (r.stderr || r.error?.message || '').trim().replace(/^umount: /, '');
    throw new UserError(`pagefs umount: ${why || `umount exited with status ${r.status}`}`);
  }
  if (pid === null || opts.lazy) return;
  const t0 = Date.now();
  while (processAlive(pid)) {
    if (Date.now() - t0 > WAIT_MS) throw new UserError(`pagefs umount: unmounted, but daemon pid ${pid} is still writing back after ${WAIT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

