/**
 * Small helpers shared by the mount tests (not the harness: that is test/helpers/mount.ts).
 * Everything that touches the mount runs in a child process with a timeout.
 */
import { expect } from 'vitest';
import { run, sh, pagefs, expectCleanLog, type RunResult, type Mounted } from '../helpers/mount.js';

/** Fails with the command's output unless it exited 0; returns its stdout. */
export function ok(r: RunResult, what: string): string {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}\nstdout: ${r.stdout.slice(0, 4000)}\nstderr: ${r.stderr.slice(0, 4000)}`);
  return r.stdout;
}

/** bash -c SCRIPT, must exit 0; returns stdout. */
export async function shOk(script: string, opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return ok(await sh(script, { timeoutMs: 60_000, ...opts }), script.length > 200 ? script.slice(0, 200) + '...' : script);
}

/** python3 -c SCRIPT ARGS..., must exit 0; returns stdout. */
export async function pyOk(script: string, args: string[] = [], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  return ok(await run('python3', ['-c', script, ...args], { timeoutMs: 60_000, ...opts }), `python3 ${args.join(' ')}`);
}

/** `pagefs stat TARGET --json`, parsed (on a mountpoint, `.live` holds the daemon's figures); fails unless it exits 0. */
export async function pagefsStat(target: string): Promise<any> {
  return JSON.parse(ok(await pagefs(['stat', target, '--json'], { timeoutMs: 30_000 }), 'pagefs stat --json'));
}

/** Drops the kernel's clean page cache, dentries and inodes, so the next reads go to the daemon. */
export async function dropCaches(): Promise<void> {
  await shOk('echo 3 > /proc/sys/vm/drop_caches', { timeoutMs: 60_000 });
}

/** statfs of a path: block size, total, free. */
export async function statfs(p: string): Promise<{ bsize: number; blocks: number; bfree: number; usedBytes: number }> {
  const out = await shOk(`stat -f -c '%S %b %f' ${q(p)}`, { timeoutMs: 30_000 });
  const [bsize, blocks, bfree] = out.trim().split(/\s+/).map(Number);
  return { bsize, blocks, bfree, usedBytes: (blocks - bfree) * bsize };
}

/** Shell-quotes one word. */
export function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** sha256 of a file, through a child process. */
export async function sha256(p: string, timeoutMs = 120_000): Promise<string> {
  const out = await shOk(`sha256sum ${q(p)}`, { timeoutMs });
  return out.split(/\s+/)[0];
}

/** Polls `check` until it returns true or `ms` pass; returns the last result. */
export async function eventually(check: () => Promise<boolean>, ms: number, stepMs = 100): Promise<boolean> {
  const t0 = Date.now();
  for (;;) {
    if (await check()) return true;
    if (Date.now() - t0 > ms) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** No FUSE mount of ours may remain under `dir`. */
export async function expectNoMountUnder(dir: string): Promise<void> {
  const r = await run('grep', ['-F', dir, '/proc/mounts'], { timeoutMs: 10_000 });
  expect(r.stdout, 'a mount is left behind').toBe('');
}

/**
 * Lines of the daemon log after character `since` that report internal errors (the same
 * pattern as expectCleanLog, applied to one test's share of the log).
 */
export function logErrorsSince(log: string, since: number): string[] {
  return log.slice(since).split('\n').filter((l) => /internal error|LOCK CHECKER|Uncaught|TypeError|RangeError/.test(l));
}

/** The end of a describe block: unmount cleanly, clean daemon log, clean store. */
export async function finish(m: Mounted): Promise<void> {
  await m.unmount();
  expectCleanLog(m);
  const r = await pagefs(['fsck', m.store]);
  expect(r.stdout + r.stderr).toMatch(/clean/);
  expect(r.code).toBe(0);
}
