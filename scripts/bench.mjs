#!/usr/bin/env node
/**
 * pagefs's benchmark: pagefs against fuse2fs (ext4 image), bindfs (FUSE passthrough over
 * tmpfs) and tmpfs, all backed by one tmpfs. See docs/BENCHMARKS.md for what it measures
 * and how; `node scripts/bench.mjs --help` for the options. Runs as root.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  Bench, run, must, log, pagefsLookups, procCounters, machineCpu, cpuBetween, waitRunning, now, MiB, GiB, WORKER, FIO_DIR, dropCaches, ensureTools, machineFacts, killRunning,
} from './bench/lib.mjs';
import {
  SYSTEMS, SVG, summarize, markdownTable, notesList, writeSection, PLACEHOLDERS, renderChart, fmt,
} from './bench/report.mjs';
import { runScaling } from './bench/scaling.mjs';

const HELP = `usage: node scripts/bench.mjs [--quick] [--json] [--scaling] [--no-docs] [--reps N]
                               [--systems a,b] [--groups seq,rand,copy,meta]

  (default)    full run: 1 GiB sequential file, 256 MiB random file, 10 s timed jobs,
               3 GiB memory churn before each step, 3 repetitions
  --quick      256 MiB sequential file, 64 MiB random file, 2 s timed jobs,
               256 MiB churn, 1 repetition: under three minutes, labelled QUICK in the report
  --json       print every figure as JSON on stdout (the table goes to stderr), and
               for each pagefs step the daemon's CPU seconds and page faults, the
               machine's CPU split (user, system, idle, steal) and its busiest processes
  --scaling    pagefs's scaling figures instead (with --quick: smaller, for trying it out)
  --no-docs    do not write docs/BENCHMARKS.md and docs/bench.svg
  --reps N     repetitions (default 3, quick 1)
  --systems, --groups   a subset, for debugging (never written to the docs)
  --render FILE  no measuring: rewrite docs/BENCHMARKS.md's results section and
               docs/bench.svg from the JSON a --json run printed
Runs as root: it mounts tmpfs and FUSE filesystems and drops the page cache.`;

function parseArgs(argv) {
  const o = { quick: false, json: false, scaling: false, docs: true, reps: null, systems: null, groups: null, render: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '--json') o.json = true;
    else if (a === '--scaling') o.scaling = true;
    else if (a === '--no-docs') o.docs = false;
    else if (a === '--render') o.render = argv[++i];
    else if (a === '--reps') o.reps = Number(argv[++i]);
    else if (a === '--systems') o.systems = argv[++i].split(',');
    else if (a === '--groups') o.groups = argv[++i].split(',');
    else if (a === '-h' || a === '--help') {
      process.stdout.write(HELP + '\n');
      process.exit(0);
    } else {
      process.stderr.write(`bench: unknown argument '${a}'\n${HELP}\n`);
      process.exit(2);
    }
  }
  if (o.reps !== null && !(Number.isInteger(o.reps) && o.reps > 0)) {
    process.stderr.write('bench: --reps wants a positive whole number\n');
    process.exit(2);
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));

const P = opts.quick
  ? { mode: 'QUICK', seqSize: 256 * MiB, randSize: 64 * MiB, copySize: 64 * MiB, files: 2000, timed: 2, coldCap: 2, punchTime: 2, seqCap: 60, churn: 256 * MiB, reps: 1 }
  : { mode: 'FULL', seqSize: 1 * GiB, randSize: 256 * MiB, copySize: 256 * MiB, files: 10000, timed: 10, coldCap: 30, punchTime: 5, seqCap: 120, churn: 3 * GiB, reps: 3 };
if (opts.reps) P.reps = opts.reps;
P.cacheSize = '1536M';
P.fsSize = '4G';
P.backSize = '12G';

const sizeText = (b) => (b >= GiB ? `${b / GiB} GiB` : `${b / MiB} MiB`);

const rowDefs = () => [
  { id: 'seqwrite', group: 'seq', short: 'seq write + fsync', label: `sequential write ${sizeText(P.seqSize)}, 1 MiB blocks, fsync`, unit: 'MiB/s' },
  { id: 'seqread_cold', group: 'seq', short: 'seq read, cold', label: 'sequential read 1 MiB blocks, cold', unit: 'MiB/s' },
  { id: 'seqread_warm', group: 'seq', short: 'seq read, warm', label: 'sequential read 1 MiB blocks, warm', unit: 'MiB/s' },
  { id: 'randread_cold', group: 'rand', short: '4K random read, cold', label: `4 KiB random read (${sizeText(P.randSize)} file), cold`, unit: 'IOPS' },
  { id: 'randread_warm', group: 'rand', short: '4K random read, warm', label: '4 KiB random read, warm', unit: 'IOPS' },
  { id: 'mmap_cold', group: 'rand', short: '4K mmap read, cold', label: '4 KiB random read through mmap, cold', unit: 'IOPS' },
  { id: 'mmap_warm', group: 'rand', short: '4K mmap read, warm', label: '4 KiB random read through mmap, warm', unit: 'IOPS' },
  { id: 'randwrite', group: 'rand', short: '4K random write + fsync', label: '4 KiB random write, fsync at the end', unit: 'IOPS' },
  { id: 'punch', group: 'rand', short: 'punch hole 4K', label: '4 KiB punch hole at random offsets', unit: 'punches/s' },
  { id: 'copy', group: 'copy', short: 'copy_file_range', label: `copy_file_range of a ${sizeText(P.copySize)} file, fsync`, unit: 'MiB/s' },
  { id: 'copy_space', group: 'copy', label: 'free space the copy took (statfs)', unit: 'MiB', lowerBetter: true, noRatio: true },
  { id: 'create', group: 'meta', short: 'create', label: `create ${P.files.toLocaleString('en-US')} files in one directory`, unit: 'files/s' },
  { id: 'stat', group: 'meta', short: 'stat, cold', label: 'stat each of them, cold', unit: 'files/s' },
  { id: 'unlink', group: 'meta', short: 'unlink', label: 'unlink each of them', unit: 'files/s' },
];
let ROWS = rowDefs();

const results = {}; // row id -> system -> { values: [], notes: [] }
function record(id, sys, value, note) {
  const cell = ((results[id] ??= {})[sys] ??= { values: [], notes: [] });
  cell.values.push(value);
  if (note) cell.notes.push(note);
}

let bench = null;
let cleaning = null;
let stopping = false; // a signal arrived: the run's own errors from here on are expected
async function cleanup() {
  if (!bench) return;
  cleaning ??= bench.cleanup();
  await cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, async () => {
    if (stopping) return;
    stopping = true;
    log(`${sig}: stopping, unmounting everything`);
    killRunning('SIGTERM');
    await waitRunning();
    await cleanup();
    process.exit(130);
  });
}

// --- steps ---

const ERRNO = Object.fromEntries(Object.entries(os.constants.errno).map(([k, v]) => [v, k]));

/** Runs one fio job file; returns its figures (or { error }). */
async function fio(job, env, capSec) {
  const file = path.join(FIO_DIR, `${job}.fio`);
  const r = await run('fio', ['--output-format=json', file], { env, timeoutMs: (capSec + 180) * 1000 });
  const i = r.stdout.indexOf('{');
  let j = null;
  try {
    j = JSON.parse(r.stdout.slice(i)).jobs[0];
  } catch {
    // below
  }
  if (!j) return { error: `fio failed (${r.timedOut ? 'timed out' : `exit ${r.code}`}): ${(r.stderr + r.stdout).trim().slice(0, 300)}` };
  if (j.error) {
    const msg = (r.stdout.slice(0, Math.max(i, 0)) + r.stderr).trim().split('\n').find((l) => /err=|error/.test(l)) ?? '';
    return { error: `${ERRNO[j.error] ?? `errno ${j.error}`}${msg ? ` (${msg.trim().slice(0, 160)})` : ''}` };
  }
  const d = ['read', 'write', 'trim'].map((k) => j[k]).find((x) => x.io_bytes > 0) ?? j.read;
  return { ioBytes: d.io_bytes, seconds: j.job_runtime / 1000, iops: d.iops, mibps: d.bw_bytes / MiB };
}

