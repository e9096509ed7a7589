/**
 * pagefs mount STORE MOUNTPOINT. Checks everything a user can get wrong before any
 * daemon starts (so each mistake is one clear line), then either serves in this process
 * (--foreground) or starts itself again, detached, with --foreground and a pipe on which
 * the daemon says "ready" once the kernel has sent INIT, and returns then.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { PAGEFS_BIN, realOrResolved } from '../util/paths.js';
import { Store } from '../store/store.js';
import { runDaemon } from '../fuse/daemon.js';
import { parseSize } from '../util/size.js';
import { UserError } from '../util/errors.js';
import { findMount } from './mounts.js';

export interface MountOpts {
  foreground?: boolean;
  options: string[];
  cacheSize: string;
  log?: string;
  debugLocks?: boolean;
  unsafeNoInvalidateLock?: boolean;
  injectDelay?: string[];
  readyFd?: string;
  readThreads: string;
  pollUs: string;
  dirtyExpire: string;
}

/** pagefs's own -o options; everything else goes to libfuse's mount. */
interface Parsed {
  fuseOpts: string[];
  cacheBytes: number;
  debugLocks: boolean;
}

function parseOptions(opts: MountOpts): Parsed {
  const p: Parsed = { fuseOpts: [], cacheBytes: parseSize(opts.cacheSize, 'pagefs mount: --cache-size'), debugLocks: !!opts.debugLocks };
  for (const o of opts.options.flatMap((s) => s.split(',')).filter(Boolean)) {
    const [k, v] = o.split('=', 2);
    if (k === 'cache_size') p.cacheBytes = parseSize(v ?? '', 'pagefs mount: -o cache_size');
    else if (k === 'debug_locks') p.debugLocks = true;
    // Set by mount(8) and fstab, meaningless to us; libfuse would reject them.
    else if (['defaults', 'auto', 'noauto', 'user', 'users', 'nofail', '_netdev'].includes(k) || k.startsWith('x-')) continue;
    else if (['fsname', 'subtype', 'default_permissions'].includes(k)) continue;
    // The kernel's default for FUSE; libfuse 3.14 rejects the word (xfstests generic/003 passes it).
    else if (k === 'relatime') continue;
    else p.fuseOpts.push(o);
  }
  return p;
}

function parseDelays(list: string[] | undefined): { afterLookup: number; beforeInsert: number } {
  const d = { afterLookup: 0, beforeInsert: 0 };
  for (const item of list ?? []) {
    const m = /^(after-lookup|before-insert)=(\d+)$/.exec(item);
    if (!m) throw new UserError(`pagefs mount: --inject-delay '${item}': expected after-lookup=MS or before-insert=MS`);
    if (m[1] === 'after-lookup') d.afterLookup = Number(m[2]);
    else d.beforeInsert = Number(m[2]);
  }
  return d;
}

function parseCount(v: string, what: string, max = 64): number {
  if (!/^\d+$/.test(v) || Number(v) > max) throw new UserError(`pagefs mount: ${what} '${v}' is not a whole number from 0 to ${max.toLocaleString('en-US')}`);
  return Number(v);
}

function checkMountpoint(mp: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(mp);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN') throw new UserError(`pagefs mount: ${mp} is a FUSE mount whose daemon is gone; run: pagefs umount ${mp}`);
    throw new UserError(`pagefs mount: mountpoint ${mp} does not exist`);
  }
  if (!st.isDirectory()) throw new UserError(`pagefs mount: mountpoint ${mp} is not a directory`);
  if (findMount(mp)?.fstype === 'fuse.pagefs') throw new UserError(`pagefs mount: ${mp} is already a pagefs mount`);
  if (fs.readdirSync(mp).length > 0) throw new UserError(`pagefs mount: mountpoint ${mp} is not empty`);
  // An empty mountpoint can still be the temporary directory itself, where the daemon's
  // control socket would be hidden under its own mount and reached only through it.
  if (realOrResolved(os.tmpdir()) === realOrResolved(mp)) {
    throw new UserError(`pagefs mount: mountpoint ${mp} is the temporary directory (TMPDIR), where the daemon keeps its control socket; set TMPDIR elsewhere`);
  }
}

function checkStore(storePath: string): void {
  const store = Store.open(storePath, { readonly: false, cmd: 'pagefs mount' });
  try {
    const owner = store.owner();
    if (owner) throw new UserError(`pagefs mount: ${storePath} is already mounted by pagefs daemon pid ${owner.pid}; unmount it first`);
  } finally {
    store.close();
  }
}

