/**
 * pagefs stress --race DIR: the race stress, and pagefs stress --fsx DIR: the fsx model
 * checker, against any directory (a pagefs mount, tmpfs, ext4, XFS).
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { runRace, type RaceResult } from '../stress/race.js';
import { runCrash } from '../stress/crash.js';
import { runFsx, formatFsx, parseOpMix, DEFAULTS as FSX_DEFAULTS } from '../stress/fsx.js';
import { progress } from './progress.js';
import { mounts, isPagefsMount } from './mounts.js';
import { parseSize } from '../util/size.js';
import { PAGEFS_BIN, pathWithin } from '../util/paths.js';
import { UserError } from '../util/errors.js';
import { Store } from '../store/store.js';

export interface StressOpts {
  race?: boolean;
  fsx?: boolean;
  crash?: string;
  ops?: string;
  files?: string;
  maxSize?: string;
  opMix?: string;
  remountEvery?: string;
  store?: string;
  readers: string;
  directReaders: string;
  mappers: string;
  duration: string;
  seed?: string;
  blocks: string;
  variant: string;
  stopOnFirst?: boolean;
  json?: boolean;
}

function int(v: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UserError(`pagefs stress: ${what} '${v}' must be a whole number from ${min} to ${max}`);
  return Number(v);
}

export async function stressCommand(dir: string, o: StressOpts): Promise<void> {
  const modes = [o.race, o.fsx, o.crash !== undefined].filter(Boolean).length;
  if (modes > 1) throw new UserError('pagefs stress: choose one mode: --race, --fsx or --crash');
  if (modes === 0) throw new UserError('pagefs stress: choose a mode: --race, --fsx or --crash N');
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new UserError(`pagefs stress: ${dir} does not exist`);
  }
  if (!st.isDirectory()) throw new UserError(`pagefs stress: ${dir} is not a directory`);
  if (o.fsx) return fsxCommand(dir, o);
  if (o.crash !== undefined) return crashCommand(dir, o);
  if (o.variant !== 'punch' && o.variant !== 'shift') throw new UserError(`pagefs stress: --variant must be punch or shift, not '${o.variant}'`);
  const seed = o.seed !== undefined ? int(o.seed, '--seed', 0, 2 ** 31 - 1) : Math.floor(Math.random() * 2 ** 31);
  const durationMs = int(o.duration, '--duration', 1, 86400) * 1000;
  const bar = progress('race', durationMs / 1000, 's');
  const r = await runRace({
    dir, seed, durationMs,
    readers: int(o.readers, '--readers', 0, 64), directReaders: int(o.directReaders, '--direct-readers', 0, 64),
    mappers: int(o.mappers, '--mappers', 0, 64), blocks: int(o.blocks, '--blocks', 16, 1 << 20),
    variant: o.variant, stopOnFirst: !!o.stopOnFirst,
    onProgress: (p) => bar.update(Math.floor(p.elapsedMs / 1000), `${p.ops} writer ops, ${p.violations} violations`),
  });
  bar.stop();
  if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
  else process.stdout.write(formatRace(r));
  if (r.violations.length > 0 || r.errors.length > 0) process.exitCode = 1;
}

export function formatRace(r: RaceResult, indent = ''): string {
  const lines: string[] = [];
  const ops = Object.entries(r.opCounts).map(([k, v]) => `${v} ${k}`).join(', ');
  for (const v of r.violations.slice(0, 5)) {
    lines.push(`VIOLATION (${v.why}) seen by the ${v.role} reader ${v.id}:`,
      `  offset ${v.offset} (block ${v.block}), after ${v.writerOps} writer operations`,
      `  expected: ${v.expected}`,
      `  actual:   ${v.actual}`,
      `  bytes:    ${v.actualHex}${v.settled ? '' : '  (the read overlapped an operation on this block: only another file\'s data is wrong then)'}`);
  }
  if (r.violations.length > 5) lines.push(`... and ${r.violations.length - 5} more violations`);
  for (const e of r.errors) lines.push(`ERROR: ${e}`);
  if (r.skipped.length > 0) lines.push(`skipped (not supported here): ${r.skipped.join(', ')}`);
  const verdict = r.violations.length === 0 && r.errors.length === 0 ? 'clean' : r.violations.length > 0 ? `${r.violations.length} violation(s)` : 'errors';
  lines.push(`race: ${verdict}: seed ${r.seed}, ${(r.elapsedMs / 1000).toFixed(1)} s, block size ${r.blockSize}, ${r.writerOps} writer ops (${ops || 'none'}), ${r.reads} reads, ${r.checkedBlocks} settled blocks checked`);
  return lines.map((l) => indent + l).join('\n') + '\n';
}

/** pagefs stress --fsx DIR: the fsx model checker (src/stress/fsx.ts). */
async function fsxCommand(dir: string, o: StressOpts): Promise<void> {
  const seed = o.seed !== undefined ? int(o.seed, '--seed', 0, 2 ** 31 - 1) : Math.floor(Math.random() * 2 ** 31);
  const ops = int(o.ops ?? '10000', '--ops', 1, 100_000_000);
  const files = int(o.files ?? String(FSX_DEFAULTS.files), '--files', 1, 64);
  const maxSize = o.maxSize !== undefined ? parseSize(o.maxSize, 'pagefs stress: --max-size') : FSX_DEFAULTS.maxSize;
  if (maxSize < 4096 || maxSize > 64 * 2 ** 20) throw new UserError(`pagefs stress: --max-size '${o.maxSize}' must be from 4K to 64M`);
  let mix;
  try {
    mix = parseOpMix(o.opMix ?? '');
  } catch (e) {
    throw new UserError(`pagefs stress: --op-mix: ${(e as Error).message}`);
  }
  if ((o.remountEvery === undefined) !== (o.store === undefined)) throw new UserError('pagefs stress: --remount-every and --store go together');
  let remount: ((at: { op: number; index: number }) => Promise<void>) | undefined;
  let remountEvery = 0;
  if (o.remountEvery !== undefined && o.store !== undefined) {
    remountEvery = int(o.remountEvery, '--remount-every', 1, 100_000_000);
    remount = pagefsRemounter(dir, o.store);
  }
  const bar = progress('fsx', ops, 'ops');
  const r = await runFsx({
    dir, seed, ops, files, maxSize, mix, remountEvery, remount,
    onProbe: (p) => {
      if (p.skipped.length) process.stderr.write(`fsx: skipped (not supported here): ${p.skipped.join(', ')}\n`);
      if (p.shiftVia === 'ioctl') process.stderr.write('fsx: collapse and insert through pagefs\'s ioctls (the kernel\'s FUSE client refuses the fallocate modes)\n');
    },
    onProgress: (p) => bar.update(p.ops, `${(p.bytesChecked / 2 ** 20).toFixed(0)} MiB checked`),
  });
  bar.stop();
  if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
  else process.stdout.write(formatFsx(r));
  if (r.failure) process.exitCode = 1;
}