async function worker(args, timeoutMs = 600_000) {
  const r = await run(process.execPath, [WORKER, ...args], { timeoutMs });
  if (r.code !== 0) return { error: `${args[0]} failed (${r.timedOut ? 'timed out' : `exit ${r.code}`}): ${r.stderr.trim().split('\n').slice(-3).join(' ').slice(0, 300)}` };
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

let churnSeconds = [];
async function churn() {
  const r = await worker(['churn', String(P.churn)]);
  if (r.error) throw new Error(`memory churn: ${r.error}`);
  churnSeconds.push(r.seconds);
}

async function makeCold(s) {
  if (s.kind === 'pagefs') await bench.remountPagefs(s);
  dropCaches();
}

let stepNo = 0;
let stepTotal = 0;
/** Per pagefs step: the daemon's minor faults and CPU seconds, the machine's CPU split and busiest processes (in --json as pagefsDaemon). */
const daemonSteps = [];
/** churn, then (cold) caches, then the measurement; records the figure under row id. */
async function step(s, id, { cold = false, warm = false } = {}, measure) {
  stepNo++;
  await churn();
  if (cold) await makeCold(s);
  // A warm step on pagefs should never reach the daemon: say so when it did (the kernel
  // dropped its page cache, e.g. someone else's drop_caches or memory pressure).
  const lookups0 = warm && s.kind === 'pagefs' ? await pagefsLookups(s.mp) : null;
  const pc0 = s.kind === 'pagefs' ? procCounters(s.pid) : null;
  const mc0 = pc0 ? machineCpu() : null;
  const t0 = now();
  const res = await measure();
  const pc1 = pc0 ? procCounters(s.pid) : null;
  const ran = mc0 ? cpuBetween(mc0, machineCpu()) : null;
  // The daemon's own share of the step, kept for --json: a swing in a figure with no
  // change of code is then either fresh memory (minor faults) or CPU, or neither.
  const daemon = pc0 && pc1 ? { minflt: pc1.minflt - pc0.minflt, majflt: pc1.majflt - pc0.majflt, cpuSec: +(pc1.cpuSec - pc0.cpuSec).toFixed(2) } : undefined;
  if (daemon) daemonSteps.push({ id, step: stepNo, seconds: +(now() - t0).toFixed(2), ...daemon, ...ran });
  if (lookups0 !== null && !res.error) {
    const d = (await pagefsLookups(s.mp)) - lookups0;
    // A few stray lookups (a page evicted under someone else's memory pressure) are noise.
    if (d > 64) res.note = [res.note, `${d.toLocaleString('en-US')} page lookups reached the pagefs daemon during this warm step: the kernel's page cache did not hold the whole file`].filter(Boolean).join('; ');
  }
  const row = ROWS.find((r) => r.id === id);
  if (res.error) {
    record(id, s.name, null, res.error);
    log(`[${stepNo}/${stepTotal}] ${s.name.padEnd(7)} ${row.short ?? id}: ${res.error}`);
  } else {
    record(id, s.name, res.value, res.note);
    const d = daemon ? `; daemon ${daemon.cpuSec} s CPU, ${daemon.minflt.toLocaleString('en-US')} minor faults` : '';
    log(`[${stepNo}/${stepTotal}] ${s.name.padEnd(7)} ${(row.short ?? id).padEnd(24)} ${fmt(res.value).padStart(10)} ${row.unit}${res.note ? `  (${res.note})` : ''}  [${(now() - t0).toFixed(1)} s${d}]`);
  }
  return res;
}

/** fio job as a step: value = rate in the row's unit; notes a time cap that cut it short. */
function fioMeasure(job, env, capSec, unit, expectBytes) {
  return async () => {
    const r = await fio(job, env, capSec);
    if (r.error) return r;
    const value = unit === 'MiB/s' ? r.mibps : r.iops;
    const capped = expectBytes !== undefined && r.ioBytes < expectBytes;
    return { ...r, value, capped, note: capped ? `stopped by the ${capSec} s cap after ${sizeText(Math.round(r.ioBytes / MiB) * MiB)} of ${sizeText(expectBytes)}` : undefined };
  };
}

async function layout(file, size) {
  const r = await fio('seqwrite', { FILE: file, SIZE: String(size), RUNTIME: '600' }, 600);
  if (r.error) throw new Error(`laying out ${file}: ${r.error}`);
}

async function warmPass(file, size) {
  const r = await fio('seqread', { FILE: file, SIZE: String(size), RUNTIME: '600' }, 600);
  if (r.error) throw new Error(`warming ${file}: ${r.error}`);
}

function rm(p) {
  fs.rmSync(p, { recursive: true, force: true });
}

const GROUPS = {
  async seq(s) {
    const f = path.join(s.mp, 'seq.dat');
    const env = { FILE: f, RUNTIME: String(P.seqCap) };
    await step(s, 'seqwrite', {}, fioMeasure('seqwrite', { ...env, SIZE: String(P.seqSize) }, P.seqCap, 'MiB/s', P.seqSize));
    // A write stopped by its cap leaves a shorter file: read what is there.
    const size = Math.floor(fs.statSync(f).size / MiB) * MiB;
    if (size === 0) throw new Error(`${s.name}: the sequential write left nothing to read`);
    const cold = await step(s, 'seqread_cold', { cold: true }, fioMeasure('seqread', { ...env, SIZE: String(size) }, P.seqCap, 'MiB/s', size));
    if (cold.error || cold.capped) await warmPass(f, size);
    await step(s, 'seqread_warm', { warm: true }, fioMeasure('seqread', { ...env, SIZE: String(size) }, P.seqCap, 'MiB/s', size));
    rm(f);
  },
  async rand(s) {
    const f = path.join(s.mp, 'rand.dat');
    const size = String(P.randSize);
    await layout(f, P.randSize);
    const cold = { FILE: f, SIZE: size, RUNTIME: String(P.coldCap), TIME_BASED: '0' };
    const warm = { FILE: f, SIZE: size, RUNTIME: String(P.timed), TIME_BASED: '1' };
    let r = await step(s, 'randread_cold', { cold: true }, fioMeasure('randread', cold, P.coldCap, 'IOPS', P.randSize));
    if (r.error || r.capped) await warmPass(f, P.randSize);
    await step(s, 'randread_warm', { warm: true }, fioMeasure('randread', warm, P.timed, 'IOPS'));
    r = await step(s, 'mmap_cold', { cold: true }, fioMeasure('mmapread', cold, P.coldCap, 'IOPS', P.randSize));
    if (r.error || r.capped) await warmPass(f, P.randSize);
    await step(s, 'mmap_warm', { warm: true }, fioMeasure('mmapread', warm, P.timed, 'IOPS'));
    await step(s, 'randwrite', {}, fioMeasure('randwrite', { FILE: f, SIZE: size, RUNTIME: String(P.timed) }, P.timed, 'IOPS'));
    // Each block punched at most once (random map), so every punch hits mapped data.
    await step(s, 'punch', {}, async () => {
      const m = await fioMeasure('punch', { FILE: f, SIZE: size, RUNTIME: String(P.punchTime) }, P.punchTime, 'IOPS')();
      if (!m.error && m.ioBytes >= P.randSize) m.note = `punched the whole file in ${m.seconds.toFixed(2)} s`;
      return m;
    });
    rm(f);
  },
  async copy(s) {
    const src = path.join(s.mp, 'copy-src.dat');
    const dst = path.join(s.mp, 'copy-dst.dat');
    await layout(src, P.copySize);
    const r = await step(s, 'copy', {}, async () => {
      const w = await worker(['copy', src, dst]);
      if (w.error) return w;
      return { value: w.mibps, spaceTaken: w.spaceTaken };
    });
    record('copy_space', s.name, r.error ? null : r.spaceTaken / MiB);
    rm(src);
    rm(dst);
  },
  async meta(s) {
    const d = path.join(s.mp, 'meta');
    fs.mkdirSync(d);
    const n = String(P.files);
    const w = (kind) => async () => {
      const r = await worker([kind, d, n]);
      return r.error ? r : { value: r.opsPerSec };
    };
    const c = await step(s, 'create', {}, w('create'));
    if (!c.error) {
      await step(s, 'stat', { cold: true }, w('stat'));
      await step(s, 'unlink', {}, w('unlink'));
    }
    rm(d);
  },
};

const STEPS_PER_GROUP = { seq: 3, rand: 6, copy: 1, meta: 3 };

async function mainRun() {
  const t0 = now();
  const startedAt = new Date();
  const systems = opts.systems ?? SYSTEMS;
  const groups = opts.groups ?? Object.keys(GROUPS);
  for (const s of systems) if (!SYSTEMS.includes(s)) throw new Error(`unknown system ${s}`);
  for (const g of groups) if (!GROUPS[g]) throw new Error(`unknown group ${g}`);
  const partial = systems.length !== SYSTEMS.length || groups.length !== Object.keys(GROUPS).length;
  const facts = machineFacts();
  const load = { start: os.loadavg(), max1: os.loadavg()[0] };
  const loadTimer = setInterval(() => (load.max1 = Math.max(load.max1, os.loadavg()[0])), 2000);
  stepTotal = P.reps * systems.length * groups.reduce((a, g) => a + STEPS_PER_GROUP[g], 0);
  log(`${P.mode} run: ${systems.join(', ')}; ${P.reps} repetition(s); ${stepTotal} measured steps`);

  bench = new Bench({ backSize: P.backSize, fsSize: P.fsSize, cacheSize: P.cacheSize });
  await bench.setupBacking();
  if (systems.includes('pagefs')) await bench.setupPagefs({ capacity: P.fsSize });
  if (systems.includes('fuse2fs')) await bench.setupFuse2fs();
  if (systems.includes('bindfs')) await bench.setupBindfs();
  if (systems.includes('tmpfs')) await bench.setupTmpfs();
  for (let rep = 0; rep < P.reps; rep++) {
    // Rotate which system goes first, so no system always follows the same one.
    const order = systems.map((_, i) => systems[(i + rep) % systems.length]);
    for (const g of groups) for (const name of order) await GROUPS[g](bench.systems[name]);
  }
  await bench.cleanup();
  clearInterval(loadTimer);
  load.end = os.loadavg();
  const seconds = now() - t0;
  await output({ groups, partial, facts, load, seconds, startedAt, commands: bench.commands, churnMedian: median(churnSeconds) });
}

/** Re-renders the docs from the JSON of an earlier --json run (its own figures only). */
async function renderFrom(file) {
  const j = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!j.rows || !j.params) throw new Error(`${file}: not the JSON of a bench.mjs --json run`);
  Object.assign(P, j.params);
  ROWS = rowDefs();
  for (const r of j.rows) for (const [s, c] of Object.entries(r.per)) for (let i = 0; i < c.values.length; i++) record(r.id, s, c.values[i]);
  for (const r of j.rows) for (const [s, c] of Object.entries(r.per)) results[r.id][s].notes.push(...c.notes);
  const groups = [...new Set(ROWS.filter((r) => j.rows.some((x) => x.id === r.id)).map((r) => r.group))];
  opts.json = false;
  await output({ groups, partial: false, facts: j.machine, load: j.load, seconds: j.seconds, startedAt: new Date(j.startedAt), commands: j.commands, churnMedian: j.churnSecondsMedian });
}

