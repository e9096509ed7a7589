#!/usr/bin/env node
/**
 * pagefs under load (issue 7's "Load"): mounts pagefs on a store in a fresh tmpfs with a
 * page-cache cap, then for the whole duration at once runs 8 fio jobs (scripts/fio/load/:
 * sequential, random, mmap and O_DIRECT writes with verify, random and sequential reads,
 * hole punching, a mixed job) and a metadata storm (scripts/load/storm.mjs: processes
 * that create, rewrite, rename, link, stat, list and unlink files, each checking its own
 * results). It samples the daemon's VmRSS every second. At the end: `pagefs stat`,
 * unmount, `pagefs fsck`, one summary table.
 *
 * Exit 0 only if every fio job passed (exit 0, no error, verify clean), the storm saw no
 * error, the daemon logged no error, fsck is clean and the daemon's peak RSS (VmHWM)
 * stayed under the cache cap plus the stated overhead. Runs as root (tmpfs and FUSE
 * mounts); never leaves a mount behind (scripts/bench/lib.mjs's cleanup).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Command, InvalidArgumentError } from 'commander';
import { Bench, run, killRunning, waitRunning, procMem, machineFacts, PAGEFS, ROOT, MiB } from './bench/lib.mjs';
import { median } from './bench/report.mjs';
import { fioFigures, stormTotals, rssFigures, rssTimeline, summaryTable } from './load/summary.mjs';

const { parseSize } = await import(path.join(ROOT, 'dist', 'util', 'size.js'));
const { progress } = await import(path.join(ROOT, 'dist', 'cli', 'progress.js'));
const { queryControl } = await import(path.join(ROOT, 'dist', 'fuse', 'control.js'));

const LOAD_FIO = path.join(ROOT, 'scripts', 'fio', 'load');
const STORM = path.join(ROOT, 'scripts', 'load', 'storm.mjs');
/** The job files that verify what they wrote (the others read or punch). */
const VERIFYING = /verify/;
/** Lines of the daemon's log that are errors (test/helpers/mount.ts's expectCleanLog, plus EIO answers). */
const BAD_LOG = /internal error|LOCK CHECKER|Uncaught|TypeError|RangeError|EIO/;

const log = (msg) => process.stderr.write(`load: ${msg}\n`);
const size = (what) => (text) => {
  try {
    return parseSize(text, what);
  } catch (e) {
    throw new InvalidArgumentError(e.message);
  }
};
const positiveInt = (what) => (text) => {
  const v = Number(text);
  if (!Number.isInteger(v) || v <= 0) throw new InvalidArgumentError(`${what} wants a positive whole number, not '${text}'`);
  return v;
};

const program = new Command('load')
  .description('8 concurrent fio jobs and a metadata storm on a pagefs mount for a fixed time; checks errors, verify, fsck and the daemon\'s RSS against the cache cap')
  .option('--duration <seconds>', 'how long the load runs', positiveInt('--duration'), 600)
  .option('--quick', 'a 60 s run (overrides --duration)')
  .option('--cache-size <size>', 'the daemon\'s page-cache cap (pagefs mount --cache-size)', size('--cache-size'), 256 * MiB)
  .option('--overhead <size>', 'RSS allowed above the cache cap before the run fails (docs/LOAD.md says where it goes; issue 8\'s target of 128M is reported beside it)', size('--overhead'), 512 * MiB)
  .option('--storm-workers <n>', 'metadata storm processes', positiveInt('--storm-workers'), 3)
  .option('--seed <n>', 'the storm\'s seed (printed; the same seed, the same storm ops)', positiveInt('--seed'))
  .option('--json', 'print every figure, RSS samples included, as JSON on stdout after the table')
  .addHelpText('after', `
Examples:
  npm run load                          the full 10-minute run
  npm run load -- --quick               60 s
  node scripts/load.mjs --cache-size 1G --duration 120

Runs as root. The store lives in a fresh tmpfs (removed at the end); the daemon's log
lines that name an error are reported. Exit 0 when everything passed, 1 otherwise.`)
  .parse();
const opts = program.opts();
const duration = opts.quick ? 60 : opts.duration;
const seed = opts.seed ?? 1 + Math.floor(Math.random() * 2 ** 30);
const capBytes = opts.cacheSize;

let bench = null;
const storms = [];
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, async () => {
    if (stopping) return;
    stopping = true;
    log(`${sig}: stopping, unmounting`);
    for (const c of storms) if (c.exitCode === null) c.kill('SIGTERM');
    killRunning('SIGTERM');
    await waitRunning();
    // A storm worker still in the mount would make the unmount "busy".
    for (let i = 0; i < 100 && storms.some((c) => c.exitCode === null && c.signalCode === null); i++) await new Promise((r) => setTimeout(r, 100));
    await bench?.cleanup();
    process.exit(130);
  });
}

/** One storm worker; resolves with its last report (the JSON line it printed last). */
function startStorm(dir, id) {
  const child = spawn(process.execPath, [STORM, dir, String(id), String(duration), String(seed + id)], { stdio: ['ignore', 'pipe', 'pipe'] });
  storms.push(child);
  const state = { last: null, stderr: '' };
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) {
      try {
        state.last = JSON.parse(buf.slice(0, i));
      } catch { /* not a report */ }
    }
  });
  child.stderr.on('data', (d) => (state.stderr += d));
  state.done = new Promise((resolve) => child.on('close', (code, signal) => {
    const r = state.last ?? { id, ops: {}, errors: 0, messages: [] };
    if (code !== 0 && !r.errors) {
      r.errors = 1;
      r.messages = [`exit ${code ?? signal}: ${state.stderr.trim().slice(-300)}`];
    } else if (!r.done) {
      r.errors++;
      r.messages.push(`stopped before its final check (exit ${code ?? signal})`);
    }
    resolve(r);
  }));
  return state;
}