/**
 * --remount-every with --store: the directory must be on a pagefs mount of that store;
 * each remount runs `pagefs umount MOUNTPOINT` and `pagefs mount STORE MOUNTPOINT` (default
 * mount options), as separate processes: the checker never runs in the daemon's process.
 */
function pagefsRemounter(dir: string, storeArg: string): (at: { op: number; index: number }) => Promise<void> {
  const real = fs.realpathSync(dir);
  const m = mounts().filter((x) => pathWithin(real, x.mountpoint))
    .sort((a, b) => b.mountpoint.length - a.mountpoint.length)[0];
  if (!m || !isPagefsMount(m)) throw new UserError(`pagefs stress: --remount-every needs ${dir} on a pagefs mount${m ? ` (it is on ${m.fstype} at ${m.mountpoint})` : ''}`);
  let store: string;
  try {
    store = fs.realpathSync(storeArg);
  } catch {
    throw new UserError(`pagefs stress: --store ${storeArg} does not exist`);
  }
  let source = m.source;
  try { source = fs.realpathSync(m.source); } catch { /* compare as given */ }
  if (source !== store) throw new UserError(`pagefs stress: ${m.mountpoint} is a mount of ${m.source}, not of ${storeArg}`);
  const mp = m.mountpoint;
  const pagefs = (args: string[]) => new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [PAGEFS_BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => { err += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`pagefs ${args.join(' ')}: ${err.trim() || `exit ${sig ?? code}`}`));
    });
  });
  return async () => {
    await pagefs(['umount', mp]);
    await pagefs(['mount', store, mp]);
  };
}

/**
 * pagefs stress --crash N --store STORE DIR: N times, mount STORE on DIR, run a seeded
 * workload, SIGKILL the daemon, fsck, mount again and check every file against the log up
 * to its last completed fsync (src/stress/crash.ts).
 */
async function crashCommand(dir: string, o: StressOpts): Promise<void> {
  if (o.store === undefined) throw new UserError('pagefs stress: --crash needs --store STORE (an unmounted pagefs store; DIR is where it is mounted)');
  // Checked here, with the words a mount would use, rather than as a failed `pagefs stat`
  // in the middle of the first round.
  Store.open(o.store, { readonly: true, cmd: 'pagefs stress --crash' }).close();
  const rounds = int(o.crash!, '--crash', 1, 100000);
  const seed = o.seed !== undefined ? int(o.seed, '--seed', 0, 2 ** 31 - 1) : Math.floor(Math.random() * 2 ** 31);
  const bar = progress('crash', rounds, 'kill points');
  const r = await runCrash({
    store: o.store, mountpoint: dir, rounds, seed, files: o.files === undefined ? undefined : int(o.files, '--files', 1, 64),
    onProgress: (p) => bar.update(p.round, `${p.ops} ops, ${p.fsyncs} fsyncs, ${p.violations} violations`),
  });
  bar.stop();
  if (o.json) {
    process.stdout.write(JSON.stringify(r) + '\n');
  } else {
    for (const v of r.violations.slice(0, 10)) process.stdout.write(`VIOLATION: ${JSON.stringify({ round: v.round, file: v.file, kind: v.kind, offset: v.offset, expected: v.expected, actual: v.actual })}\n`);
    for (const p of r.fsckProblems.slice(0, 10)) process.stdout.write(`FSCK: ${JSON.stringify(p)}\n`);
    for (const e of r.errors) process.stdout.write(`ERROR: ${e}\n`);
    const bad = r.violations.length + r.fsckProblems.length + r.errors.length + r.daemonErrors.length;
    process.stdout.write(`crash: ${bad === 0 ? 'clean' : `${bad} problem(s)`}: seed ${r.seed}, ${r.rounds} kill points, ${r.ops} ops, ${r.fsyncs} fsyncs, ${r.checkedBlocks} blocks checked, ${(r.elapsedMs / 60000).toFixed(1)} min\n`);
  }
  if (r.violations.length || r.fsckProblems.length || r.errors.length || r.daemonErrors.length) process.exitCode = 1;
}