async function output({ groups, partial, facts, load, seconds, startedAt, commands, churnMedian }) {
  const rows = ROWS.filter((r) => groups.includes(r.group));
  const summary = summarize(rows, results);
  const table = markdownTable(summary, P.reps);
  const notes = notesList(summary);
  const json = {
    mode: P.mode, startedAt: startedAt.toISOString(), seconds, params: P, machine: facts, load, commands,
    churnSecondsMedian: churnMedian,
    pagefsDaemon: daemonSteps,
    rows: summary.map((r) => ({ id: r.id, label: r.label, unit: r.unit, ratio: r.ratio, per: r.per })),
  };
  const tableOut = `${table}\n${notes.length ? '\nNotes:\n' + notes.map((n) => `- ${n}`).join('\n') + '\n' : ''}`;
  if (opts.json) {
    process.stdout.write(JSON.stringify(json, null, 2) + '\n');
    process.stderr.write('\n' + tableOut);
  } else {
    process.stdout.write('\n' + tableOut);
  }
  if (!opts.render) log(`${P.mode} run took ${(seconds / 60).toFixed(1)} min`);

  if (!opts.docs) return;
  if (partial) {
    log('a subset of systems or workloads: not writing docs/BENCHMARKS.md');
    return;
  }
  const svg = await renderChart(summary, {
    title: `pagefs compared with fuse2fs, bindfs and tmpfs${P.mode === 'QUICK' ? ' (QUICK run)' : ''}`,
    subtitle: `${startedAt.toISOString().slice(0, 10)}, ${facts.cores} cores, ${facts.kernel}; medians of ${P.reps} repetition(s); see docs/BENCHMARKS.md`,
  });
  fs.writeFileSync(SVG, svg);
  writeSection('results', resultsSection({ table, notes, facts, load, seconds, startedAt, commands, churnMedian }), PLACEHOLDERS);
  log(`wrote docs/BENCHMARKS.md and docs/bench.svg`);
}