async function main() {
  const facts = machineFacts();
  const startedAt = new Date();
  process.stdout.write(`load: ${duration} s, cache cap ${capBytes / MiB} MiB, RSS bound cap + ${opts.overhead / MiB} MiB, ` +
    `${opts.stormWorkers} storm workers (seed ${seed}); ${facts.cores} cores, ${facts.kernel}, ${facts.fio}, pagefs ${facts.pagefs}\n`);
  bench = new Bench({ backSize: '8G', fsSize: '4G', cacheSize: String(capBytes) });
  await bench.setupBacking();
  const s = await bench.setupPagefs({ capacity: '4G' });
  const pid = s.pid;
  const logFile = `${s.store}.log`;

  const jobs = fs.readdirSync(LOAD_FIO).filter((f) => f.endsWith('.fio')).sort();
  const fioRuns = jobs.map((job) => {
    const dir = path.join(s.mp, `fio-${job.replace(/\.fio$/, '')}`);
    fs.mkdirSync(dir);
    // fio lays its files out before the clock starts: allow for that, then stop it.
    return run('fio', ['--output-format=json', path.join(LOAD_FIO, job)], { env: { DIR: dir, RUNTIME: String(duration) }, timeoutMs: (duration + 600) * 1000 })
      .then((r) => fioFigures(job.replace(/\.fio$/, ''), r, VERIFYING.test(job)));
  });
  const stormDir = path.join(s.mp, 'storm');
  fs.mkdirSync(stormDir);
  const stormStates = Array.from({ length: opts.stormWorkers }, (_, i) => startStorm(stormDir, i + 1));

  // Sampling: RSS every second, the daemon's own memory figures every 10 s.
  const t0 = Date.now();
  const samples = [];
  const loads = [];
  const memory = [];
  const bar = progress('load', duration, 's');
  let sampling = true;
  const sampler = (async () => {
    for (let tick = 0; sampling; tick++) {
      const m = procMem(pid);
      const t = (Date.now() - t0) / 1000;
      if (m) samples.push({ t, ...m });
      loads.push(os.loadavg()[0]);
      if (tick % 10 === 0) {
        const c = await queryControl(pid).catch(() => null);
        if (c && m) memory.push({ t, ...c.memory, anon: m.anon, file: m.file, shmem: m.shmem, pages: c.cache.pages, dirtyPages: c.cache.dirtyPages });
      }
      const st = stormTotals(stormStates.map((x) => x.last));
      bar.update(Math.floor(t), `${t > duration ? 'fio finishing, ' : ''}RSS ${((m?.rss ?? 0) / MiB).toFixed(0)} MiB (peak ${((m?.hwm ?? 0) / MiB).toFixed(0)}), storm ${st.total} ops, ${st.errors} errors`);
      await new Promise((r) => setTimeout(r, 1000 - ((Date.now() - t0) % 1000)));
    }
  })();

  const fio = await Promise.all(fioRuns);
  const storm = stormTotals(await Promise.all(stormStates.map((x) => x.done)));
  // Stopped by a signal: its handler unmounts and exits; nothing more to do here.
  if (stopping) await new Promise(() => undefined);
  sampling = false;
  await sampler;
  bar.stop();
  const seconds = (Date.now() - t0) / 1000;
  const hwm = procMem(pid)?.hwm ?? null;

  const st = await run(process.execPath, [PAGEFS, 'stat', s.mp, '--json'], { timeoutMs: 60_000 });
  const stat = st.code === 0 ? JSON.parse(st.stdout) : null;
  if (!stat) log(`pagefs stat failed: ${st.stderr.trim()}`);
  await bench.umountPagefs(s);
  const daemonLog = fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => BAD_LOG.test(l));
  const f = await run(process.execPath, [PAGEFS, 'fsck', s.store], { timeoutMs: 900_000 });
  const fsck = { ok: f.code === 0, code: f.code, output: (f.stdout + f.stderr).trim() };

  const rss = rssFigures(samples, hwm, capBytes, opts.overhead);
  const load = { min: Math.min(...loads), median: median(loads), max: Math.max(...loads), cores: facts.cores };
  process.stdout.write(summaryTable({ fio, storm, rss, stat, fsck, daemonLog, load, seconds }) + '\n');
  for (const m of storm.messages.slice(0, 20)) process.stdout.write(`storm error: ${m}\n`);
  const failed = fio.some((x) => !x.ok) || storm.errors > 0 || !rss.ok || !fsck.ok || daemonLog.length > 0 || !stat;
  process.stdout.write(`load: ${failed ? 'FAILED' : 'passed'} (started ${startedAt.toISOString()}, seed ${seed})\n`);
  if (opts.json) {
    process.stdout.write(JSON.stringify({ startedAt, duration, seed, facts, capBytes, overhead: opts.overhead, fio, storm, rss, timeline: rssTimeline(samples), samples, memory, stat, fsck, daemonLog, load }) + '\n');
  }
  return failed ? 1 : 0;
}

let code = 2;
try {
  code = await main();
} catch (e) {
  log(`stopped by an error: ${e.stack ?? e}`);
  for (const c of storms) if (c.exitCode === null) c.kill('SIGTERM');
  killRunning('SIGTERM');
  await waitRunning();
} finally {
  if (!stopping) await bench?.cleanup();
}
process.exit(code);
