/**
 * Before and after the whole run: no test mount may survive. Test directories are named
 * pagefs-test-<run>-..., <run> being this vitest process's pid (PAGEFS_TEST_RUN, which the
 * workers inherit). At the end this run's leftovers are aborted and detached; at the start
 * so are those of runs whose process is gone (a killed run), never a live run's mounts.
 */
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { processAlive } from '../../src/util/process.js';


function clearTestMounts(which: (run: number) => boolean): void {
  const lines = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  for (const line of lines) {
    const [pre, post] = line.split(' - ');
    if (!post || !post.startsWith('fuse')) continue;
    const f = pre.split(' ');
    const mp = f[4];
    const m = /\/pagefs-test-(\d+)-/.exec(mp);
    if (!m || !which(Number(m[1]))) continue;
    try { fs.writeFileSync(`/sys/fs/fuse/connections/${f[2].split(':')[1]}/abort`, '1'); } catch { /* gone */ }
    try { execFileSync('umount', ['-l', mp], { timeout: 10_000 }); } catch { /* gone */ }
    process.stderr.write(`global teardown: cleared leftover mount ${mp}\n`);
  }
}

export function setup(): void {
  if (!fs.existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing: the mount tests cannot run here (they never skip)');
  process.env.PAGEFS_TEST_RUN = String(process.pid);
  clearTestMounts((run) => !processAlive(run));
}

export function teardown(): void {
  clearTestMounts((run) => run === process.pid);
}
