/**
 * Helpers for scripts/bench.mjs: running commands (with time limits, so a hung
 * filesystem cannot hang the benchmark), the four mounts, caches and cleanup.
 *
 * Every mount made here is recorded and undone by cleanup(), which escalates from a
 * plain unmount to aborting the FUSE connection and detaching the mount, so that no
 * mount is left behind whatever happens. Only processes this benchmark started are
 * ever signalled, by their pid.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PAGEFS = path.join(ROOT, 'bin', 'pagefs.js');
export const WORKER = path.join(ROOT, 'scripts', 'bench', 'worker.mjs');
export const FIO_DIR = path.join(ROOT, 'scripts', 'fio');

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export const log = (msg) => process.stderr.write(`bench: ${msg}\n`);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const now = () => Number(process.hrtime.bigint()) / 1e9;

/** Children running right now, so that a signal can end them (by pid) before cleanup. */
const running = new Set();

/**
 * Runs a command to completion. Resolves { code, signal, stdout, stderr, seconds };
 * never rejects for a non-zero exit (the caller decides), only if it cannot start.
 * timeoutMs: SIGTERM then, SIGKILL 5 s later.
 */
export function run(cmd, args, { env, timeoutMs = 600_000, input } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const child = spawn(cmd, args, { env: env ? { ...process.env, ...env } : process.env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    running.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    if (input !== undefined) child.stdin.end(input);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      setTimeout(() => child.exitCode === null && child.kill('SIGKILL'), 5000).unref();
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      running.delete(child);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, signal, stdout, stderr, timedOut, seconds: now() - t0 });
    });
  });
}

/** run() that throws with the command's stderr unless it exited 0. */
export async function must(cmd, args, opts) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const why = r.timedOut ? `timed out after ${r.seconds.toFixed(0)} s` : `exit ${r.code ?? r.signal}`;
    throw new Error(`${cmd} ${args.join(' ')}: ${why}: ${(r.stderr || r.stdout).trim().slice(-2000)}`);
  }
  return r;
}

export function killRunning(sig = 'SIGTERM') {
  for (const c of running) if (c.exitCode === null) c.kill(sig);
}

/** Waits (at most ms) until the children signalled by killRunning() have exited. */
export async function waitRunning(ms = 10_000) {
  const t0 = Date.now();
  while (running.size && Date.now() - t0 < ms) await sleep(50);
}

export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// --- mounts ---

function unescapeMi(s) {
  return s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}

/** The mount at exactly this path (the topmost one), from /proc/self/mountinfo. */
export function mountAt(mp) {
  let found = null;
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const [pre, post] = line.split(' - ');
    const f = pre.split(' ');
    const g = post.split(' ');
    if (unescapeMi(f[4]) === mp) found = { mountpoint: mp, fstype: g[0], source: unescapeMi(g[1]), minor: Number(f[2].split(':')[1]) };
  }
  return found;
}

/** Every mount below dir, in mount order. */
export function mountsUnder(dir) {
  const out = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const [pre, post] = line.split(' - ');
    const mp = unescapeMi(pre.split(' ')[4]);
    if (mp.startsWith(dir + '/')) out.push({ mountpoint: mp, fstype: post.split(' ')[0] });
  }
  return out;
}

export async function waitMounted(mp, fstypePrefix, child, timeoutMs = 20_000) {
  const t0 = Date.now();
  for (;;) {
    const m = mountAt(mp);
    if (m && m.fstype.startsWith(fstypePrefix)) return m;
    if (child && child.exitCode !== null) throw new Error(`${child.spawnargs.join(' ')} exited (${child.exitCode}) before ${mp} was mounted`);
    if (Date.now() - t0 > timeoutMs) throw new Error(`${mp} was not mounted within ${timeoutMs / 1000} s`);
    await sleep(20);
  }
}

export function dropCaches() {
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
}

/**
 * VmRSS / VmHWM of a process, in bytes (null once it is gone), and VmRSS split as the
 * kernel counts it: anonymous, file-backed (e.g. a mapped database), shared memory
 * (mapped tmpfs files).
 */
export function procMem(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number((new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s) ?? [])[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM'), anon: kb('RssAnon'), file: kb('RssFile'), shmem: kb('RssShmem') };
  } catch {
    return null;
  }
}

/** Clock ticks per second of /proc's CPU times (USER_HZ). */
const USER_HZ = 100;

/**
 * /proc/PID/stat of a process: its name, minor and major faults and CPU ticks so far
 * (user + system); null once it is gone. The name may hold spaces and parentheses, so the
 * fields are read after its last ')'.
 */
function procStat(pid) {
  let s;
  try {
    s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // f[0] is field 3, the state
  return { comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), minflt: Number(f[7]), majflt: Number(f[9]), ticks: Number(f[11]) + Number(f[12]) };
}