function median(xs) {
  const v = [...xs].sort((a, b) => a - b);
  return v.length ? v[v.length >> 1] : null;
}

function resultsSection({ table, notes, facts, load, seconds, startedAt, commands, churnMedian }) {
  const quick = P.mode === 'QUICK';
  const l = (a) => a.map((x) => x.toFixed(2)).join(', ');
  return `## Results${quick ? ' — QUICK run (smaller files, 2 s jobs, 1 repetition: not the reference figures)' : ''}

${quick ? '**QUICK mode** (`--quick`): a smoke run of the benchmark, with smaller files and shorter jobs than the full run; its figures are rougher.\n\n' : ''}Run of ${startedAt.toISOString().replace('T', ' ').slice(0, 16)} UTC, ${P.mode.toLowerCase()} mode, ${P.reps} repetition(s), ${(seconds / 60).toFixed(1)} minutes.
Medians${P.reps > 1 ? ' (min–max)' : ''}; the last three columns are pagefs's median divided by the other system's (above 1.0× pagefs was faster).

${table}
${notes.length ? '\nNotes:\n\n' + notes.map((n) => `- ${n}`).join('\n') + '\n' : ''}
![pagefs ÷ each other system, per workload](bench.svg)

### Parameters

| | |
|---|---|
| sequential file | ${sizeText(P.seqSize)}, written then read in 1 MiB blocks; each job capped at ${P.seqCap} s |
| random-access file | ${sizeText(P.randSize)}, 4 KiB blocks; warm jobs and the random write run ${P.timed} s, cold jobs read each block at most once within ${P.coldCap} s |
| punch | 4 KiB holes at random block-aligned offsets of the written random-access file, each block at most once, for at most ${P.punchTime} s |
| copy_file_range | a ${sizeText(P.copySize)} file just written and fsynced, copied whole into a new file, then fsync (both timed); space taken = drop in statfs's available bytes |
| metadata | ${P.files.toLocaleString('en-US')} empty files in one directory: create (open O_CREAT\\|O_EXCL, close), stat(2) (cold), unlink. stat(2) asks for the basic fields; node's fs.stat (statx with the birth time) would cost pagefs, which serves birth times, a FUSE_STATX request after each lookup, a request fuse2fs and bindfs never get |
| memory churn | ${sizeText(P.churn)} of anonymous memory populated and freed before every measured step (median ${churnMedian?.toFixed(1)} s each) |
| pagefs | \`--cache-size ${P.cacheSize}\`, 4 KiB blocks, ${P.fsSize} capacity; cold = unmount + mount + drop_caches |

### Machine

| | |
|---|---|
| CPU | ${facts.cores} cores, ${facts.cpu} |
| memory | ${facts.memoryGiB} GiB |
| kernel | ${facts.kernel} |
| fio | ${facts.fio} |
| libfuse | ${facts.libfuse3} (libfuse 3: pagefs); ${facts.libfuse2 ?? '?'} (libfuse 2: fuse2fs, bindfs) |
| fuse2fs, bindfs | ${facts.fuse2fs}; ${facts.bindfs} |
| Node.js | ${facts.node} |
| pagefs | ${facts.pagefs} |
| load average (1, 5, 15 min) | at the start ${l(load.start)}; at the end ${l(load.end)}; highest 1-minute value during the run ${load.max1.toFixed(2)} |

The load average counts what else ran on the machine: with 2 cores, anything above about
1 (this benchmark's own load) means other work competed for the CPU and the figures are noisy.

### Mount commands

\`$B\` is the run's fresh directory (\`/tmp/pagefs-bench-XXXXXX\`); the FUSE daemons run in
the foreground (\`-f\`) as the benchmark's own children, so that it knows their pids.

\`\`\`sh
${commands.join('\n')}
\`\`\`
`;
}

async function main() {
  if (opts.render) {
    await renderFrom(opts.render);
    return;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: run as root (it mounts filesystems and drops the page cache)\n');
    process.exit(1);
  }
  if (!fs.existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing: this machine cannot mount FUSE filesystems');
  if (!fs.existsSync(path.join(path.dirname(WORKER), '..', '..', 'dist', 'sys', 'index.js'))) {
    throw new Error('pagefs is not built: run npm run build (or npm run bench, which does)');
  }
  await ensureTools();
  if (opts.scaling) {
    const ctx = { opts, log, setBench: (b) => (bench = b) };
    await runScaling(ctx);
  } else {
    await mainRun();
  }
}

main().then(
  async () => {
    await cleanup();
  },
  async (e) => {
    if (stopping) return; // the signal handler cleans up and exits
    log(`error: ${e.stack ?? e.message}`);
    killRunning('SIGTERM');
    await cleanup();
    process.exit(1);
  },
);
