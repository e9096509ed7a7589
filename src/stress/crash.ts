/**
 * The crash-under-load checker (pagefs stress --crash, test/stress/crash.test.ts,
 * scripts/crash-campaign.mjs): round after round on one store, a worker process
 * (crash-worker.ts) runs a seeded random workload on a few files of the mount while the
 * daemon is SIGKILLed under it at a random moment; then the dead mount is cleared, the
 * store must pass fsck, and after a fresh mount every file is checked against the
 * worker's operation log:
 *
 *   - what was fsynced must be there unless a later operation changed it: each block may
 *     hold its content at the file's last completed fsync, or its content after any later
 *     operation that touched it (closed under later truncations: any subset of the
 *     un-fsynced operations, applied in order, is a legal outcome, since POSIX orders
 *     nothing that was not synced); the size likewise;
 *   - a name change (rename over the file, unlink + create, the first create) is certain
 *     only once the directory fsync after it returned; before that, the file may be the
 *     old one or the new one, as a whole;
 *   - a file whose size ends inside a block reads zeros past its end once it grows again
 *     (the tail probe: grown to the block's end, read, cut back).
 *
 * Then a clean unmount, fsck again, and the next round starts from what was read (the
 * new baseline), first checking that the remount shows exactly that.
 *
 * The daemon runs as this process's child (`pagefs mount --foreground`, ready on fd 3):
 * its pid is the one the store records as owner, and its death is reaped at once (a
 * zombie still counts as the store's owner, so a detached daemon would block the next
 * mount until init reaps it). The daemon's log goes to STORE.log; each round's operation
 * log to STORE.crash.log, kept as STORE.crash-rN.log when round N had a violation.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { distFile, PAGEFS_BIN } from '../util/paths.js';
import { Rng } from './rng.js';
import { STAMP_LEN } from './stamp.js';
import {
  type CrashWorkerConfig, type CrashLogLine, FILE_PREFIX, fileNameOf, tmpNameOf,
} from './crash-worker.js';
import { CrashModel, describeBytes, historyOf, type Mismatch, type NameState } from './crash-model.js';

export { CrashModel, describeBytes };

export interface CrashOptions {
  /** A pagefs store, not mounted. Its files named crash-f* are the checker's. */
  store: string;
  /** An empty directory to mount it on. */
  mountpoint: string;
  rounds: number;
  seed: number;
  /** Files the workload works on (default 4). */
  files?: number;
  /** Largest file size in bytes (default 1 MiB). */
  maxFileSize?: number;
  /** Extra arguments to `pagefs mount STORE MOUNTPOINT`. */
  mountArgs?: string[];
  /** Range of the delay between the worker being ready and the SIGKILL (default 50..1500 ms). */
  killDelayMs?: { min: number; max: number };
  /** Stop after the first round with a violation, fsck problem or error. */
  stopOnFailure?: boolean;
  onProgress?: (p: CrashProgress) => void;
  /** Called after each round, with the store unmounted, clean, and checked. */
  afterRound?: (info: RoundInfo) => void | Promise<void>;
  /** Stops the run at the next step (the mount is cleared and the result returned, with the reason in errors). */
  signal?: AbortSignal;
}

export interface CrashProgress {
  round: number;
  rounds: number;
  ops: number;
  fsyncs: number;
  violations: number;
  elapsedMs: number;
}

export interface RoundInfo {
  round: number;
  store: string;
  mountpoint: string;
  blockSize: number;
  /** The checker's file names, slot by slot. */
  files: string[];
  result: CrashResult;
}

export interface CrashViolation extends Mismatch {
  round: number;
  seed: number;
  /** The round's worker seed (the workload repeats with it, the timing does not). */
  workerSeed: number;
  /** after-crash: the check after the SIGKILL; after-remount: the check that a clean unmount kept everything. */
  phase: 'after-crash' | 'after-remount';
  file: string;
  /** The round's operation log, kept beside the store. */
  log?: string;
}

export interface FsckProblem {
  round: number;
  phase: 'after-crash' | 'after-umount';
  code: number;
  output: string;
}