/**
 * A process's page faults and CPU seconds so far (null once it is gone): a step's
 * difference tells whether the daemon faulted in fresh memory or spun.
 */
export function procCounters(pid) {
  const p = procStat(pid);
  return p && { minflt: p.minflt, majflt: p.majflt, cpuSec: p.ticks / USER_HZ };
}

/**
 * CPU ticks so far of every process on the machine, by pid, with its name; and the
 * machine's CPU time by kind (/proc/stat). Two of them a step apart say who else ran
 * during the step, and whether the CPUs were idle or stolen by the host.
 */
export function machineCpu() {
  const procs = new Map();
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const p = procStat(pid);
    if (p) procs.set(Number(pid), { comm: p.comm, ticks: p.ticks });
  }
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line;
  return { procs, kinds: { user: user + nice, system: system + irq + softirq, idle: idle + iowait, steal } };
}

/**
 * What ran between two machineCpu() samples: the busiest processes and the CPU split, in
 * seconds. A process that ended before the second sample (fio's job) is not among them;
 * the split counts it.
 */
export function cpuBetween(a, b, top = 4) {
  const busy = [];
  for (const [pid, p] of b.procs) {
    // By pid alone: a kernel worker's name changes with the work it runs.
    const d = p.ticks - (a.procs.get(pid)?.ticks ?? 0);
    if (d > 0) busy.push({ pid, comm: p.comm, cpuSec: d / USER_HZ });
  }
  busy.sort((x, y) => y.cpuSec - x.cpuSec);
  const kinds = Object.fromEntries(Object.keys(b.kinds).map((k) => [k, (b.kinds[k] - a.kinds[k]) / USER_HZ]));
  return { top: busy.slice(0, top), machine: kinds };
}

/**
 * The mounts of one benchmark run, all under one fresh directory B:
 *   B/back        tmpfs holding pagefs's store, the ext4 image and bindfs's source dir
 *   B/mnt/NAME    the four mountpoints (tmpfs is its own tmpfs mount there)
 * Every mount is recorded in `this.mounted` (innermost last) for cleanup.
 */
