/**
 * Before and after the whole run: no test mount may survive. Anything left under the
 * test directories (a crashed worker, a killed run) is aborted and detached.
 */
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';

function clearTestMounts(): void {
  const lines = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  for (const line of lines) {
    const [pre, post] = line.split(' - ');
    if (!post || !post.startsWith('fuse')) continue;
    const f = pre.split(' ');
    const mp = f[4];
    if (!/\/pagefs-test-/.test(mp)) continue;
    try { fs.writeFileSync(`/sys/fs/fuse/connections/${f[2].split(':')[1]}/abort`, '1'); } catch { /* gone */ }
    try { execFileSync('umount', ['-l', mp], { timeout: 10_000 }); } catch { /* gone */ }
    process.stderr.write(`global teardown: cleared leftover mount ${mp}\n`);
  }
}

export function setup(): void {
  if (!fs.existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing: the mount tests cannot run here (they never skip)');
  clearTestMounts();
}

export function teardown(): void {
  clearTestMounts();
}
