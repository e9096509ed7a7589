/**
 * The load test's figures (scripts/load.mjs): fio's JSON per job, the storm workers'
 * counts, the RSS samples, and the one summary table printed at the end.
 */
import { MiB } from '../bench/lib.mjs';
import { median } from '../bench/report.mjs';

const mib = (b) => `${(b / MiB).toFixed(0)} MiB`;
const n = (x) => Math.round(x).toLocaleString('en-US');

/** One fio run: its exit code and, from its JSON, errors and bytes moved. */
export function fioFigures(job, r, verifies) {
  const out = { job, code: r.code, signal: r.signal, timedOut: r.timedOut, verifies, error: null, read: 0, written: 0, trims: 0, ios: 0 };
  try {
    // The measured job is the last one; a job file may lay its file out in a job before it.
    const jobs = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs;
    const j = jobs[jobs.length - 1];
    out.error = jobs.find((x) => x.error !== 0)?.error ?? 0;
    out.read = j.read.io_bytes;
    out.written = j.write.io_bytes;
    out.trims = j.trim?.total_ios ?? 0;
    out.ios = j.read.total_ios + j.write.total_ios + out.trims;
  } catch {
    out.error = -1;
  }
  // fio says what failed on stderr ("verify: bad header ...", "fio: io_u error ...").
  out.stderr = r.stderr.trim().split('\n').filter((l) => l).slice(-3).join(' | ');
  out.ok = r.code === 0 && out.error === 0 && !r.timedOut;
  return out;
}

export function fioCell(f) {
  const moved = [f.written && `${mib(f.written)} written`, f.read && `${mib(f.read)} read${f.verifies ? ' (incl. verify)' : ''}`, f.trims && `${n(f.trims)} punches`].filter(Boolean).join(', ');
  if (f.ok) return `ok${f.verifies ? ', verify passed' : ''}: ${moved}`;
  const why = f.timedOut ? 'timed out' : `exit ${f.code ?? f.signal}, fio error ${f.error}`;
  return `FAILED (${why}${f.stderr ? `: ${f.stderr}` : ''}); ${moved}`;
}

/** Sums the storm workers' last reports. */
export function stormTotals(reports) {
  const ops = {};
  let errors = 0;
  const messages = [];
  for (const r of reports) {
    for (const [k, v] of Object.entries(r?.ops ?? {})) ops[k] = (ops[k] ?? 0) + v;
    errors += r?.errors ?? 0;
    messages.push(...(r?.messages ?? []).map((m) => `storm ${r.id}: ${m}`));
  }
  const total = Object.entries(ops).filter(([k]) => k !== 'final-check').reduce((t, [, v]) => t + v, 0);
  return { ops, total, errors, messages };
}

/** Issue 8's target for the daemon's RSS: the cache cap plus this. */
const ISSUE8_OVERHEAD = 128 * MiB;

export function rssFigures(samples, hwm, capBytes, overheadBytes) {
  const rss = samples.map((s) => s.rss);
  const peak = Math.max(hwm ?? 0, ...rss);
  const atPeak = samples.reduce((a, b) => (b.rss > a.rss ? b : a), samples[0]);
  return { atPeak, target: capBytes + ISSUE8_OVERHEAD, min: Math.min(...rss), median: median(rss), peakSampled: Math.max(...rss), hwm, peak, cap: capBytes, bound: capBytes + overheadBytes, ok: peak <= capBytes + overheadBytes };
}

/** RSS over the run in a few time slices (min / median / max of each), for the docs. */
export function rssTimeline(samples, slices = 10) {
  if (!samples.length) return [];
  const t1 = samples[samples.length - 1].t;
  const out = [];
  for (let i = 0; i < slices; i++) {
    const a = (t1 * i) / slices;
    const b = (t1 * (i + 1)) / slices;
    const xs = samples.filter((s) => s.t >= a && (s.t < b || (i === slices - 1 && s.t <= b))).map((s) => s.rss);
    if (xs.length) out.push({ from: a, to: b, min: Math.min(...xs), median: median(xs), max: Math.max(...xs) });
  }
  return out;
}

export function summaryTable({ fio, storm, rss, stat, fsck, daemonLog, load, seconds }) {
  const rows = [];
  for (const f of fio) rows.push([`fio ${f.job}`, fioCell(f)]);
  const ops = Object.entries(storm.ops).map(([k, v]) => `${n(v)} ${k}`).join(', ');
  rows.push(['metadata storm', `${storm.errors ? 'FAILED' : 'ok'}: ${n(storm.total)} ops (${ops}), ${storm.errors} errors`]);
  rows.push(['daemon RSS', `${rss.ok ? 'ok' : 'OVER THE BOUND'}: min ${mib(rss.min)}, median ${mib(rss.median)}, peak ${mib(rss.peak)} (VmHWM ${mib(rss.hwm ?? 0)}); ` +
    `bound ${mib(rss.bound)} = cache cap ${mib(rss.cap)} + ${mib(rss.bound - rss.cap)}; ` +
    `largest sample ${mib(rss.atPeak.rss)} = ${mib(rss.atPeak.anon)} anonymous + ${mib(rss.atPeak.file)} file + ${mib(rss.atPeak.shmem)} shmem`]);
  rows.push(['issue 8 target: RSS under cap + 128 MiB', rss.peak <= rss.target ? `met (peak ${mib(rss.peak)} ≤ ${mib(rss.target)})` : `not met (peak ${mib(rss.peak)} > ${mib(rss.target)}; not a failure of this run)`]);
  if (stat) {
    const c = stat.live.cache;
    rows.push(['page cache (pagefs stat)', `${n(c.hits)} hits, ${n(c.misses)} misses, ${n(c.readaheadPages)} readahead pages, ${n(c.evictions)} evictions, ` +
      `${n(c.invalidations)} invalidations, ${n(c.writebacks)} writebacks of ${n(c.writebackPages)} pages; ${n(c.lock.waits)} lock waits`]);
    rows.push(['store (pagefs stat)', `${n(stat.usedBlocks)} blocks used, ${n(stat.sharedBlocks)} shared, ${n(stat.freeBlocks)} free, ${n(stat.inodes)} inodes; ` +
      `readers: ${n(stat.live.readers.reads)} reads of ${n(stat.live.readers.blocks)} blocks`]);
  }
  rows.push(['daemon log', daemonLog.length ? `FAILED: ${daemonLog.length} error lines: ${daemonLog.slice(0, 3).join(' | ')}` : 'ok: no error lines']);
  rows.push(['fsck after unmount', fsck.ok ? 'clean' : `FAILED (exit ${fsck.code}): ${fsck.output.slice(0, 500)}`]);
  rows.push(['machine load (1-min average)', `min ${load.min.toFixed(1)}, median ${load.median.toFixed(1)}, max ${load.max.toFixed(1)} on ${load.cores} cores`]);
  rows.push(['duration', `${seconds.toFixed(0)} s`]);
  return ['| what | result |', '|---|---|', ...rows.map(([a, b]) => `| ${a} | ${b.replace(/\|/g, '\\|')} |`)].join('\n');
}
