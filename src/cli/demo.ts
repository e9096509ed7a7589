/**
 * pagefs demo (npm run demo): the punch-hole consistency demonstration on a temporary
 * store. The race stress runs twice with a delay injected between each cache fill's
 * block-map lookup and its block read: first with the invalidate_lock switched off,
 * where it must catch a read returning stale or another file's data (and shows whose
 * block it was), then with the lock, where it must stay clean.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { runRace, type RaceResult } from '../stress/race.js';
import { formatRace } from './stress.js';
import { progress } from './progress.js';
import { findMount } from './mounts.js';
import { PAGEFS_BIN } from '../util/paths.js';
import { UserError } from '../util/errors.js';

export interface DemoOpts {
  seconds: string;
  seed?: string;
  keep?: boolean;
}

function pagefs(args: string[]): void {
  const r = spawnSync(process.execPath, [PAGEFS_BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new UserError(`pagefs demo: pagefs ${args[0]} failed: ${(r.stderr || r.error?.message || '').trim()}`);
}

function forceUnmount(mp: string): void {
  const m = findMount(mp);
  if (!m) return;
  try { fs.writeFileSync(`/sys/fs/fuse/connections/${m.conn}/abort`, '1'); } catch { /* gone already */ }
  spawnSync('umount', ['-l', mp], { timeout: 10_000 });
}

async function phase(title: string, store: string, mp: string, mountArgs: string[], seed: number, seconds: number, stopOnFirst: boolean): Promise<RaceResult> {
  process.stdout.write(`\n== ${title}\n   pagefs mount ${path.basename(store)} ${path.basename(mp)} ${mountArgs.join(' ')}\n`);
  pagefs(['mount', store, mp, ...mountArgs]);
  try {
    const bar = progress('   race', seconds, 's');
    const r = await runRace({
      dir: mp, seed, durationMs: seconds * 1000, readers: 2, directReaders: 1, mappers: 1, blocks: 1024, variant: 'punch', stopOnFirst,
      onProgress: (p) => bar.update(Math.floor(p.elapsedMs / 1000), `${p.ops} writer ops, ${p.violations} violations`),
    });
    bar.stop();
    process.stdout.write(formatRace(r, '   '));
    return r;
  } finally {
    pagefs(['umount', mp]);
  }
}

export async function demoCommand(o: DemoOpts): Promise<void> {
  const seconds = Number(o.seconds);
  if (!Number.isInteger(seconds) || seconds < 2 || seconds > 600) throw new UserError(`pagefs demo: --seconds '${o.seconds}' must be a whole number from 2 to 600`);
  const seed = o.seed !== undefined ? Number(o.seed) : Math.floor(Math.random() * 2 ** 31);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pagefs-demo-'));
  const store = path.join(dir, 'demo.db');
  const mp = path.join(dir, 'mnt');
  fs.mkdirSync(mp);
  const t0 = Date.now();
  process.stdout.write(`pagefs demo: punch-hole consistency, seed ${seed}, in ${dir}\n` +
    'A writer punches holes, zeroes and rewrites ranges of a file and reuses the freed blocks for other\n' +
    'files, while readers use read(2), O_DIRECT and mmap. Every block is stamped with its file and\n' +
    'generation, so a read that returns a freed block names whose block it got.\n');
  let unsafe: RaceResult | null = null;
  let safe: RaceResult | null = null;
  try {
    pagefs(['mkfs', store, '--capacity', '256M']);
    // A small cache makes most reads fill from the store: that is where the race lives.
    const common = ['--cache-size', '256K', '--inject-delay', 'after-lookup=20'];
    unsafe = await phase('1. WITHOUT the invalidate_lock (--unsafe-no-invalidate-lock), 20 ms delay between block-map lookup and block read',
      store, mp, ['--unsafe-no-invalidate-lock', ...common], seed, Math.max(seconds, 20), true);
    safe = await phase('2. WITH the invalidate_lock, same delay', store, mp, common, seed, seconds, false);
    const fsck = spawnSync(process.execPath, [PAGEFS_BIN, 'fsck', store], { encoding: 'utf8' });
    process.stdout.write(`\n== 3. ${fsck.stdout.trim()}\n`);
  } finally {
    forceUnmount(mp);
    if (!o.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
  const caught = unsafe!.violations.length > 0;
  const clean = safe!.violations.length === 0 && safe!.errors.length === 0;
  process.stdout.write(`\n== Report (${((Date.now() - t0) / 1000).toFixed(0)} s)\n` +
    `   without the lock: ${caught ? `stale data caught after ${(unsafe!.elapsedMs / 1000).toFixed(1)} s` : 'NOT caught (the negative control failed)'}\n` +
    `   with the lock:    ${clean ? `clean: ${safe!.checkedBlocks} settled blocks checked in ${safe!.reads} reads against ${safe!.writerOps} writer ops` : 'VIOLATIONS: pagefs is broken'}\n`);
  if (!caught || !clean) process.exitCode = 1;
}