export async function mountCommand(storeArg: string, mpArg: string, opts: MountOpts): Promise<void> {
  const store = path.resolve(storeArg);
  const mountpoint = path.resolve(mpArg);
  const parsed = parseOptions(opts);
  const delays = parseDelays(opts.injectDelay);
  const readThreads = parseCount(opts.readThreads, '--read-threads');
  const pollUs = parseCount(opts.pollUs, '--poll-us', 10_000);
  const dirtyExpireS = parseCount(opts.dirtyExpire, '--dirty-expire', 3600);
  const readyFd = opts.readyFd === undefined ? null : Number(opts.readyFd);
  if (readyFd === null) {
    checkStore(store);
    checkMountpoint(mountpoint);
  }
  if (!opts.foreground) return background(store, mountpoint, opts);

  const say = (msg: string) => {
    if (readyFd !== null) fs.writeSync(readyFd, msg + '\n');
  };
  const log = (msg: string) => process.stderr.write(`${new Date().toISOString()} pagefs[${process.pid}]: ${msg}\n`);
  // The log is STORE.log by default, on the store's filesystem: when that turns read-only
  // the log cannot be written either, and a failed log write must not kill the daemon
  // (it did: the line reporting the fault was the one that crashed it).
  process.stderr.on('error', () => undefined);
  try {
    const code = await runDaemon({
      store, mountpoint, fuseOpts: parsed.fuseOpts, cacheBytes: parsed.cacheBytes, debugLocks: parsed.debugLocks,
      unsafeNoInvalidateLock: !!opts.unsafeNoInvalidateLock, delays, writebackIntervalMs: 5000, dirtyExpireMs: dirtyExpireS * 1000, log,
      readThreads, pollUs,
      onReady: () => say('ready'),
    });
    process.exitCode = code;
  } catch (e) {
    const msg = e instanceof UserError ? e.message : `pagefs mount: cannot mount ${store} on ${mountpoint}: ${(e as Error).message}`;
    say(`error ${msg}`);
    throw e instanceof UserError ? e : new UserError(msg);
  }
}

/**
 * Node flags of the daemon (the detached one; the tests' too). V8's old generation starts
 * a few MiB large and grows only as far as what lives in it, so a cold read filling the
 * page cache (its page objects pile up there) and a stream of writes (request objects
 * promoted and dead) ran a full mark-compact every 100-130 ms: 27 in 5 s of cold 4 KiB
 * random reads (265 ms of the main thread, besides concurrent marking on the core fio
 * needs), 53 in a 1 GiB sequential write. Starting it at 256 MiB: 4 and 10. The cost is
 * memory: the receive buffers that WRITE payloads hand to JavaScript (native-shim rbuf.c)
 * come back when their Buffers are collected, so more of them are in use at once (peak
 * RSS during the 1 GiB write +60 MiB). Figures, alternating runs, medians:
 * docs/DESIGN.md ("Heap").
 */
export const DAEMON_NODE_FLAGS = ['--initial-old-space-size=256'];

async function background(store: string, mountpoint: string, opts: MountOpts): Promise<void> {
  const logPath = opts.log ? path.resolve(opts.log) : `${store}.log`;
  let logFd: number | 'ignore' = 'ignore';
  try {
    logFd = fs.openSync(logPath, 'a');
  } catch {
    // An unwritable log place must not stop the mount.
  }
  const args = [...DAEMON_NODE_FLAGS, PAGEFS_BIN, 'mount', store, mountpoint, '--foreground', '--ready-fd', '3', '--cache-size', opts.cacheSize, '--read-threads', opts.readThreads, '--poll-us', opts.pollUs, '--dirty-expire', opts.dirtyExpire];
  for (const o of opts.options) args.push('-o', o);
  if (opts.debugLocks) args.push('--debug-locks');
  if (opts.unsafeNoInvalidateLock) args.push('--unsafe-no-invalidate-lock');
  for (const d of opts.injectDelay ?? []) args.push('--inject-delay', d);
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', logFd, logFd, 'pipe'] });
  const pipe = child.stdio[3] as NodeJS.ReadableStream;
  const answer = await new Promise<string>((resolve) => {
    let buf = '';
    pipe.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\n')) resolve(buf.split('\n')[0]);
    });
    child.on('exit', (code, sig) => resolve(`error pagefs mount: the daemon exited (${sig ?? `status ${code}`}) before the mount answered; see ${logPath}`));
  });
  if (typeof logFd === 'number') fs.closeSync(logFd);
  if (answer !== 'ready') throw new UserError(answer.replace(/^error /, ''));
  (pipe as any).destroy?.();
  child.unref();
}
