/**
 * The benchmark's outputs: the markdown table of medians (min–max) with pagefs's ratio
 * to each system, the sections of docs/BENCHMARKS.md (each run replaces only its own
 * section, between markers), and the SVG chart, drawn by vega-lite + vega in Node
 * (renderer 'none', toSVG: no canvas, no browser).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './lib.mjs';

export const SYSTEMS = ['pagefs', 'fuse2fs', 'bindfs', 'tmpfs'];
export const OTHERS = SYSTEMS.slice(1);
export const DOC = path.join(ROOT, 'docs', 'BENCHMARKS.md');
export const SVG = path.join(ROOT, 'docs', 'bench.svg');

export function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function fmt(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  if (a === 0) return '0';
  return x.toPrecision(2);
}

export function fmtRatio(r) {
  if (r === null || !Number.isFinite(r)) return '—';
  if (r >= 100) return `${r.toFixed(0)}×`;
  if (r >= 10) return `${r.toFixed(1)}×`;
  return `${r.toFixed(2)}×`;
}

/** Per row: median, min, max per system; ratio = pagefs median ÷ system median. */
export function summarize(rows, results) {
  return rows.map((row) => {
    const per = {};
    for (const s of SYSTEMS) {
      const cell = results[row.id]?.[s] ?? { values: [], notes: [] };
      const vals = cell.values.filter((x) => typeof x === 'number');
      per[s] = {
        values: cell.values,
        median: median(vals),
        min: vals.length ? Math.min(...vals) : null,
        max: vals.length ? Math.max(...vals) : null,
        notes: cell.notes,
      };
    }
    const ratio = {};
    for (const s of OTHERS) {
      const p = per.pagefs.median;
      const o = per[s].median;
      ratio[s] = row.noRatio || p === null || o === null || o === 0 ? null : p / o;
    }
    return { ...row, per, ratio };
  });
}

function cellText(c, reps) {
  if (c.median === null) return c.notes.length ? 'n/a' : '—';
  if (reps > 1 && c.min !== c.max) return `${fmt(c.median)} (${fmt(c.min)}–${fmt(c.max)})`;
  return fmt(c.median);
}

