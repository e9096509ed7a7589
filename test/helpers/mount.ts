/**
 * Test harness: a fresh store mounted by a daemon in a child process, and a teardown
 * that never leaves a mount behind (umount; if that fails, abort the FUSE connection and
 * detach; then kill the daemon by its pid).
 *
 * Tests talk to the mount with async fs calls or child processes with timeouts: a
 * synchronous call that hangs on a broken daemon would also hang the test worker, past
 * every timeout.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DAEMON_NODE_FLAGS } from '../../src/cli/mount.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = path.join(ROOT, 'bin', 'pagefs.js');
const pexec = promisify(execFile);

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command with a timeout; never throws for a non-zero exit. */
export async function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<RunResult> {
  try {
    const r = await pexec(cmd, args, { cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20, env: opts.env ?? process.env, killSignal: 'SIGKILL' });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e: any) {
    if (typeof e.code !== 'number' && e.killed !== true && e.stdout === undefined) throw e;
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: (e.stderr ?? '') + (e.killed ? `\n[killed after timeout: ${cmd} ${args.join(' ')}]` : '') };
  }
}

export function pagefs(args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  return run(process.execPath, [BIN, ...args], opts);
}

/** A shell command line (bash -c) with a timeout. */
export function sh(script: string, opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return run('bash', ['-c', script], opts);
}

export interface Mounted {
  dir: string;
  store: string;
  mp: string;
  proc: ChildProcess;
  /** What the daemon wrote on stderr so far. */
  log(): string;
  /** Unmounts and waits for the daemon to exit with status 0; throws otherwise. */
  unmount(): Promise<void>;
  /** Mounts the same store again (after unmount or kill). */
  remount(): Promise<void>;
  /** SIGKILLs the daemon and clears the dead mount. */
  kill(): Promise<void>;
  /** Teardown for afterEach: whatever state, leaves no mount and no daemon. */
  cleanup(): Promise<void>;
}

export interface MountOptions {
  blockSize?: number;
  capacity?: string;
  mountArgs?: string[];
  /** Use an existing store instead of making one. */
  store?: string;
  /** The daemon's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

/** pagefs-test-<run>-: global-setup.ts clears only its own run's mounts, and dead runs'. */
export function testDirPrefix(): string {
  return `pagefs-test-${process.env.PAGEFS_TEST_RUN ?? process.pid}-`;
}

export async function makeStore(dir: string, opts: MountOptions = {}): Promise<string> {
  const store = path.join(dir, 'store.db');
  const r = await pagefs(['mkfs', store, '--capacity', opts.capacity ?? '2G', '--block-size', String(opts.blockSize ?? 4096)]);
  if (r.code !== 0) throw new Error(`mkfs failed: ${r.stderr}`);
  return store;
}

export async function mountFresh(opts: MountOptions = {}): Promise<Mounted> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), testDirPrefix()));
  const store = opts.store ?? await makeStore(dir, opts);
  const mp = path.join(dir, 'mnt');
  fs.mkdirSync(mp);
  let proc!: ChildProcess;
  let logText = '';
  let exited: Promise<number | null>;

  const start = async () => {
    proc = spawn(process.execPath, [...DAEMON_NODE_FLAGS, BIN, 'mount', store, mp, '--foreground', '--debug-locks', '--ready-fd', '3', ...(opts.mountArgs ?? [])],
      { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    proc.stdout!.on('data', (d) => { logText += d.toString(); });
    proc.stderr!.on('data', (d) => { logText += d.toString(); });
    exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
    const ready = await Promise.race([
      new Promise<string>((resolve) => {
        let buf = '';
        (proc.stdio[3] as NodeJS.ReadableStream).on('data', (d) => {
          buf += d.toString();
          if (buf.includes('\n')) resolve(buf.split('\n')[0]);
        });
      }),
      exited.then((c) => `exited ${c}`),
      new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), 30_000)),
    ]);
    if (ready !== 'ready') {
      await forceClear(mp, proc);
      throw new Error(`mount failed (${ready}): ${logText}`);
    }
  };

  const m: Mounted = {
    dir, store, mp,
    get proc() { return proc; },
    log: () => logText,
    async unmount() {
      const r = await run('umount', [mp], { timeoutMs: 30_000 });
      if (r.code !== 0) throw new Error(`umount failed: ${r.stderr}`);
      const code = await Promise.race([exited, new Promise<string>((res) => setTimeout(() => res('timeout'), 60_000))]);
      if (code !== 0) throw new Error(`daemon did not exit cleanly (${code}): ${logText}`);
    },
    async remount() {
      await start();
    },
    async kill() {
      proc.kill('SIGKILL');
      await exited;
      await forceClear(mp, proc);
    },
    async cleanup() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const r = await run('umount', [mp], { timeoutMs: 15_000 });
        if (r.code === 0) {
          await Promise.race([exited, new Promise((res) => setTimeout(res, 30_000))]);
        }
      }
      await forceClear(mp, proc);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  } as Mounted;
  await start();
  return m;
}

/** Aborts the FUSE connection of any mount at `mp`, detaches it, and kills the daemon if still alive. */
export async function forceClear(mp: string, proc?: ChildProcess): Promise<void> {
  for (let i = 0; i < 5; i++) {
    const entry = fuseMountAt(mp);
    if (!entry) break;
    try {
      fs.writeFileSync(`/sys/fs/fuse/connections/${entry.conn}/abort`, '1');
    } catch { /* already gone */ }
    await run('umount', ['-l', mp], { timeoutMs: 10_000 });
  }
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    proc.kill('SIGKILL');
  }
}

export function fuseMountAt(mp: string): { conn: number } | undefined {
  const abs = path.resolve(mp);
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const f = pre.split(' ');
    if (f[4] === abs && post.startsWith('fuse')) return { conn: Number(f[2].split(':')[1]) };
  }
  return undefined;
}

/** The daemon's log must not contain internal errors or lock-checker reports. */
export function expectCleanLog(m: Mounted): void {
  const bad = m.log().split('\n').filter((l) => /internal error|LOCK CHECKER|Uncaught|TypeError|RangeError/.test(l));
  if (bad.length) throw new Error(`daemon log has errors:\n${bad.join('\n')}`);
}
