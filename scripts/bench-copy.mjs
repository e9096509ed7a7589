#!/usr/bin/env node
/**
 * Benchmark: copy_file_range on pagefs (shared blocks, no bytes moved) against a byte
 * copy (read/write in 1 MiB chunks) on pagefs, and the same byte copy on tmpfs itself.
 *
 *   npm run build && sudo node scripts/bench-copy.mjs [--size-mib 1024] [--reps 3] [--touch-gib 3]
 *
 * Needs root (it mounts). Everything lives in two tmpfs mounts (size=4g each) on a fresh
 * directory under /tmp: one holds the pagefs store, the other the tmpfs reference. The
 * pagefs mount is the ordinary background daemon (`pagefs mount`, default options, lock
 * checker off). Every mount is removed at the end, also on an error or Ctrl-C.
 *
 * Each timed step: open, copy, fsync the destination, close. Before each one ~3 GiB of
 * anonymous memory is touched in a child process (this machine returns freed memory to
 * its host, and the first touch of a page is otherwise paid inside the timed step), and
 * the previous copy is deleted and its blocks waited for. The source stays warm in the
 * kernel's page cache (the byte copy's best case; copy_file_range reads no data at all).
 * Reported: the median of the repetitions (each run listed), MiB/s of the file size, and
 * the statfs free blocks each copy consumed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin', 'pagefs.js');
const SYS = path.join(ROOT, 'dist', 'sys', 'index.js');
const MiB = 1 << 20;

function arg(name, def) {
  const i = process.argv.indexOf(name);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) die(`${name}: a positive number, not '${process.argv[i + 1]}'`);
  return v;
}
function die(msg) {
  process.stderr.write(`bench-copy: ${msg}\n`);
  process.exit(2);
}

const SIZE = arg('--size-mib', 1024) * MiB;
const REPS = arg('--reps', 3);
const TOUCH_GIB = arg('--touch-gib', 3);

if (process.getuid?.() !== 0) die('run as root (it mounts tmpfs and FUSE)');
if (!fs.existsSync(SYS)) die(`${SYS} is missing: run npm run build first`);
if (!fs.existsSync('/dev/fuse')) die('/dev/fuse is missing');
const { sys } = await import(pathToFileURL(SYS).href);
const S = sys();

/** Runs a command with a timeout; throws with its output on failure. */
function cmd(file, args, timeoutMs = 120_000) {
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.error?.message ?? `exit ${r.status ?? r.signal}`}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

// ---------------------------------------------------------------------------------------
// Setup and teardown

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pagefs-bench-copy-'));
const storeFs = path.join(work, 'store-tmpfs');
const refFs = path.join(work, 'ref-tmpfs');
const mp = path.join(work, 'mnt');
for (const d of [storeFs, refFs, mp]) fs.mkdirSync(d);
const store = path.join(storeFs, 'store.db');
const mounted = []; // what to undo, innermost last

function fuseConn(dir) {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const f = pre.split(' ');
    if (f[4] === dir && post.startsWith('fuse')) return f[2].split(':')[1];
  }
  return null;
}

let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const m of mounted.reverse()) {
    try {
      if (m.kind === 'pagefs') {
        const r = spawnSync(process.execPath, [BIN, 'umount', m.dir], { encoding: 'utf8', timeout: 150_000, killSignal: 'SIGKILL' });
        if (r.status !== 0) {
          process.stderr.write(`bench-copy: pagefs umount failed (${(r.stderr || '').trim()}); aborting the connection\n`);
          const c = fuseConn(m.dir);
          if (c) try { fs.writeFileSync(`/sys/fs/fuse/connections/${c}/abort`, '1'); } catch { /* gone */ }
          spawnSync('umount', ['-l', m.dir], { timeout: 10_000 });
        }
      } else {
        const r = spawnSync('umount', [m.dir], { timeout: 30_000 });
        if (r.status !== 0) spawnSync('umount', ['-l', m.dir], { timeout: 10_000 });
      }
    } catch (e) {
      process.stderr.write(`bench-copy: cleanup of ${m.dir}: ${e.message}\n`);
    }
  }
  try { fs.rmSync(work, { recursive: true, force: true }); } catch { /* a lazily detached mount may still hold it */ }
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { cleanup(); process.exit(130); });

function setup() {
  for (const d of [storeFs, refFs]) {
    cmd('mount', ['-t', 'tmpfs', '-o', 'size=4g', 'tmpfs', d], 30_000);
    mounted.push({ kind: 'tmpfs', dir: d });
  }
  cmd(process.execPath, [BIN, 'mkfs', store, '--capacity', `${Math.ceil((2 * SIZE) / 2 ** 30) + 1}G`], 60_000);
  cmd(process.execPath, [BIN, 'mount', store, mp], 60_000);
  mounted.push({ kind: 'pagefs', dir: mp });
}

// ---------------------------------------------------------------------------------------
// Copies

function copyFileRange(src, dst) {
  const fi = fs.openSync(src, 'r');
  const fo = fs.openSync(dst, 'wx');
  try {
    let off = 0;
    while (off < SIZE) {
      const n = S.copyFileRange(fi, off, fo, off, SIZE - off, 0);
      if (n === 0) throw new Error(`copy_file_range returned 0 at ${off}`);
      off += n;
    }
    fs.fsyncSync(fo);
  } finally {
    fs.closeSync(fi);
    fs.closeSync(fo);
  }
}

