#!/usr/bin/env node
// Runs the verifying fio jobs of scripts/fio/verify/ against one or more directories (any
// Linux filesystem: a pagefs mount, tmpfs, ext4, fuse2fs) and prints one markdown table:
// per job and directory, whether fio's verify passed and the bandwidth.
//   node scripts/fio-stress.mjs /mnt/pagefs /dev/shm/x /mnt/fuse2fs
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const jobsDir = path.join(here, 'fio', 'verify');
const dirs = process.argv.slice(2);
if (dirs.length === 0 || dirs.includes('--help')) {
  process.stderr.write('usage: node scripts/fio-stress.mjs DIR [DIR...]\nRuns each job of scripts/fio/verify/ in a fresh subdirectory of each DIR and prints a table.\n');
  process.exit(dirs.length === 0 ? 2 : 0);
}
if (spawnSync('fio', ['--version']).status !== 0) {
  process.stderr.write('fio-stress: fio is not installed (apt-get install fio)\n');
  process.exit(1);
}
const jobs = fs.readdirSync(jobsDir).filter((f) => f.endsWith('.fio')).sort();
const rows = [];
let failures = 0;
for (const job of jobs) {
  const row = [job.replace(/\.fio$/, '')];
  for (const dir of dirs) {
    const work = fs.mkdtempSync(path.join(dir, 'fio-stress-'));
    process.stderr.write(`fio-stress: ${job} on ${dir}\n`);
    const r = spawnSync('fio', ['--output-format=json', path.join(jobsDir, job)], {
      env: { ...process.env, DIR: work }, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20,
    });
    let cell;
    try {
      const out = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
      const errs = out.jobs.filter((j) => j.error !== 0);
      const bw = out.jobs.reduce((t, j) => t + j.read.bw_bytes + j.write.bw_bytes + (j.trim?.bw_bytes ?? 0), 0);
      const iops = out.jobs.reduce((t, j) => t + j.read.iops + j.write.iops + (j.trim?.iops ?? 0), 0);
      cell = errs.length === 0 && r.status === 0
        ? `ok, ${(bw / 2 ** 20).toFixed(1)} MiB/s, ${Math.round(iops)} IOPS`
        : `FAILED (${errs.map((j) => `${j.jobname}: error ${j.error}`).join('; ') || `exit ${r.status}`})`;
    } catch {
      cell = `FAILED (${(r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-1)[0]})`;
    }
    if (cell.startsWith('FAILED')) failures++;
    row.push(cell);
    fs.rmSync(work, { recursive: true, force: true });
  }
  rows.push(row);
}
const header = ['job', ...dirs];
const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
process.stdout.write(lines.join('\n') + '\n');
process.exit(failures > 0 ? 1 : 0);