export interface CrashResult {
  seed: number;
  blockSize: number;
  /** Rounds completed (each one kill point). */
  rounds: number;
  /** Operations issued (logged) by the workers, over all rounds. */
  ops: number;
  opCounts: Record<string, number>;
  /** File fsyncs and fdatasyncs that returned. */
  fsyncs: number;
  /** Directory fsyncs that returned. */
  dirFsyncs: number;
  /** Delay of each round's SIGKILL after the worker was ready, ms. */
  killDelays: number[];
  /** Blocks compared after crashes and remounts. */
  checkedBlocks: number;
  /** Blocks that held a state older than the last operation on them: un-synced operations lost, as is legal. */
  olderBlocks: number;
  /** Files that were still the earlier file of their name: a rename, unlink or create lost before its directory fsync. */
  olderNames: number;
  /** Files whose size after a crash ended inside a block, grown to the block's end to see zeros there (then cut back). */
  tailProbes: number;
  /** fsck notes after the crashes (orphans are legal then). */
  fsckNotes: number;
  violations: CrashViolation[];
  fsckProblems: FsckProblem[];
  /** Lines of the daemon's log that name an internal error. */
  daemonErrors: string[];
  /** Anything else that went wrong: a worker error before the kill, a failed mount or unmount, what stopped the run. */
  errors: string[];
  /** What went wrong and was overcome (a mount that needed a second attempt). */
  notes: string[];
  elapsedMs: number;
  /** Time spent in each phase over all rounds (mount, workload, check, fsck, ...), ms. */
  phaseMs: Record<string, number>;
}

// ---------------------------------------------------------------------------------------
// The model: what a file may hold.

/** A block's content: the stamp of `gen` in its first v bytes and zeros after (v = 0: zeros), or raw bytes seen earlier. */
interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], timeoutMs: number): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [PAGEFS_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d.toString(); });
    child.stderr.on('data', (d) => { stderr += d.toString(); });
    const t = setTimeout(() => { stderr += `\n[killed after ${timeoutMs} ms]`; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (e) => { clearTimeout(t); resolve({ code: -1, stdout, stderr: stderr + e.message }); });
    child.on('exit', (code, sig) => { clearTimeout(t); resolve({ code: code ?? (sig ? -1 : 0), stdout, stderr }); });
  });
}

/** A timer that does not keep the process alive: for the losing side of a race. */
function deadline(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function fuseConnAt(mp: string): number | undefined {
  const abs = path.resolve(mp);
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const f = pre.split(' ');
    if (f[4] === abs && post.startsWith('fuse')) return Number(f[2].split(':')[1]);
  }
  return undefined;
}

/** Aborts the FUSE connection of a mount at mp and detaches it, until none is left. */
async function clearMount(mp: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    const conn = fuseConnAt(mp);
    if (conn === undefined) return;
    try {
      fs.writeFileSync(`/sys/fs/fuse/connections/${conn}/abort`, '1');
    } catch { /* already gone */ }
    await new Promise<void>((resolve) => {
      const c = spawn('umount', ['-l', mp], { stdio: 'ignore' });
      c.on('exit', () => resolve());
      c.on('error', () => resolve());
    });
  }
  if (fuseConnAt(mp) !== undefined) throw new Error(`cannot clear the dead mount at ${mp}`);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => { t = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms); }),
  ]);
}

function waitExit(c: ChildProcess, ms: number): Promise<{ code: number | null; signal: string | null; timedOut: boolean }> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve({ code: c.exitCode, signal: c.signalCode, timedOut: false });
  return new Promise((resolve) => {
    let timedOut = false;
    const t = setTimeout(() => { timedOut = true; c.kill('SIGKILL'); }, ms);
    c.on('exit', (code, signal) => { clearTimeout(t); resolve({ code, signal, timedOut }); });
  });
}

const DAEMON_ERROR = /internal error|lock checker|Uncaught|TypeError|RangeError|ReferenceError|SQLITE_|store error|assert/i;
const EXPECTED_AFTER_KILL = new Set(['ENOTCONN', 'ECONNABORTED']);

// ---------------------------------------------------------------------------------------