const chunk = Buffer.alloc(MiB);
function byteCopy(src, dst) {
  const fi = fs.openSync(src, 'r');
  const fo = fs.openSync(dst, 'wx');
  try {
    for (let off = 0; off < SIZE;) {
      const n = fs.readSync(fi, chunk, 0, Math.min(MiB, SIZE - off), off);
      if (n === 0) throw new Error(`short read at ${off}`);
      for (let w = 0; w < n;) w += fs.writeSync(fo, chunk, w, n - w, off + w);
      off += n;
    }
    fs.fsyncSync(fo);
  } finally {
    fs.closeSync(fi);
    fs.closeSync(fo);
  }
}

/** Compares 1 MiB at the start, the middle and the end (a sanity check, not timed). */
function sample(a, b) {
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    if (fs.fstatSync(fb).size !== SIZE) throw new Error(`${b}: size ${fs.fstatSync(fb).size}, want ${SIZE}`);
    for (const off of [0, Math.floor(SIZE / 2 / MiB) * MiB, SIZE - MiB]) {
      const x = Buffer.alloc(MiB);
      const y = Buffer.alloc(MiB);
      fs.readSync(fa, x, 0, MiB, off);
      fs.readSync(fb, y, 0, MiB, off);
      if (!x.equals(y)) throw new Error(`${b} differs from ${a} in the MiB at ${off}`);
    }
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

function touchMemory() {
  const chunks = TOUCH_GIB * 4;
  cmd(process.execPath, ['-e', `const a = []; for (let i = 0; i < ${chunks}; i++) { const b = Buffer.allocUnsafeSlow(${256 * MiB}); b.fill(i + 1); a.push(b); }`], 120_000);
}

const statfs = (dir) => fs.statfsSync(dir);

/** Deletes `p` and waits until the blocks it held are free again (FORGET is asynchronous). */
function remove(p, dir, freeBefore) {
  if (!fs.existsSync(p)) return;
  fs.unlinkSync(p);
  const t0 = Date.now();
  while (statfs(dir).bfree < freeBefore && Date.now() - t0 < 30_000) spawnSync('sleep', ['0.1']);
}

// ---------------------------------------------------------------------------------------

function main() {
  setup();
  const refSrc = path.join(refFs, 'src');
  const pSrc = path.join(mp, 'src');
  process.stderr.write(`bench-copy: writing a ${SIZE / MiB} MiB file on tmpfs and on pagefs...\n`);
  {
    const fd = fs.openSync(refSrc, 'w');
    const b = Buffer.alloc(MiB);
    for (let off = 0; off < SIZE; off += MiB) {
      crypto.randomFillSync(b);
      fs.writeSync(fd, b, 0, MiB, off);
    }
    fs.closeSync(fd);
  }
  byteCopy(refSrc, pSrc);
  sample(refSrc, pSrc);

  const variants = [
    { name: 'copy_file_range, pagefs', dir: mp, src: pSrc, dst: path.join(mp, 'cfr'), fn: copyFileRange },
    { name: 'read/write 1 MiB, pagefs', dir: mp, src: pSrc, dst: path.join(mp, 'bytes'), fn: byteCopy },
    { name: 'read/write 1 MiB, tmpfs', dir: refFs, src: refSrc, dst: path.join(refFs, 'bytes'), fn: byteCopy },
  ];
  const baseline = new Map(variants.map((v) => [v, statfs(v.dir).bfree]));
  for (const v of variants) v.runs = [];
  for (let rep = 0; rep < REPS; rep++) {
    for (const v of variants) {
      remove(v.dst, v.dir, baseline.get(v));
      touchMemory();
      const before = statfs(v.dir);
      const t0 = process.hrtime.bigint();
      v.fn(v.src, v.dst);
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const after = statfs(v.dir);
      sample(v.src, v.dst);
      v.runs.push({ secs, blocks: before.bfree - after.bfree, bsize: after.bsize });
      process.stderr.write(`bench-copy: ${v.name}, run ${rep + 1}: ${secs.toFixed(3)} s, ${before.bfree - after.bfree} blocks\n`);
    }
  }
  for (const v of variants) remove(v.dst, v.dir, baseline.get(v));

  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const cpu = os.cpus()[0]?.model ?? '?';
  const lines = [
    `pagefs copy benchmark: ${SIZE / MiB} MiB file, ${REPS} runs each, median; store and reference on tmpfs; ` +
      `${os.cpus().length} CPUs (${cpu}), Linux ${os.release()}, Node ${process.version}`,
    '',
    '| copy | time (median) | MiB/s | free blocks consumed (statfs) | runs (s) |',
    '|---|---:|---:|---:|---|',
  ];
  for (const v of variants) {
    const t = median(v.runs.map((r) => r.secs));
    const blocks = median(v.runs.map((r) => r.blocks));
    const bs = v.runs[0].bsize;
    lines.push(`| ${v.name} | ${t < 0.1 ? `${(t * 1000).toFixed(1)} ms` : `${t.toFixed(2)} s`} | ${(SIZE / MiB / t).toFixed(0)} | ` +
      `${blocks} × ${bs} B = ${((blocks * bs) / MiB).toFixed(1)} MiB | ${v.runs.map((r) => r.secs.toFixed(3)).join(', ')} |`);
  }
  process.stdout.write(lines.join('\n') + '\n');
}

try {
  main();
} catch (e) {
  process.stderr.write(`bench-copy: ${e.stack ?? e}\n`);
  process.exitCode = 1;
} finally {
  cleanup();
}