export function markdownTable(summary, reps) {
  const head = ['workload', 'unit', ...SYSTEMS, ...OTHERS.map((s) => `pagefs ÷ ${s}`)];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`];
  for (const r of summary) {
    const cells = [r.label, r.unit + (r.lowerBetter ? ' (lower is better)' : ''), ...SYSTEMS.map((s) => cellText(r.per[s], reps)), ...OTHERS.map((s) => fmtRatio(r.ratio[s]))];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

export function notesList(summary) {
  const out = [];
  for (const r of summary) {
    for (const s of SYSTEMS) {
      const notes = r.per[s].notes.map((n) => n.replace(/pid=\d+, /, ''));
      let uniq = [...new Set(notes)];
      if (!uniq.length) continue;
      // The same sentence with different numbers: once, with the numbers listed.
      const tpl = (n) => n.replace(/\d[\d,.]*/g, '#');
      if (uniq.length > 1 && uniq.every((n) => tpl(n) === tpl(uniq[0]))) {
        const nums = notes.map((n) => n.match(/\d[\d,.]*/g) ?? []);
        let i = 0;
        uniq = [tpl(notes[0]).replace(/#/g, () => nums.map((x) => x[i]).join(' / ') + (i++, ''))];
      }
      const times = uniq.length === 1 && notes.length > 1 ? ` (in ${notes.length} repetitions)` : '';
      out.push(`${s}, ${r.label}: ${uniq.join('; ')}${times}`);
    }
  }
  return out;
}

// --- docs/BENCHMARKS.md sections ---

const INTRO = `# pagefs benchmarks

\`npm run bench\` (that is \`bash scripts/bootstrap.sh && node scripts/bench.mjs\`, as root)
measures pagefs against three other filesystems on the same machine, in the same run:

- **fuse2fs**: an ext4 image, served through FUSE by e2fsprogs' fuse2fs (libfuse 2);
- **bindfs**: a FUSE passthrough (libfuse 2) over a tmpfs directory;
- **tmpfs**: the kernel's own in-memory filesystem, the ceiling.

pagefs's store, the ext4 image and bindfs's source directory all live in one tmpfs, so no
disk is involved anywhere: the figures compare the filesystems' own costs.

How to run it (as root; it installs fio, fuse2fs and bindfs with apt-get when missing):

| command | what it does |
|---|---|
| \`npm run bench\` | the full run: every workload on every system, 3 repetitions; replaces the Results section below and docs/bench.svg (about 25 minutes on 2 cores) |
| \`npm run bench -- --quick\` | smaller files, 2 s per timed job, 1 repetition, less memory churn: under three minutes; writes the same section, labelled QUICK |
| \`npm run bench -- --json\` | also prints every figure as JSON on stdout (the table then goes to stderr) |
| \`npm run bench -- --scaling\` | pagefs's scaling figures (punch cost against file size, lookups in big directories, mount and fsck time against the number of files, the daemon's memory against --cache-size); replaces the Scaling section below (3 to 8 minutes) |
| \`npm run bench -- --no-docs\` | measure and print only |
| \`node scripts/bench.mjs --render FILE\` | no measuring: rewrites the Results section and the chart from the JSON of an earlier \`--json\` run |

(\`node scripts/bench.mjs ...\` does the same without the bootstrap step.) An interrupted run
(Ctrl-C, SIGTERM) unmounts everything it mounted; a stuck FUSE mount is aborted through
/sys/fs/fuse/connections and detached.

Method:

- The workloads are fio job files in scripts/fio/ (numjobs 1, ioengine psync; mmap reads
  use ioengine=mmap, punches fio's falloc engine) and, for what fio cannot do, small Node
  scripts (scripts/bench/worker.mjs: copy_file_range, creates, stats and unlinks).
  Every job is bounded in time.
- Each repetition runs each workload on each system in turn (the order of the systems
  rotates between repetitions). The table gives the median and, over several
  repetitions, min–max, and pagefs's median divided by each other system's: above 1.0×
  pagefs was faster.
- **Cold** means: \`echo 3 > /proc/sys/vm/drop_caches\` right before the step, and for
  pagefs additionally an unmount and mount, so that its own page cache starts empty too.
  tmpfs has no cache to drop: its cold figures are warm ones. **Warm** means: right after
  the cold step, and after one unmeasured sequential read of the whole file if the cold
  step did not read all of it. fio's own cache invalidation is switched off
  (\`invalidate=0\`): caches are the benchmark's business.
- **Memory churn**: before each measured step the benchmark populates and frees about
  3 GiB of anonymous memory (256 MiB in quick mode). This machine is a VM that returns
  freed memory to its host, and the first touch of a page is slow; without the churn,
  whichever step first needed fresh memory would pay for it.
- Compare systems only **within one run**: the figures move from run to run and from
  machine to machine (the load average during the run is recorded with it).

Profiling the daemon: run it in the foreground under Node's sampling profiler, on a
store of your own (the profile is written when the daemon exits, at unmount; one file per
thread, the reader threads included):

\`\`\`sh
node --cpu-prof --cpu-prof-dir=/tmp/prof bin/pagefs.js mount STORE MNT --foreground &
# ... the workload ...
fusermount3 -u MNT        # then open /tmp/prof/*.cpuprofile in Chrome DevTools
\`\`\`

The daemon's CPU time per operation (\`/proc/PID/stat\` utime + stime around a workload) is
a steadier figure than throughput on a machine shared with other work.
`;

const BEGIN = (id) => `<!-- bench:${id}:begin -->`;
const END = (id) => `<!-- bench:${id}:end -->`;

/** Replaces (or appends) the section between this id's markers, keeping the rest. */
export function writeSection(id, body, placeholders = {}) {
  let doc = fs.existsSync(DOC) ? fs.readFileSync(DOC, 'utf8') : INTRO;
  for (const [pid, text] of Object.entries(placeholders)) {
    if (!doc.includes(BEGIN(pid))) doc = doc.trimEnd() + `\n\n${BEGIN(pid)}\n${text}\n${END(pid)}\n`;
  }
  const block = `${BEGIN(id)}\n${body.trim()}\n${END(id)}`;
  const a = doc.indexOf(BEGIN(id));
  const b = doc.indexOf(END(id));
  if (a >= 0 && b > a) doc = doc.slice(0, a) + block + doc.slice(b + END(id).length);
  else doc = doc.trimEnd() + `\n\n${block}\n`;
  fs.mkdirSync(path.dirname(DOC), { recursive: true });
  fs.writeFileSync(DOC, doc.trimEnd() + '\n');
}

export const PLACEHOLDERS = {
  results: '## Results\n\nNot measured yet: run `npm run bench`.',
  scaling: '## Scaling\n\nNot measured yet: run `node scripts/bench.mjs --scaling`.',
};

// --- chart ---

const COLORS = { fuse2fs: '#4c78a8', bindfs: '#f58518', tmpfs: '#54a24b' };

export async function renderChart(summary, { title, subtitle }) {
  const vega = await import('vega');
  const vl = await import('vega-lite');
  const values = [];
  for (const r of summary) {
    if (r.noRatio) continue;
    for (const s of OTHERS) {
      const ratio = r.ratio[s];
      if (ratio === null) continue;
      values.push({ workload: r.short ?? r.label, system: s, ratio, labelX: Math.max(ratio, 1), label: fmtRatio(ratio) });
    }
  }
  const order = summary.filter((r) => !r.noRatio).map((r) => r.short ?? r.label);
  const ratios = values.map((v) => v.ratio);
  const lo = Math.min(0.5, ...ratios) / 1.5;
  const hi = Math.max(2, ...ratios) * 3;
  const x = { scale: { type: 'log', domain: [lo, hi] } };
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle, anchor: 'start', fontSize: 14, subtitleFontSize: 11 },
    width: 520,
    height: { step: 13 },
    background: 'white',
    data: { values },
    encoding: { y: { field: 'workload', type: 'nominal', sort: order, title: null, scale: { paddingInner: 0.3 }, axis: { labelLimit: 260, labelFontSize: 11 } } },
    layer: [
      {
        mark: { type: 'bar' },
        encoding: {
          x: { field: 'ratio', type: 'quantitative', ...x, title: 'pagefs ÷ other system (log scale; right of 1× = pagefs faster)', axis: { format: '~g', labelExpr: "datum.label ? datum.label + '×' : ''" } },
          x2: { datum: 1 },
          yOffset: { field: 'system', sort: OTHERS },
          color: { field: 'system', title: 'pagefs compared with', sort: OTHERS, scale: { domain: OTHERS, range: OTHERS.map((s) => COLORS[s]) } },
        },
      },
      {
        mark: { type: 'text', align: 'left', dx: 3, fontSize: 9, color: '#333' },
        encoding: {
          x: { field: 'labelX', type: 'quantitative', ...x },
          yOffset: { field: 'system', sort: OTHERS },
          text: { field: 'label' },
        },
      },
      {
        data: { values: [{ one: 1 }] },
        mark: { type: 'rule', color: '#222', strokeDash: [4, 3] },
        encoding: { x: { field: 'one', type: 'quantitative', ...x }, y: null },
      },
    ],
    config: { legend: { orient: 'top' } },
  };
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