export class Bench {
  constructor({ backSize, fsSize, cacheSize, cmdLog }) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pagefs-bench-'));
    this.back = path.join(this.dir, 'back');
    this.backSize = backSize;
    this.fsSize = fsSize;
    this.cacheSize = cacheSize;
    this.mounted = []; // { mp, kind, child?, pid? }
    this.commands = cmdLog ?? []; // the exact commands, for the report
    this.systems = {};
    this.closed = false; // set by cleanup(): no new mounts after that
  }

  guard() {
    if (this.closed) throw new Error('stopping: no new mounts');
  }

  /** A path with the run's directory replaced by $B, for the report. */
  show(s) {
    return s.split(this.dir).join('$B');
  }

  record(cmd, args) {
    const line = this.show([cmd, ...args].join(' '));
    if (!this.commands.includes(line)) this.commands.push(line);
  }

  async sh(cmd, args, opts) {
    this.record(cmd, args);
    return must(cmd, args, opts);
  }

  mp(name) {
    return path.join(this.dir, 'mnt', name);
  }

  async setupBacking() {
    this.guard();
    fs.mkdirSync(this.back);
    await this.sh('mount', ['-t', 'tmpfs', '-o', `size=${this.backSize}`, 'pagefs-bench-back', this.back]);
    this.mounted.push({ mp: this.back, kind: 'tmpfs' });
  }

  // pagefs: mkfs once, then mount / remount with the same arguments.
  async setupPagefs({ capacity, name = 'pagefs', store = 'store.db' } = {}) {
    const storePath = path.join(this.back, store);
    const mp = this.mp(name);
    fs.mkdirSync(mp, { recursive: true });
    const mkfs = ['mkfs', storePath, '--capacity', capacity ?? this.fsSize];
    this.record('node', ['bin/pagefs.js', ...mkfs]);
    await must(process.execPath, [PAGEFS, ...mkfs]);
    const sysd = { name, mp, store: storePath, kind: 'pagefs' };
    this.systems[name] = sysd;
    await this.mountPagefs(sysd);
    return sysd;
  }

  async mountPagefs(sysd, cacheSize = this.cacheSize) {
    this.guard();
    sysd.cacheSize = cacheSize;
    const args = [PAGEFS, 'mount', sysd.store, sysd.mp, '--cache-size', cacheSize];
    this.record('node', args.map((a) => (a === PAGEFS ? 'bin/pagefs.js' : a)));
    const r = await run(process.execPath, args, { timeoutMs: 60_000 });
    const entry = { mp: sysd.mp, kind: 'pagefs', store: sysd.store };
    if (mountAt(sysd.mp)) this.mounted.push(entry);
    if (r.code !== 0) throw new Error(`pagefs mount failed: ${r.stderr.trim()}\n${tail(sysd.store + '.log')}`);
    sysd.pid = await pagefsPid(sysd.mp);
    entry.pid = sysd.pid;
    return r.seconds;
  }

  async umountPagefs(sysd) {
    let r;
    // "target is busy": a process that just closed a file there may not be quite gone
    // (or something else on the machine looks in); try again for a while, and say who.
    for (let i = 0; ; i++) {
      r = await run(process.execPath, [PAGEFS, 'umount', sysd.mp], { timeoutMs: 180_000 });
      if (r.code === 0 || !/busy/.test(r.stderr) || i >= 10) break;
      if (i === 0) {
        const f = await run('fuser', ['-vm', sysd.mp], { timeoutMs: 10_000 }).catch(() => null);
        log(`${sysd.mp} is busy; retrying. fuser -vm: ${(f?.stderr ?? '').trim().replace(/\s+/g, ' ').slice(0, 400)}`);
      }
      await sleep(1000);
    }
    if (r.code !== 0) throw new Error(`pagefs umount ${sysd.mp} failed: ${r.stderr.trim()}\n${tail(sysd.store + '.log')}`);
    this.mounted = this.mounted.filter((m) => m.mp !== sysd.mp);
    return r.seconds;
  }

  /** Cold start for pagefs: unmount (which writes everything back) and mount again. */
  async remountPagefs(sysd) {
    await this.umountPagefs(sysd);
    await this.mountPagefs(sysd, sysd.cacheSize);
  }

  async setupFuse2fs() {
    const img = path.join(this.back, 'ext4.img');
    const mp = this.mp('fuse2fs');
    fs.mkdirSync(mp, { recursive: true });
    await this.sh('truncate', ['-s', this.fsSize, img]);
    await this.sh('mkfs.ext4', ['-F', '-q', img]);
    await this.daemon('fuse2fs', 'fuse2fs', [img, mp, '-f'], mp, 'fuse');
    this.systems.fuse2fs = { name: 'fuse2fs', mp, kind: 'fuse' };
  }

  async setupBindfs() {
    const src = path.join(this.back, 'bindfs-src');
    const mp = this.mp('bindfs');
    fs.mkdirSync(src);
    fs.mkdirSync(mp, { recursive: true });
    await this.daemon('bindfs', 'bindfs', ['-f', src, mp], mp, 'fuse');
    this.systems.bindfs = { name: 'bindfs', mp, kind: 'fuse' };
  }

  /** A FUSE daemon kept in the foreground (-f) as our own child, so its pid is known. */
  async daemon(name, cmd, args, mp, fstype) {
    this.guard();
    this.record(cmd, args);
    const logFd = fs.openSync(path.join(this.back, `${name}.log`), 'a');
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', logFd, logFd] });
    fs.closeSync(logFd);
    child.on('error', () => {});
    const entry = { mp, kind: 'fuse', child, pid: child.pid };
    this.mounted.push(entry);
    await waitMounted(mp, fstype, child);
  }

  async setupTmpfs() {
    this.guard();
    const mp = this.mp('tmpfs');
    fs.mkdirSync(mp, { recursive: true });
    await this.sh('mount', ['-t', 'tmpfs', '-o', `size=${this.fsSize}`, 'pagefs-bench-tmpfs', mp]);
    this.mounted.push({ mp, kind: 'tmpfs' });
    this.systems.tmpfs = { name: 'tmpfs', mp, kind: 'tmpfs' };
  }

  /** Undoes every mount, innermost first, escalating; then removes the directory. */
  async cleanup() {
    this.closed = true;
    // A mount that was under way when cleanup started is recorded later: go round again.
    for (let round = 0; round < 3 && this.mounted.length; round++) {
      await sleep(round ? 2000 : 0);
      const list = [...this.mounted].reverse();
      this.mounted = [];
      for (const m of list) {
        try {
          await unmountHard(m);
        } catch (e) {
          log(`cleanup: ${m.mp}: ${e.message}`);
        }
      }
    }
    // Last sweep: anything still mounted under our directory (e.g. a daemon that came up
    // while its mount command was being stopped), deepest first.
    for (const m of mountsUnder(this.dir).reverse()) {
      const kind = m.fstype === 'fuse.pagefs' ? 'pagefs' : m.fstype.startsWith('fuse') ? 'fuse' : 'other';
      log(`cleanup: ${m.mountpoint} (${m.fstype}) is still mounted; unmounting`);
      try {
        await unmountHard({ mp: m.mountpoint, kind });
      } catch (e) {
        log(`cleanup: ${m.mountpoint}: ${e.message}`);
      }
    }
    if (!fs.existsSync(this.dir)) return;
    // Remove only if nothing is mounted below it any more.
    if (mountsUnder(this.dir).length) log(`cleanup: something is still mounted under ${this.dir}; leaving the directory`);
    else fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function tail(file, n = 20) {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

export async function pagefsPid(mp) {
  const r = await must(process.execPath, [PAGEFS, 'stat', mp, '--json'], { timeoutMs: 30_000 });
  return JSON.parse(r.stdout).daemonPid;
}

/** The pagefs daemon's page-cache lookups so far (every read that reached the daemon counts). */
export async function pagefsLookups(mp) {
  const r = await must(process.execPath, [PAGEFS, 'stat', mp, '--json'], { timeoutMs: 30_000 });
  const c = JSON.parse(r.stdout).live?.cache;
  return c ? c.hits + c.misses : null;
}

async function waitGone(pid, ms) {
  const t0 = Date.now();
  while (pid && alive(pid) && Date.now() - t0 < ms) await sleep(50);
  return !(pid && alive(pid));
}

function abortConnection(mp) {
  const m = mountAt(mp);
  if (!m || !m.fstype.startsWith('fuse')) return;
  try {
    fs.writeFileSync(`/sys/fs/fuse/connections/${m.minor}/abort`, '1');
    log(`cleanup: aborted FUSE connection ${m.minor} of ${mp}`);
  } catch (e) {
    log(`cleanup: could not abort FUSE connection ${m.minor}: ${e.message}`);
  }
}

/** Unmount one recorded mount: polite first, then abort + lazy; then make sure our daemon ends. */
async function unmountHard(m) {
  if (mountAt(m.mp)) {
    let r;
    if (m.kind === 'pagefs') r = await run(process.execPath, [PAGEFS, 'umount', m.mp], { timeoutMs: 150_000 });
    else r = await run('umount', [m.mp], { timeoutMs: 60_000 });
    if (r.code !== 0 && mountAt(m.mp)) {
      log(`cleanup: unmounting ${m.mp} failed (${(r.stderr || '').trim() || (r.timedOut ? 'timed out' : r.code)}); aborting`);
      abortConnection(m.mp);
      await run('umount', [m.mp], { timeoutMs: 30_000 });
      if (mountAt(m.mp)) await run('umount', ['-l', m.mp], { timeoutMs: 30_000 });
    }
  }
  // The daemon we started must end too: it normally exits by itself after the unmount.
  const pid = m.pid;
  if (pid && !(await waitGone(pid, 60_000))) {
    log(`cleanup: daemon pid ${pid} of ${m.mp} still running after unmount; SIGTERM`);
    process.kill(pid, 'SIGTERM');
    if (!(await waitGone(pid, 10_000))) process.kill(pid, 'SIGKILL');
  }
  if (m.child && m.child.exitCode === null) await waitGone(m.child.pid, 5000);
}

// --- machine facts ---

function out(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return ((r.stdout || '') + (r.stderr || '')).trim();
}

function debVersion(pkg) {
  const v = out('dpkg-query', ['-W', '-f=${Version}', pkg]);
  return /no packages found|not installed/i.test(v) || !v ? null : v;
}

export function machineFacts() {
  const cpus = os.cpus();
  const git = (a) => out('git', ['-C', ROOT, ...a]);
  const dirty = git(['status', '--porcelain', '--untracked-files=no']) !== '';
  return {
    cpu: cpus[0]?.model?.replace(/\s+/g, ' ').trim() ?? '?',
    cores: cpus.length,
    memoryGiB: +(os.totalmem() / GiB).toFixed(1),
    kernel: `${os.type()} ${os.release()}`,
    fio: out('fio', ['--version']),
    libfuse3: debVersion('libfuse3-3') ?? out('fusermount3', ['-V']),
    libfuse2: debVersion('libfuse2') ?? debVersion('libfuse2t64'),
    fuse2fs: out('fuse2fs', ['-V']).split('\n').find((l) => /^fuse2fs/.test(l)) ?? '?',
    bindfs: out('bindfs', ['--version']).split('\n')[0],
    node: process.version,
    pagefs: `${git(['rev-parse', '--short', 'HEAD'])}${dirty ? ' with uncommitted changes' : ''}`,
  };
}

/** Installs fio, fuse2fs, bindfs (and mkfs.ext4) with apt-get when missing. */
export async function ensureTools() {
  const need = [];
  const has = (c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0;
  if (!has('fio')) need.push('fio');
  if (!has('fuse2fs')) need.push('fuse2fs');
  if (!has('bindfs')) need.push('bindfs');
  if (!has('mkfs.ext4')) need.push('e2fsprogs');
  if (!need.length) return;
  log(`installing ${need.join(' ')} with apt-get`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  await must('apt-get', ['update', '-qq'], { env, timeoutMs: 600_000 });
  await must('apt-get', ['install', '-y', '-qq', ...need], { env, timeoutMs: 900_000 });
}