export async function runCrash(o: CrashOptions): Promise<CrashResult> {
  const store = path.resolve(o.store);
  const mp = path.resolve(o.mountpoint);
  const K = o.files ?? 4;
  const maxFileSize = o.maxFileSize ?? 1 << 20;
  const killMin = o.killDelayMs?.min ?? 50;
  const killMax = o.killDelayMs?.max ?? 1500;
  const mountArgs = o.mountArgs ?? [];
  const rng = new Rng(o.seed);
  const t0 = Date.now();
  const logPath = `${store}.crash.log`;
  const daemonLog = mountArgs.includes('--log') ? path.resolve(mountArgs[mountArgs.indexOf('--log') + 1]) : `${store}.log`;

  const st = await runCli(['stat', store, '--json'], 60_000);
  if (st.code !== 0) throw new Error(`pagefs stat ${store} failed: ${st.stderr.trim()}`);
  const info = JSON.parse(st.stdout);
  if (info.daemonPid !== null) throw new Error(`${store} is mounted (daemon pid ${info.daemonPid})`);
  const bs: number = info.blockSize;
  const nblocks = Math.max(1, Math.floor(maxFileSize / bs));

  const result: CrashResult = {
    seed: o.seed, blockSize: bs, rounds: 0, ops: 0, opCounts: {}, fsyncs: 0, dirFsyncs: 0, killDelays: [], checkedBlocks: 0, olderBlocks: 0, olderNames: 0, tailProbes: 0, fsckNotes: 0,
    violations: [], fsckProblems: [], daemonErrors: [], errors: [], notes: [], elapsedMs: 0, phaseMs: {},
  };

  const timed = async <T>(what: string, p: Promise<T>): Promise<T> => {
    const t = Date.now();
    try {
      return await p;
    } finally {
      result.phaseMs[what] = (result.phaseMs[what] ?? 0) + Date.now() - t;
      o.signal?.throwIfAborted();
    }
  };
  const aborted = new Promise<void>((r) => o.signal?.addEventListener('abort', () => r(), { once: true }));

  let daemon: { proc: ChildProcess; exit: Promise<string> } | null = null;
  let worker: ChildProcess | null = null;
  let logOffset = fs.existsSync(daemonLog) ? fs.statSync(daemonLog).size : 0;

  const scanDaemonLog = () => {
    try {
      const text = fs.readFileSync(daemonLog).subarray(logOffset).toString('utf8');
      logOffset += Buffer.byteLength(text);
      for (const line of text.split('\n')) if (DAEMON_ERROR.test(line)) result.daemonErrors.push(line.trim());
    } catch { /* no log */ }
  };

  /** Starts the daemon as our child (pagefs mount --foreground), so that its pid is known and its death reaped at once. */
  const mountOnce = async (): Promise<void> => {
    const logFd = fs.openSync(daemonLog, 'a');
    const d = spawn(process.execPath, [PAGEFS_BIN, 'mount', store, mp, '--foreground', '--ready-fd', '3', ...mountArgs], { stdio: ['ignore', logFd, logFd, 'pipe'] });
    fs.closeSync(logFd);
    const exit = new Promise<string>((resolve) => d.on('exit', (code, sig) => resolve(`${sig ?? code}`)));
    const answer = await Promise.race([
      new Promise<string>((resolve) => {
        let buf = '';
        d.stdio[3]!.on('data', (b) => {
          buf += b.toString();
          if (buf.includes('\n')) resolve(buf.split('\n')[0]);
        });
      }),
      exit.then((c) => `the daemon exited (${c}) before the mount answered`),
      deadline(60_000).then(() => 'no answer in 60 s'),
    ]);
    if (answer !== 'ready') {
      if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
      await clearMount(mp);
      throw new Error(`pagefs mount ${store} ${mp} failed: ${answer}; see ${daemonLog}`);
    }
    (d.stdio[3] as NodeJS.ReadableStream & { destroy(): void }).destroy();
    daemon = { proc: d, exit };
  };

  /** Mounts, trying again twice: a mount that fails for a passing reason (another process rebuilding the addon) need not end a campaign. */
  const mount = async (): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await mountOnce();
      } catch (e) {
        if (attempt === 3) throw e;
        result.notes.push(`mount attempt ${attempt} failed, trying again: ${(e as Error).message}`);
        await sleep(3000);
      }
    }
  };

  /** SIGKILLs the daemon and waits for its death. */
  const killDaemon = async (): Promise<void> => {
    if (!daemon) return;
    const { proc, exit } = daemon;
    daemon = null;
    proc.kill('SIGKILL');
    const how = await Promise.race([exit, deadline(30_000).then(() => 'timeout')]);
    if (how === 'timeout') throw new Error(`daemon pid ${proc.pid} still alive 30 s after SIGKILL`);
  };

  const umount = async (round: number): Promise<void> => {
    let r = await runCli(['umount', mp], 180_000);
    // Busy: some process outside the run (a scan of /tmp?) has something open there; it passes.
    for (let attempt = 1; r.code !== 0 && /busy/.test(r.stderr) && attempt <= 5; attempt++) {
      result.notes.push(`round ${round}: pagefs umount: ${r.stderr.trim()}; trying again`);
      await sleep(1000);
      r = await runCli(['umount', mp], 180_000);
    }
    if (r.code !== 0) {
      result.errors.push(`round ${round}: pagefs umount failed (${r.code}): ${r.stderr.trim()}`);
      await killDaemon();
      await clearMount(mp);
      return;
    }
    const { exit } = daemon!;
    daemon = null;
    const how = await Promise.race([exit, deadline(60_000).then(() => 'timeout')]);
    if (how !== '0') result.errors.push(`round ${round}: the daemon exited with ${how} after pagefs umount`);
  };

  const fsck = async (round: number, phase: FsckProblem['phase']): Promise<void> => {
    const r = await runCli(['fsck', store], 300_000);
    const out = (r.stdout + r.stderr).trim();
    result.fsckNotes += out.split('\n').filter((l) => l.startsWith('note:')).length;
    if (r.code !== 0 || /problem/.test(out) || !/: clean \(/.test(r.stdout)) result.fsckProblems.push({ round, phase, code: r.code, output: out });
  };

  const dirsync = async () => {
    const h = await fs.promises.open(mp, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  };

  /** Reads every checker file on the mount; removes leftover temp files (legal after a crash). */
  const readAll = async (): Promise<{ data: (Buffer | null)[]; strays: string[] }> => {
    const names = await fs.promises.readdir(mp);
    const data: (Buffer | null)[] = [];
    for (let f = 0; f < K; f++) {
      try {
        data.push(await fs.promises.readFile(path.join(mp, fileNameOf(f))));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        data.push(null);
      }
    }
    const known = new Set(Array.from({ length: K }, (_, f) => fileNameOf(f)));
    const tmps = new Set(Array.from({ length: K }, (_, f) => tmpNameOf(f)));
    const strays = names.filter((n) => n.startsWith(FILE_PREFIX) && !known.has(n) && !tmps.has(n));
    const leftover = names.filter((n) => tmps.has(n));
    for (const n of leftover) await fs.promises.rm(path.join(mp, n));
    if (leftover.length) await dirsync();
    return { data, strays };
  };

  const model = new CrashModel(K, nblocks, bs);
  // Generations are unique over the run; each round starts past the last one logged.
  let nextGen = 1;

  const check = async (round: number, workerSeed: number, phase: CrashViolation['phase'], names: NameState[], keepLog?: string): Promise<void> => {
    const { data, strays } = await withTimeout(readAll(), 120_000, 'reading the files back');
    const before = result.violations.length;
    const r = model.check(names, data, phase === 'after-crash' ? `read after the crash of round ${round}` : `read after the remount of round ${round}`);
    result.checkedBlocks += r.checkedBlocks;
    result.olderBlocks += r.olderBlocks;
    result.olderNames += r.olderNames;
    for (const { f, mismatches } of r.bad) {
      for (const m of mismatches.slice(0, 8)) result.violations.push({ round, seed: o.seed, workerSeed, phase, file: fileNameOf(f), ...m, log: keepLog });
      if (mismatches.length > 8) {
        result.violations.push({
          round, seed: o.seed, workerSeed, phase, file: fileNameOf(f), kind: 'block', expected: '(as above)',
          actual: `${mismatches.length - 8} more mismatches in this file`, history: [], log: keepLog,
        });
      }
    }
    for (const n of strays) {
      result.violations.push({ round, seed: o.seed, workerSeed, phase, file: n, kind: 'unexpected-name', expected: 'no such name', actual: 'a name the workload never made', history: [], log: keepLog });
    }
    if (phase === 'after-crash') await withTimeout(probeTails(round, workerSeed, data, names, keepLog), 120_000, 'probing the tails');
    if (result.violations.length > before && keepLog) fs.copyFileSync(logPath, keepLog);
  };

  /**
   * A file whose size after the crash ends inside a block must read zeros past that size
   * once it grows (ftruncate: "the extended area appears as if it were zero-filled"),
   * whatever the crash left in the store beyond the size. Each such file is grown to the
   * end of the block, read there, and cut back to its size: its content stays the same.
   */
  const probeTails = async (round: number, workerSeed: number, data: (Buffer | null)[], names: NameState[], keepLog?: string): Promise<void> => {
    for (let f = 0; f < K; f++) {
      const d = data[f];
      if (!d || d.length % bs === 0) continue;
      const size = d.length;
      const end = Math.ceil(size / bs) * bs;
      const h = await fs.promises.open(path.join(mp, fileNameOf(f)), 'r+');
      try {
        await h.truncate(end);
        const block = Buffer.alloc(bs);
        const { bytesRead } = await h.read(block, 0, bs, end - bs);
        await h.truncate(size);
        result.tailProbes++;
        const tail = block.subarray(size - (end - bs), bytesRead);
        const nonzero = tail.reduce((n, b) => n + (b !== 0 ? 1 : 0), 0);
        if (nonzero === 0 && bytesRead === bs) continue;
        const cur = names[f].alts[names[f].alts.length - 1];
        result.violations.push({
          round, seed: o.seed, workerSeed, phase: 'after-crash', file: fileNameOf(f), kind: 'stale-tail', offset: size, block: end / bs - 1, size,
          expected: `zeros from the end of the file (${size}) to the end of its block (${end}) once ftruncate grows it there`,
          actual: `${nonzero} of those ${end - size} bytes not zero (${bytesRead} bytes read); the block reads as ${describeBytes(block.subarray(0, bytesRead), bs)}`,
          actualHex: tail.subarray(0, STAMP_LEN).toString('hex'), history: cur ? historyOf(cur, end / bs - 1, end / bs) : [], log: keepLog,
        });
      } finally {
        await h.close();
      }
    }
  };

  let round = 0;
  try {
    for (round = 1; round <= o.rounds; round++) {
      o.signal?.throwIfAborted();
      const workerSeed = rng.int(2 ** 31);
      const delay = killMin + rng.int(killMax - killMin + 1);
      await timed('mount', mount());
      if (round === 1) {
        // Start from nothing: remove what an earlier run left, durably.
        const names = (await fs.promises.readdir(mp)).filter((n) => n.startsWith(FILE_PREFIX));
        for (const n of names) await fs.promises.rm(path.join(mp, n));
        await dirsync();
      } else {
        await timed('check', check(round, workerSeed, 'after-remount', model.unchanged()));
      }

      fs.writeFileSync(logPath, '');
      const config: CrashWorkerConfig = {
        dir: mp, log: logPath, seed: workerSeed, round, files: K, maxFileSize: nblocks * bs, blockSize: bs, genStart: nextGen, maxMs: 60_000,
      };
      let killed = false;
      let ready!: () => void;
      const readyP = new Promise<void>((r) => { ready = r; });
      const w = spawn(process.execPath, [distFile('stress/crash-worker.js'), JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
      worker = w;
      let werr = '';
      let wbuf = '';
      w.stderr!.on('data', (d) => { werr += d.toString(); });
      w.stdout!.on('data', (d) => {
        wbuf += d.toString();
        let nl: number;
        while ((nl = wbuf.indexOf('\n')) >= 0) {
          const m = JSON.parse(wbuf.slice(0, nl));
          wbuf = wbuf.slice(nl + 1);
          if (m.type === 'ready') ready();
          else if (m.type === 'error' && killed && m.code === 'EIO') {
            // Seen once in a few hundred kills, with nothing in the daemon's log (where any EIO the
            // daemon sends is logged first, and daemonErrors would show it): so it came from the
            // kernel, most likely for a request the abort cut off. Noted, not an error.
            result.notes.push(`round ${round}: the worker's ${m.message.split(', ').pop()} failed with EIO after the kill`);
          } else if (m.type === 'error' && (!killed || !EXPECTED_AFTER_KILL.has(m.code))) {
            result.errors.push(`round ${round}: worker ${killed ? 'after' : 'before'} the kill, after op ${m.after}: ${m.code ?? ''} ${m.message}`);
          }
        }
      });
      const exited = new Promise<void>((r) => w.on('exit', () => { ready(); r(); }));
      await timed('worker start', Promise.race([readyP, deadline(30_000)]));
      if (w.exitCode === null && w.signalCode === null) await timed('workload', Promise.race([sleep(delay), exited, aborted]));
      if (w.exitCode !== null || w.signalCode !== null) result.errors.push(`round ${round}: the worker exited before the kill (${w.exitCode ?? w.signalCode}): ${werr.trim().split('\n').slice(-3).join(' | ')}`);

      // The crash.
      killed = true;
      await timed('reap', killDaemon());
      result.killDelays.push(delay);
      const wx = await timed('worker exit', waitExit(w, 15_000));
      worker = null;
      if (wx.timedOut) result.errors.push(`round ${round}: the worker did not stop within 15 s of the daemon's death`);
      await timed('clear', clearMount(mp));
      scanDaemonLog();
      await timed('fsck', fsck(round, 'after-crash'));

      // The check.
      const text = fs.readFileSync(logPath, 'utf8');
      const lines: CrashLogLine[] = [];
      for (const l of text.split('\n')) {
        if (!l) continue;
        try {
          lines.push(JSON.parse(l));
        } catch { /* a torn last line */ }
      }
      const { names, stats } = model.replay(lines);
      nextGen = Math.max(nextGen, stats.nextGen);
      result.ops += stats.ops;
      result.fsyncs += stats.fsyncs;
      result.dirFsyncs += stats.dirFsyncs;
      for (const [k, v] of Object.entries(stats.opCounts)) result.opCounts[k] = (result.opCounts[k] ?? 0) + v;
      await timed('mount', mount());
      await timed('check', check(round, workerSeed, 'after-crash', names, `${store}.crash-r${round}.log`));
      await timed('umount', umount(round));
      scanDaemonLog();
      await timed('fsck', fsck(round, 'after-umount'));
      result.rounds = round;
      result.elapsedMs = Date.now() - t0;
      await o.afterRound?.({ round, store, mountpoint: mp, blockSize: bs, files: Array.from({ length: K }, (_, f) => fileNameOf(f)), result });
      o.onProgress?.({ round, rounds: o.rounds, ops: result.ops, fsyncs: result.fsyncs, violations: result.violations.length, elapsedMs: result.elapsedMs });
      if (o.stopOnFailure && (result.violations.length || result.fsckProblems.length || result.errors.length || result.daemonErrors.length)) break;
    }
  } catch (e) {
    // The result so far is worth more than the exception: report it, with the reason the run stopped.
    result.errors.push(`round ${round}: stopped: ${(e as Error).message}`);
  } finally {
    if (worker) (worker as ChildProcess).kill('SIGKILL');
    const left = daemon as { proc: ChildProcess; exit: Promise<string> } | null;
    if (left && fuseConnAt(mp) !== undefined) {
      const r = await runCli(['umount', mp], 60_000);
      if (r.code === 0) await Promise.race([left.exit, deadline(60_000)]);
    }
    if (daemon) await killDaemon().catch(() => undefined);
    await clearMount(mp);
  }
  result.elapsedMs = Date.now() - t0;
  return result;
}

