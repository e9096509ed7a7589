/** The fio verification jobs (scripts/fio-stress.mjs) on a pagefs mount and on tmpfs: every job's verify passes. */
import { describe, it, expect, afterAll } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { mountFresh, run, expectCleanLog, ROOT, type Mounted } from '../helpers/mount.js';

let m: Mounted | null = null;
let shm = '';
afterAll(async () => {
  await m?.cleanup();
  if (shm) fs.rmSync(shm, { recursive: true, force: true });
});

describe('fio verification jobs', () => {
  it('pass on pagefs and on tmpfs, and the table names every job', async () => {
    m = await mountFresh({ capacity: '2G' });
    shm = fs.mkdtempSync('/dev/shm/pagefs-fio-');
    const r = await run(process.execPath, [path.join(ROOT, 'scripts', 'fio-stress.mjs'), m.mp, shm], { timeoutMs: 600_000 });
    expect(r.stderr).not.toMatch(/FAILED/);
    const rows = r.stdout.trim().split('\n').slice(2);
    const jobs = fs.readdirSync(path.join(ROOT, 'scripts', 'fio', 'verify')).filter((f) => f.endsWith('.fio')).length;
    expect(rows.length).toBe(jobs);
    for (const row of rows) expect(row, row).toMatch(/^\| [\w-]+ \| ok, [\d.]+ MiB\/s, \d+ IOPS \| ok, [\d.]+ MiB\/s, \d+ IOPS \|$/);
    expect(r.code).toBe(0);
    expectCleanLog(m);
  });
});
