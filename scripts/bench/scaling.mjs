/**
 * `node scripts/bench.mjs --scaling`: how pagefs's costs grow with the size of what it
 * holds. pagefs only, on stores in a tmpfs:
 *
 *  1. one 4 KiB punch in a 64 MiB file and in an 8 GiB file (every block mapped:
 *     fallocate mode 0, then real data written at the punch points), in alternating
 *     rounds after a remount each;
 *  2. a cold lookup + stat of a name in a directory of 10 and of 100,000 entries;
 *  3. mount time and `pagefs fsck` time for stores of 0, 1,000 and 100,000 files;
 *  4. the daemon's resident memory (VmRSS, VmHWM) while it takes a 1 GiB sequential
 *     write, for two --cache-size values.
 *
 * Writes the "Scaling" section of docs/BENCHMARKS.md.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Bench, run, must, now, MiB, GiB, WORKER, FIO_DIR, PAGEFS, dropCaches, machineFacts, procMem, sleep } from './lib.mjs';
import { writeSection, PLACEHOLDERS, fmt, median } from './report.mjs';

const sizeText = (b) => (b >= GiB ? `${b / GiB} GiB` : `${b / MiB} MiB`);
const n = (x) => x.toLocaleString('en-US');

export async function runScaling({ opts, log, setBench }) {
  const quick = opts.quick;
  const S = quick
    ? { files: [64 * MiB, 1 * GiB], punches: 50, dirs: [10, 10_000], stores: [1_000, 10_000], cycles: 3, lookups: 500, rssWrite: 256 * MiB, caches: ['64M', '256M'], churn: 512 * MiB, capacity: '4G' }
    : { files: [64 * MiB, 8 * GiB], punches: 200, dirs: [10, 100_000], stores: [1_000, 100_000], cycles: 5, lookups: 1000, rssWrite: 1 * GiB, caches: ['256M', '1536M'], churn: 3 * GiB, capacity: '12G' };
  const t0 = now();
  const startedAt = new Date();
  const facts = machineFacts();
  const load = { start: os.loadavg(), max1: os.loadavg()[0] };
  const loadTimer = setInterval(() => (load.max1 = Math.max(load.max1, os.loadavg()[0])), 2000);
  const bench = new Bench({ backSize: quick ? '8G' : '20G', fsSize: S.capacity, cacheSize: '1536M' });
  setBench(bench);
  await bench.setupBacking();

  const worker = async (args) => {
    const r = await run(process.execPath, [WORKER, ...args], { timeoutMs: 900_000 });
    if (r.code !== 0) throw new Error(`worker ${args[0]}: ${r.stderr.trim().slice(-500)}`);
    return JSON.parse(r.stdout.trim().split('\n').pop());
  };
  const churn = () => worker(['churn', String(S.churn)]);
  const cold = async (s) => {
    await bench.remountPagefs(s);
    dropCaches();
  };
  const rnd = (k) => Math.floor(Math.random() * k);
  const out = { punch: [], lookup: [], stores: [], rss: [] };

  // 1. punch cost against file size. Both files live in one store; each round writes data
  // at new random points of both, then remounts (cold), then punches those points in one
  // file and then the other, the order alternating between rounds, so that the machine's
  // drift between rounds (a one-file-at-a-time run of 50 punches each gave ratios from
  // 0.71 to 1.70 between runs) falls on both files alike.
  {
    const s = await bench.setupPagefs({ name: 'punch', store: 'punch.db', capacity: S.capacity });
    const files = [];
    for (const size of S.files) {
      const f = path.join(s.mp, `f-${size}`);
      const pre = await worker(['prealloc', f, String(size)]);
      files.push({ size, f, prealloc: pre.seconds, used: new Set(), us: [], firsts: [], roundMedians: [] });
    }
    for (let round = 0; round < S.cycles; round++) {
      const lists = files.map((x) => {
        const blocks = x.size / 4096;
        const offs = [];
        while (offs.length < S.punches) {
          const o = rnd(blocks) * 4096;
          if (!x.used.has(o)) { x.used.add(o); offs.push(String(o)); }
        }
        return offs;
      });
      for (let i = 0; i < files.length; i++) await worker(['pwrite', files[i].f, '4096', ...lists[i]]);
      await churn();
      await cold(s);
      const order = round % 2 === 0 ? files.map((_, i) => i) : files.map((_, i) => files.length - 1 - i);
      for (const i of order) {
        const { us } = await worker(['punch', files[i].f, '4096', ...lists[i]]);
        files[i].us.push(...us);
        files[i].firsts.push(us[0]);
        files[i].roundMedians.push(median(us));
      }
    }
    for (const x of files) {
      const row = { size: x.size, prealloc: x.prealloc, n: x.us.length, rounds: S.cycles, median: median(x.us),
        roundMin: Math.min(...x.roundMedians), roundMax: Math.max(...x.roundMedians), first: median(x.firsts), max: Math.max(...x.us) };
      out.punch.push(row);
      log(`punch in a ${sizeText(x.size)} file: median ${fmt(row.median)} µs (rounds ${fmt(row.roundMin)}–${fmt(row.roundMax)}), first of a round ${fmt(row.first)} µs, max ${fmt(row.max)} µs (fallocate of the file took ${x.prealloc.toFixed(1)} s)`);
      fs.rmSync(x.f);
    }
    const [a, b] = out.punch;
    if (a && b) log(`punch: ${sizeText(b.size)} against ${sizeText(a.size)}: ${(b.median / a.median).toFixed(2)}×`);
    await bench.umountPagefs(s);
  }

  // 2 + 3. stores of 0, 1,000 and N files; lookups in 10- and N-entry directories
  const stores = [];
  for (const count of [0, ...S.stores]) {
    const name = `files${count}`;
    const s = await bench.setupPagefs({ name, store: `${name}.db`, capacity: '1G' });
    if (count === S.stores[0]) {
      // The small store: a 10-entry directory, the rest in another.
      fs.mkdirSync(path.join(s.mp, 'd10'));
      await worker(['create', path.join(s.mp, 'd10'), String(S.dirs[0])]);
      fs.mkdirSync(path.join(s.mp, 'd'));
      await worker(['create', path.join(s.mp, 'd'), String(count - S.dirs[0])]);
      s.lookupDir = { dir: 'd10', entries: S.dirs[0] };
    } else if (count > 0) {
      fs.mkdirSync(path.join(s.mp, 'd'));
      const c = await worker(['create', path.join(s.mp, 'd'), String(count)]);
      log(`created ${n(count)} files in one directory at ${fmt(c.opsPerSec)} files/s`);
      s.lookupDir = { dir: 'd', entries: count };
    }
    s.count = count;
    stores.push(s);
  }
  for (const s of stores.filter((x) => x.lookupDir)) {
    const { dir, entries } = s.lookupDir;
    const per = [];
    for (let c = 0; c < S.cycles; c++) {
      const names = new Set();
      const k = Math.min(entries, S.lookups);
      while (names.size < k) names.add(`f${String(rnd(entries)).padStart(7, '0')}`);
      await churn();
      await cold(s);
      const r = await worker(['lookup', path.join(s.mp, dir), '1', ...names]);
      per.push(r.usPerOp);
    }
    const row = { entries, lookups: Math.min(entries, S.lookups), cycles: S.cycles, median: median(per), min: Math.min(...per), max: Math.max(...per) };
    out.lookup.push(row);
    log(`cold lookup+stat in a directory of ${n(entries)}: median ${fmt(row.median)} µs per name`);
  }
  for (const s of stores) {
    await bench.umountPagefs(s);
    const mounts = [];
    const fscks = [];
    for (let c = 0; c < 3; c++) {
      await churn();
      dropCaches();
      mounts.push(await bench.mountPagefs(s, '256M'));
      await bench.umountPagefs(s);
      const r = await must(process.execPath, [PAGEFS, 'fsck', s.store], { timeoutMs: 900_000 });
      fscks.push(r.seconds);
    }
    const size = fs.statSync(s.store).size;
    const row = { files: s.count, storeBytes: size, mount: median(mounts), mountMin: Math.min(...mounts), mountMax: Math.max(...mounts), fsck: median(fscks), fsckMin: Math.min(...fscks), fsckMax: Math.max(...fscks) };
    out.stores.push(row);
    log(`store of ${n(s.count)} files: mount ${row.mount.toFixed(2)} s, fsck ${row.fsck.toFixed(2)} s`);
    for (const f of fs.readdirSync(bench.back)) if (f.startsWith(path.basename(s.store))) fs.rmSync(path.join(bench.back, f));
  }

  // 4. daemon memory during a big sequential write, against --cache-size
  {
    const s = await bench.setupPagefs({ name: 'rss', store: 'rss.db', capacity: quick ? '2G' : '4G' });
    for (const cache of S.caches) {
      await bench.umountPagefs(s);
      await bench.mountPagefs(s, cache);
      const pid = s.pid;
      const before = procMem(pid);
      let peak = before.rss;
      const f = path.join(s.mp, 'big.dat');
      await churn();
      const poll = setInterval(() => {
        const m = procMem(pid);
        if (m) peak = Math.max(peak, m.rss);
      }, 100);
      const r = await run('fio', ['--output-format=json', path.join(FIO_DIR, 'seqwrite.fio')], { env: { FILE: f, SIZE: String(S.rssWrite), RUNTIME: '600' }, timeoutMs: 900_000 });
      clearInterval(poll);
      const after = procMem(pid);
      peak = Math.max(peak, after.rss);
      const j = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0];
      const row = { cache, before: before.rss, peak, hwm: after.hwm, after: after.rss, mibps: j.write.bw_bytes / MiB };
      out.rss.push(row);
      log(`--cache-size ${cache}: RSS ${fmt(before.rss / MiB)} MiB before, peak ${fmt(peak / MiB)} MiB (VmHWM ${fmt(after.hwm / MiB)} MiB), ${fmt(after.rss / MiB)} MiB after the fsync; ${fmt(row.mibps)} MiB/s`);
      fs.rmSync(f);
    }
    await bench.umountPagefs(s);
  }

  await bench.cleanup();
  clearInterval(loadTimer);
  load.end = os.loadavg();
  const seconds = now() - t0;
  const json = { mode: quick ? 'QUICK' : 'FULL', startedAt: startedAt.toISOString(), seconds, machine: facts, load, params: S, ...out };
  const md = scalingSection(out, { quick, S, facts, load, seconds, startedAt });
  if (opts.json) process.stdout.write(JSON.stringify(json, null, 2) + '\n');
  else process.stdout.write('\n' + md + '\n');
  log(`scaling run took ${(seconds / 60).toFixed(1)} min`);
  if (opts.docs) {
    writeSection('scaling', md, PLACEHOLDERS);
    log('wrote the scaling section of docs/BENCHMARKS.md');
  }
}

function scalingSection(out, { quick, S, facts, load, seconds, startedAt }) {
  const mib = (b) => fmt(b / MiB);
  const l = (a) => a.map((x) => x.toFixed(2)).join(', ');
  const p = out.punch;
  const lk = out.lookup;
  return `## Scaling${quick ? ' — QUICK run (smaller sizes: not the reference figures)' : ''}

pagefs alone, run of ${startedAt.toISOString().replace('T', ' ').slice(0, 16)} UTC (${(seconds / 60).toFixed(1)} minutes), ${facts.cores} cores,
${facts.kernel}, pagefs ${facts.pagefs}; load average ${l(load.start)} at the start, ${l(load.end)} at the end,
highest 1-minute value ${load.max1.toFixed(2)}. Each measurement follows ${sizeText(S.churn)} of memory churn.

**Punching one 4 KiB block** (\`fallocate(PUNCH_HOLE|KEEP_SIZE)\`) in files of each size, all in one
store. Each file was preallocated whole (fallocate mode 0, so every block is mapped). ${S.cycles} rounds;
in each, real data is written at ${S.punches} new random block-aligned points of each file, then an
unmount + mount + drop_caches, then those points are punched one after another, one file after the
other, the order alternating between rounds.${p.length === 2 ? ` The ${sizeText(p[1].size)} file's median is
${(p[1].median / p[0].median).toFixed(2)}× the ${sizeText(p[0].size)} file's.` : ''}

| file size | punches | median µs per punch | round medians, min–max | the file's first punch of a round, median µs | slowest µs | fallocate of the whole file |
|---:|---:|---:|---:|---:|---:|---:|
${p.map((r) => `| ${sizeText(r.size)} | ${n(r.n)} | ${fmt(r.median)} | ${fmt(r.roundMin)}–${fmt(r.roundMax)} | ${fmt(r.first)} | ${fmt(r.max)} | ${r.prealloc.toFixed(2)} s |`).join('\n')}

**Lookup + stat of a name** (\`stat(2)\` of a name the kernel has not cached), after an unmount +
mount + drop_caches; ${S.cycles} rounds, each of up to ${n(S.lookups)} distinct random names.

| entries in the directory | names per round | median µs per name | min–max over the rounds |
|---:|---:|---:|---:|
${lk.map((r) => `| ${n(r.entries)} | ${n(r.lookups)} | ${fmt(r.median)} | ${fmt(r.min)}–${fmt(r.max)} |`).join('\n')}

**Mount and fsck time** against the number of files (empty files; the 1,000-file store has a
10-entry directory and the rest in another; the others one directory). Wall time of the
commands, node start included: \`pagefs mount\` until it returns (the mount answers), and
\`pagefs fsck STORE\`; median (min–max) of 3, after drop_caches.

| files | store size | \`pagefs mount\` s | \`pagefs fsck\` s |
|---:|---:|---:|---:|
${out.stores.map((r) => `| ${n(r.files)} | ${mib(r.storeBytes)} MiB | ${r.mount.toFixed(2)} (${r.mountMin.toFixed(2)}–${r.mountMax.toFixed(2)}) | ${r.fsck.toFixed(2)} (${r.fsckMin.toFixed(2)}–${r.fsckMax.toFixed(2)}) |`).join('\n')}

**The daemon's memory during a ${sizeText(S.rssWrite)} sequential write** (fio, 1 MiB blocks, fsync at the
end), against \`--cache-size\`: VmRSS of the daemon (its pid from \`pagefs stat MOUNTPOINT --json\`),
polled every 100 ms, and the kernel's high-water mark VmHWM.

| --cache-size | RSS before | peak RSS (polled) | VmHWM | RSS after the fsync | write MiB/s |
|---:|---:|---:|---:|---:|---:|
${out.rss.map((r) => `| ${r.cache} | ${mib(r.before)} MiB | ${mib(r.peak)} MiB | ${mib(r.hwm)} MiB | ${mib(r.after)} MiB | ${fmt(r.mibps)} |`).join('\n')}
`;
}
