/**
 * copy_file_range through the real mount: a reflink-like remap (whole aligned blocks
 * shared, refcount + 1; unaligned edges copied; copy on write at writeback; punch,
 * zero, truncate, collapse drop one reference).
 *
 * - space: cp and `pagefs clone` of a 256 MiB file take no data blocks (statfs and
 *   `pagefs stat --json`), the blocks show up as shared, and deleting drops references;
 * - copy-on-write isolation, both ways, with fsck and a remount after every step;
 * - byte ranges (unaligned, same file, EOF) checked against a model and against the same
 *   calls on a loop-mounted ext4 image, errnos included;
 * - an mmap of the destination made before the copy sees the new bytes;
 * - 10,000 rounds of copies in both directions, punches and writes from 4 processes.
 *
 * The test process itself touches the mount only with async fs calls; every syscall
 * Node lacks (copy_file_range, fallocate, mmap) runs in a child process with a timeout,
 * through the compiled sys module (dist/sys/index.js).
 */
import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { mountFresh, run, pagefs, expectCleanLog, ROOT, type Mounted, type RunResult } from '../helpers/mount.js';
import { pagefsStat } from './lib.js';

const SYS_JS = path.join(ROOT, 'dist', 'sys', 'index.js');
const FALLOC_KEEP_SIZE = 0x01;
const FALLOC_PUNCH_HOLE = 0x02;
const FALLOC_ZERO_RANGE = 0x10;
const MiB = 1 << 20;

// ---------------------------------------------------------------------------------------
// Helpers

function ok(r: RunResult, what: string): string {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}\nstdout: ${r.stdout.slice(0, 4000)}\nstderr: ${r.stderr.slice(0, 4000)}`);
  return r.stdout;
}

/** Shell-quotes one word. */
function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

async function shOk(script: string, timeoutMs = 60_000): Promise<string> {
  return ok(await run('bash', ['-c', script], { timeoutMs }), script.slice(0, 300));
}

/** Deterministic pseudo-random bytes (xorshift32), so a failure repeats. */
function prand(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** 'equal', or where and how two buffers differ (a readable failure instead of a 1 MiB diff). */
function diff(got: Buffer, want: Buffer): string {
  if (got.equals(want)) return 'equal';
  const n = Math.min(got.length, want.length);
  let i = 0;
  while (i < n && got[i] === want[i]) i++;
  let j = i;
  while (j < n && got[j] !== want[j]) j++;
  return `sizes ${got.length} (got) vs ${want.length} (want); first difference at ${i} (block ${Math.floor(i / 4096)} + ${i % 4096}), ` +
    `differing run of ${j - i} bytes; got ${got.subarray(i, i + 16).toString('hex')} want ${want.subarray(i, i + 16).toString('hex')}`;
}

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

interface PStat { usedBlocks: number; sharedBlocks: number; freeBlocks: number; blockSize: number }

async function pstat(m: Mounted): Promise<PStat> {
  return (await pagefsStat(m.mp)) as PStat;
}

async function bfree(p: string): Promise<number> {
  return (await fsp.statfs(p)).bfree;
}

async function fsckClean(m: Mounted): Promise<string> {
  const r = await pagefs(['fsck', m.store], { timeoutMs: 120_000 });
  expect({ code: r.code, out: r.stdout + r.stderr }).toMatchObject({ code: 0 });
  expect(r.stdout).toMatch(/clean/);
  return r.stdout;
}

/** Unmount (daemon must exit 0), the log clean, fsck clean, then mount again. */
async function cycle(m: Mounted): Promise<void> {
  await m.unmount();
  expectCleanLog(m);
  await fsckClean(m);
  await m.remount();
}

async function finish(m: Mounted): Promise<void> {
  await m.unmount();
  expectCleanLog(m);
  await fsckClean(m);
}

/** Polls until check() or ms pass (FORGET of an unlinked inode is asynchronous). */
async function eventually(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const t0 = Date.now();
  for (;;) {
    if (await check()) return true;
    if (Date.now() - t0 > ms) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Per-test daemon log check (same pattern as expectCleanLog). */
function logErrorsSince(log: string, since: number): string[] {
  return log.slice(since).split('\n').filter((l) => /internal error|LOCK CHECKER|Uncaught|TypeError|RangeError/.test(l));
}

function watchLog(get: () => Mounted | undefined): void {
  let mark = 0;
  beforeEach(() => { mark = get()?.log().length ?? 0; });
  afterEach(() => {
    const m = get();
    if (m) expect(logErrorsSince(m.log(), mark), 'daemon log errors during this test').toEqual([]);
  });
}

// ---------------------------------------------------------------------------------------
// Child-process scripts (written to a temp file; they import the compiled sys module).

let scriptDir = '';
let OPS_JS = '';
let MMAP_JS = '';
let WORKER_JS = '';
let EDGE_JS = '';

/**
 * Runs a list of operations, prints one JSON result per operation:
 *   {op:'cfr', in, offIn, out, offOut, len, flags?, loop?}  -> {n} | {err}
 *     (in/out opened O_RDONLY / O_RDWR, a directory O_RDONLY; loop: repeat until len or 0)
 *   {op:'falloc', path, mode, off, len}                   -> {} | {err}
 */
const OPS_SRC = (sysUrl: string) => `
import fs from 'node:fs';
import { sys } from ${JSON.stringify(sysUrl)};
const S = sys();
const open = (p, write) => fs.statSync(p).isDirectory() ? fs.openSync(p, 'r') : fs.openSync(p, write ? 'r+' : 'r');
const out = [];
for (const o of JSON.parse(process.argv[2])) {
  const fds = [];
  try {
    if (o.op === 'cfr') {
      const fi = open(o.in, false); fds.push(fi);
      const fo = open(o.out, true); fds.push(fo);
      let n = 0;
      for (;;) {
        const k = S.copyFileRange(fi, o.offIn + n, fo, o.offOut + n, o.len - n, o.flags ?? 0);
        n += k;
        if (!o.loop || k === 0 || n >= o.len) break;
      }
      out.push({ n });
    } else if (o.op === 'falloc') {
      const fd = open(o.path, true); fds.push(fd);
      S.fallocate(fd, o.mode, o.off, o.len);
      out.push({});
    } else {
      throw new Error('bad op ' + o.op);
    }
  } catch (e) {
    if (!e.code) throw e;
    out.push({ err: e.code });
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
}
process.stdout.write(JSON.stringify(out) + '\\n');
`;

/**
 * mmap test: maps DST (MAP_SHARED, PROT_READ) over [0, mapLen), reads it (faulting the old
 * bytes in), then for each copy calls copy_file_range SRC -> DST and reads the whole
 * mapping again. Prints {before, after: [hex sha256 of the mapping after each copy], n: [...]}.
 */
const MMAP_SRC = (sysUrl: string) => `
import fs from 'node:fs';
import crypto from 'node:crypto';
import { sys, MAP_SHARED, PROT_READ } from ${JSON.stringify(sysUrl)};
const S = sys();
const [src, dst, mapLenS, copiesJson] = process.argv.slice(2);
const mapLen = Number(mapLenS);
const fi = fs.openSync(src, 'r');
const fo = fs.openSync(dst, 'r+');
const map = S.mmap(fo, 0, mapLen, PROT_READ, MAP_SHARED);
const h = (b) => crypto.createHash('sha256').update(b).digest('hex');
const before = map.read(0, mapLen);
const res = { before: before.toString('base64'), after: [], n: [] };
for (const [offIn, offOut, len] of JSON.parse(copiesJson)) {
  res.n.push(S.copyFileRange(fi, offIn, fo, offOut, len, 0));
  res.after.push(map.read(0, mapLen).toString('base64'));
}
map.munmap();
fs.closeSync(fi);
fs.closeSync(fo);
process.stdout.write(JSON.stringify(res) + '\\n');
`;

/**
 * Eviction in the middle of an operation that fills both partial edges of its range under
 * the invalidate_lock held exclusive (a copy destination, a punch): argv = what (copy |
 * punch), dir, trials. Each trial writes P (1 MiB), then copies 64 KiB of S into P at
 * offset 100 (both edges partial, 16 pages apart) or punches the same range, and reads P
 * back with O_DIRECT (the daemon's bytes, not the kernel's cached pages, which the
 * kernel itself fixes up after a punch). Prints {bad: [...]} (one line per wrong trial).
 */
const EDGE_SRC = (sysUrl: string) => `
import fs from 'node:fs';
import { sys, FALLOC } from ${JSON.stringify(sysUrl)};
const S = sys();
const [what, dir, trialsS] = process.argv.slice(2);
const orig = Buffer.alloc(1 << 20);
for (let i = 0; i < orig.length; i++) orig[i] = ((i * 7 + 13) & 0xff) | 1; // no zero byte
const bad = [];
for (let k = 0; k < Number(trialsS); k++) {
  const p = dir + '/P' + k, s = dir + '/S' + k;
  fs.writeFileSync(p, orig);
  fs.writeFileSync(s, Buffer.alloc(1 << 20, 0xee));
  const want = Buffer.from(orig);
  const fd = fs.openSync(p, 'r+');
  if (what === 'punch') {
    S.fallocate(fd, FALLOC.PUNCH_HOLE | FALLOC.KEEP_SIZE, 100, 65536);
    want.fill(0, 100, 100 + 65536);
  } else {
    const fi = fs.openSync(s, 'r');
    const n = S.copyFileRange(fi, 0, fd, 100, 65536, 0);
    fs.closeSync(fi);
    if (n !== 65536) bad.push('trial ' + k + ': copied ' + n);
    want.fill(0xee, 100, 100 + 65536);
  }
  fs.closeSync(fd);
  const dfd = S.openDirect(p, fs.constants.O_RDONLY);
  const got = S.preadDirect(dfd, 1 << 20, 0);
  fs.closeSync(dfd);
  let i = 0;
  while (i < got.length && got[i] === want[i]) i++;
  if (i < got.length || got.length !== want.length) {
    let j = i;
    while (j < got.length && got[j] !== want[j]) j++;
    bad.push('trial ' + k + ': differs at ' + i + ' for ' + (j - i) + ' bytes: got ' + got.subarray(i, i + 8).toString('hex') + ' want ' + want.subarray(i, i + 8).toString('hex'));
  }
}
process.stdout.write(JSON.stringify({ bad }) + '\\n');
`;

/**
 * The concurrency worker. argv[2] is a JSON config:
 *   {mode:'model', seed, rounds, bs, maxSize, a, b, modelA, modelB}
 *     owns files a and b alone: a seeded random sequence of copy a->b, copy b->a (aligned,
 *     same misalignment, different alignment, tiny), punches, writes, a few truncates;
 *     keeps both files in memory and checks them every 100 rounds and at the end; writes
 *     the final model to modelA / modelB.
 *   {mode:'chaos', seed, rounds, bs, maxSize, a, b, extra: [paths]}
 *     shares a and b with another chaos worker copying the other way: copies a->b (and
 *     a few b->a), punches and writes on both, copies from the extra files (owned by the
 *     model workers, only read here) into a or b; no model, but every call must succeed
 *     and every file must stay readable.
 * Prints {rounds, copies, copied, punches, writes, checks} on success; on a mismatch it
 * prints the seed, the round, the recent operations and the first difference, and exits 1.
 */
const WORKER_SRC = (sysUrl: string) => `
import fs from 'node:fs';
import { sys, FALLOC } from ${JSON.stringify(sysUrl)};
const S = sys();
const cfg = JSON.parse(process.argv[2]);
const BS = cfg.bs, MAX = cfg.maxSize;
let st = cfg.seed >>> 0;
const rand = () => { st = (st + 0x6D2B79F5) >>> 0; let t = st; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
const ri = (n) => Math.floor(rand() * n);
const bytes = (n) => { const b = Buffer.allocUnsafe(n); let x = (ri(2 ** 32) | 1) >>> 0; for (let i = 0; i < n; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; b[i] = x & 0xff; } return b; };
const recent = [];
const log = (s) => { recent.push(s); if (recent.length > 12) recent.shift(); };
const fail = (msg) => { process.stdout.write(JSON.stringify({ fail: msg, seed: cfg.seed, recent }) + '\\n'); process.exit(1); };
const stats = { rounds: 0, copies: 0, copied: 0, punches: 0, writes: 0, truncates: 0, checks: 0 };

const files = [cfg.a, cfg.b].map((p) => ({ p, fd: fs.openSync(p, 'r+'), m: null }));
const extra = (cfg.extra ?? []).map((p) => ({ p, fd: fs.openSync(p, 'r') }));
const model = cfg.mode === 'model';
if (model) for (const f of files) {
  f.m = bytes(64 * 1024 + ri(256 * 1024));
  fs.ftruncateSync(f.fd, 0);
  fs.writeSync(f.fd, f.m, 0, f.m.length, 0);
}
const size = (f) => model ? f.m.length : fs.fstatSync(f.fd).size;
const grow = (f, n) => { if (n > f.m.length) { const b = Buffer.alloc(n); f.m.copy(b); f.m = b; } };

function pickCopy(srcSize, dstSize) {
  const kind = ri(4);
  let offIn = ri(Math.ceil((srcSize + 2 * BS) / BS)) * BS;
  let offOut = ri(Math.ceil(Math.min(dstSize + 2 * BS, MAX / 2) / BS)) * BS;
  let len = (1 + ri(48)) * BS;
  if (kind === 1) { const d = 1 + ri(BS - 1); offIn += d; offOut += d; len += ri(BS); }
  else if (kind === 2) { offIn += ri(BS); offOut += ri(BS); len += ri(BS); }
  else if (kind === 3) { offIn += ri(BS); offOut += ri(BS); len = 1 + ri(2 * BS); }
  len = Math.min(len, MAX - offOut);
  return { kind, offIn, offOut, len };
}

function copy(src, dst, srcModel) {
  const { kind, offIn, offOut, len } = pickCopy(size(src), size(dst));
  log('copy ' + src.p + '@' + offIn + ' -> ' + dst.p + '@' + offOut + ' len ' + len + ' kind ' + kind);
  let done = 0;
  while (done < len) {
    let n;
    try { n = S.copyFileRange(src.fd, offIn + done, dst.fd, offOut + done, len - done, 0); }
    catch (e) { fail('copy_file_range: ' + e.code + ' ' + e.message); }
    if (n < 0 || n > len - done) fail('copy_file_range returned ' + n + ' for ' + (len - done));
    if (n === 0) break;
    if (model && srcModel) {
      grow(dst, offOut + done + n);
      srcModel.copy(dst.m, offOut + done, offIn + done, offIn + done + n);
    }
    done += n;
  }
  if (model && srcModel) {
    const want = Math.max(0, Math.min(len, srcModel.length - offIn));
    if (done !== want) fail('copied ' + done + ' bytes, model says ' + want);
  }
  stats.copies++;
  stats.copied += done;
}

function punch(f) {
  const aligned = rand() < 0.4;
  let off = aligned ? ri(Math.ceil((size(f) + BS) / BS)) * BS : ri(size(f) + BS);
  let len = aligned ? (1 + ri(16)) * BS : 1 + ri(16 * BS);
  log('punch ' + f.p + ' ' + off + '+' + len);
  try { S.fallocate(f.fd, FALLOC.PUNCH_HOLE | FALLOC.KEEP_SIZE, off, len); }
  catch (e) { fail('punch: ' + e.code); }
  if (model) f.m.fill(0, Math.min(off, f.m.length), Math.min(off + len, f.m.length));
  stats.punches++;
}

function write(f) {
  const off = ri(Math.min(size(f) + BS, MAX - 1));
  const len = Math.min(1 + ri(rand() < 0.5 ? 2 * BS : 16 * BS), MAX - off);
  const data = bytes(len);
  log('write ' + f.p + ' ' + off + '+' + len);
  let done = 0;
  try { while (done < len) done += fs.writeSync(f.fd, data, done, len - done, off + done); }
  catch (e) { fail('write: ' + e.code); }
  if (model) { grow(f, off + len); data.copy(f.m, off); }
  stats.writes++;
}

function truncate(f) {
  const n = ri(MAX / 2);
  log('truncate ' + f.p + ' ' + n);
  try { fs.ftruncateSync(f.fd, n); } catch (e) { fail('truncate: ' + e.code); }
  if (model) { const b = Buffer.alloc(n); f.m.copy(b, 0, 0, Math.min(n, f.m.length)); f.m = b; }
  stats.truncates++;
}

function readAll(f) {
  const sz = fs.fstatSync(f.fd).size;
  const b = Buffer.alloc(sz + 4096);
  let got = 0;
  for (;;) { const n = fs.readSync(f.fd, b, got, b.length - got, got); if (n === 0) break; got += n; if (got === b.length) break; }
  return { sz, data: b.subarray(0, got) };
}

function check(f) {
  const { sz, data } = readAll(f);
  stats.checks++;
  if (!model) return;
  if (sz !== f.m.length || data.length !== f.m.length) fail(f.p + ': size ' + sz + ' / read ' + data.length + ' bytes, model ' + f.m.length);
  if (!data.equals(f.m)) {
    let i = 0; while (data[i] === f.m[i]) i++;
    let j = i; while (j < data.length && data[j] !== f.m[j]) j++;
    fail(f.p + ': first difference at ' + i + ' (block ' + Math.floor(i / BS) + ' + ' + (i % BS) + '), run of ' + (j - i) + ' bytes: got ' +
      data.subarray(i, i + 16).toString('hex') + ' want ' + f.m.subarray(i, i + 16).toString('hex'));
  }
}

const [A, B] = files;
for (let r = 0; r < cfg.rounds; r++) {
  const x = rand();
  if (model) {
    if (x < 0.27) copy(A, B, A.m);
    else if (x < 0.54) copy(B, A, B.m);
    else if (x < 0.64) punch(A);
    else if (x < 0.74) punch(B);
    else if (x < 0.86) write(A);
    else if (x < 0.98) write(B);
    else truncate(rand() < 0.5 ? A : B);
  } else {
    if (x < 0.45) copy(A, B);
    else if (x < 0.55) copy(B, A);
    else if (x < 0.65) copy(extra[ri(extra.length)], rand() < 0.5 ? A : B);
    else if (x < 0.75) punch(A);
    else if (x < 0.85) punch(B);
    else if (x < 0.925) write(A);
    else write(B);
  }
  stats.rounds++;
  if ((r + 1) % 100 === 0) { check(A); check(B); }
}
check(A); check(B);
if (model) { fs.writeFileSync(cfg.modelA, A.m); fs.writeFileSync(cfg.modelB, B.m); }
for (const f of [...files, ...extra]) fs.closeSync(f.fd);
process.stdout.write(JSON.stringify(stats) + '\\n');
`;

beforeAll(() => {
  if (!fs.existsSync(SYS_JS)) throw new Error(`${SYS_JS} is missing: build first (npx tsc -p .)`);
  scriptDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pagefs-copy-scripts-'));
  const url = pathToFileURL(SYS_JS).href;
  OPS_JS = path.join(scriptDir, 'ops.mjs');
  MMAP_JS = path.join(scriptDir, 'mmap.mjs');
  WORKER_JS = path.join(scriptDir, 'worker.mjs');
  fs.writeFileSync(OPS_JS, OPS_SRC(url));
  fs.writeFileSync(MMAP_JS, MMAP_SRC(url));
  fs.writeFileSync(WORKER_JS, WORKER_SRC(url));
  EDGE_JS = path.join(scriptDir, 'edge.mjs');
  fs.writeFileSync(EDGE_JS, EDGE_SRC(url));
});

afterAll(() => {
  if (scriptDir) fs.rmSync(scriptDir, { recursive: true, force: true });
});

type Op =
  | { op: 'cfr'; in: string; offIn: number; out: string; offOut: number; len: number; flags?: number; loop?: boolean }
  | { op: 'falloc'; path: string; mode: number; off: number; len: number };
type OpResult = { n?: number; err?: string };

async function ops(list: Op[], timeoutMs = 60_000): Promise<OpResult[]> {
  const out = ok(await run(process.execPath, [OPS_JS, JSON.stringify(list)], { timeoutMs }), `ops ${JSON.stringify(list).slice(0, 300)}`);
  return JSON.parse(out) as OpResult[];
}

async function cfr(inP: string, offIn: number, outP: string, offOut: number, len: number, flags = 0): Promise<OpResult> {
  return (await ops([{ op: 'cfr', in: inP, offIn, out: outP, offOut, len, flags }]))[0];
}

// ---------------------------------------------------------------------------------------
// The model of one file and the operations the isolation test applies.

class Model {
  constructor(public b: Buffer) {}
  write(off: number, data: Buffer): void {
    this.grow(off + data.length);
    data.copy(this.b, off);
  }
  truncate(n: number): void {
    const b = Buffer.alloc(n);
    this.b.copy(b, 0, 0, Math.min(n, this.b.length));
    this.b = b;
  }
  punch(off: number, len: number): void {
    this.b.fill(0, Math.min(off, this.b.length), Math.min(off + len, this.b.length));
  }
  zero(off: number, len: number): void {
    this.grow(off + len);
    this.b.fill(0, off, off + len);
  }
  collapse(off: number, len: number): void {
    this.b = Buffer.concat([this.b.subarray(0, off), this.b.subarray(off + len)]);
  }
  insert(off: number, len: number): void {
    this.b = Buffer.concat([this.b.subarray(0, off), Buffer.alloc(len), this.b.subarray(off)]);
  }
  /** copy_file_range semantics: what exists of [offIn, offIn + len) in src lands at offOut. */
  copyFrom(src: Buffer, offIn: number, offOut: number, len: number): number {
    const n = Math.max(0, Math.min(len, src.length - offIn));
    const bytes = Buffer.from(src.subarray(offIn, offIn + n)); // src may be this.b
    if (n > 0) this.write(offOut, bytes);
    return n;
  }
  private grow(n: number): void {
    if (n > this.b.length) {
      const b = Buffer.alloc(n);
      this.b.copy(b);
      this.b = b;
    }
  }
}

async function pwrite(p: string, off: number, data: Buffer): Promise<void> {
  const fh = await fsp.open(p, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  try {
    let done = 0;
    while (done < data.length) done += (await fh.write(data, done, data.length - done, off + done)).bytesWritten;
  } finally {
    await fh.close();
  }
}

interface Step {
  name: string;
  apply(p: string, mdl: Model): Promise<void>;
}

const BS = 4096;
let stepSeed = 1000;

/** Every kind of change the brief lists, each aimed at blocks the clone shares. */
const STEPS: Step[] = [
  {
    name: 'rewrite part of one block',
    async apply(p, mdl) {
      const d = prand(100, stepSeed++);
      await pwrite(p, 3 * BS + 50, d);
      mdl.write(3 * BS + 50, d);
    },
  },
  {
    name: 'rewrite two whole blocks',
    async apply(p, mdl) {
      const d = prand(2 * BS, stepSeed++);
      await pwrite(p, 5 * BS, d);
      mdl.write(5 * BS, d);
    },
  },
  {
    name: 'rewrite across block boundaries (partial head and tail, whole block between)',
    async apply(p, mdl) {
      const d = prand(2 * BS + 20, stepSeed++);
      await pwrite(p, 8 * BS - 10, d);
      mdl.write(8 * BS - 10, d);
    },
  },
  {
    name: 'truncate down to an unaligned size',
    async apply(p, mdl) {
      await fsp.truncate(p, 30 * BS + 77);
      mdl.truncate(30 * BS + 77);
    },
  },
  {
    name: 'truncate up',
    async apply(p, mdl) {
      await fsp.truncate(p, 36 * BS + 5);
      mdl.truncate(36 * BS + 5);
    },
  },
  {
    name: 'punch hole (unaligned: partial head and tail)',
    async apply(p, mdl) {
      ok(await run('fallocate', ['-p', '-o', String(10 * BS + 300), '-l', String(3 * BS), p], { timeoutMs: 30_000 }), 'fallocate -p');
      mdl.punch(10 * BS + 300, 3 * BS);
    },
  },
  {
    name: 'zero range (unaligned)',
    async apply(p, mdl) {
      ok(await run('fallocate', ['-z', '-o', String(14 * BS + 1), '-l', String(2 * BS + 10), p], { timeoutMs: 30_000 }), 'fallocate -z');
      mdl.zero(14 * BS + 1, 2 * BS + 10);
    },
  },
  {
    name: 'collapse range',
    async apply(p, mdl) {
      ok(await pagefs(['collapse', p, String(16 * BS), String(2 * BS)], { timeoutMs: 30_000 }), 'pagefs collapse');
      mdl.collapse(16 * BS, 2 * BS);
    },
  },
  {
    name: 'insert range',
    async apply(p, mdl) {
      ok(await pagefs(['insert', p, String(2 * BS), String(3 * BS)], { timeoutMs: 30_000 }), 'pagefs insert');
      mdl.insert(2 * BS, 3 * BS);
    },
  },
];

// ---------------------------------------------------------------------------------------

describe('copy_file_range: space (cp and pagefs clone of 256 MiB share blocks)', () => {
  let m: Mounted | undefined;
  const SIZE = 256 * MiB;
  const FILE_BLOCKS = SIZE / BS;
  const SPARSE_SHARED = 256 + 6;
  beforeAll(async () => { m = await mountFresh({ capacity: '2G' }); });
  afterAll(async () => { await m?.cleanup(); }, 120_000);
  watchLog(() => m);
  const mp = (...p: string[]) => path.join(m!.mp, ...p);

  it('a 256 MiB file written through the mount', async () => {
    const src = path.join(m!.dir, 'big.src');
    await shOk(`head -c ${SIZE} /dev/urandom > ${q(src)}`, 60_000);
    await shOk(`cp ${q(src)} ${q(mp('big'))} && sync ${q(mp('big'))}`, 300_000);
    const s = await pstat(m!);
    expect(s.usedBlocks).toBeGreaterThanOrEqual(FILE_BLOCKS);
    expect(s.usedBlocks).toBeLessThanOrEqual(FILE_BLOCKS + 2);
    expect(s.sharedBlocks).toBe(0);
  }, 400_000);

  it('cp within the mount takes no data blocks; every block of the file is shared; cmp equal', async () => {
    const f0 = await bfree(m!.mp);
    const s0 = await pstat(m!);
    const r = await run('strace', ['-f', '-e', 'trace=copy_file_range', '-o', path.join(m!.dir, 'cp.strace'), 'cp', mp('big'), mp('big.cp')], { timeoutMs: 300_000 });
    ok(r, 'cp big big.cp');
    const f1 = await bfree(m!.mp);
    const s1 = await pstat(m!);
    expect(f0 - f1, 'statfs free blocks consumed by cp').toBeLessThanOrEqual(2);
    expect(f0 - f1).toBeGreaterThanOrEqual(0);
    expect(s1.usedBlocks - s0.usedBlocks, 'pagefs stat usedBlocks added by cp').toBeLessThanOrEqual(2);
    expect(s1.freeBlocks - s0.freeBlocks).toBeGreaterThanOrEqual(-2);
    expect(s1.sharedBlocks).toBe(FILE_BLOCKS);
    // cp really went through copy_file_range (else the figures above would say nothing about it).
    expect(fs.readFileSync(path.join(m!.dir, 'cp.strace'), 'utf8')).toMatch(/copy_file_range\(.*= 268435456/);
    ok(await run('cmp', [mp('big'), mp('big.cp')], { timeoutMs: 300_000 }), 'cmp big big.cp');
    const blocks = ok(await run('stat', ['-c', '%b %B', mp('big.cp')], { timeoutMs: 30_000 }), 'stat').trim().split(' ').map(Number);
    expect(blocks[0] * blocks[1] / BS).toBe(FILE_BLOCKS);
  }, 600_000);

  it('pagefs clone takes no data blocks either; cmp equal', async () => {
    const f0 = await bfree(m!.mp);
    const s0 = await pstat(m!);
    ok(await pagefs(['clone', mp('big'), mp('big.clone')], { timeoutMs: 300_000 }), 'pagefs clone');
    const f1 = await bfree(m!.mp);
    const s1 = await pstat(m!);
    expect(f0 - f1, 'statfs free blocks consumed by clone').toBeLessThanOrEqual(2);
    expect(f0 - f1).toBeGreaterThanOrEqual(0);
    expect(s1.usedBlocks - s0.usedBlocks, 'pagefs stat usedBlocks added by clone').toBeLessThanOrEqual(2);
    expect(s1.sharedBlocks).toBe(FILE_BLOCKS);
    ok(await run('cmp', [mp('big'), mp('big.clone')], { timeoutMs: 300_000 }), 'cmp big big.clone');
  }, 600_000);

  it('pagefs clone of a sparse file with an unaligned tail: holes stay holes, data blocks shared, only the tail copied', async () => {
    // 8 MiB + 1234: data at [0, 1M), a hole to 3M, data [3M, 3M + 5 blocks + 100), hole, tail at 8M.
    const p = mp('sparse');
    const a = prand(MiB, 7);
    const b = prand(5 * BS + 100, 8);
    const c = prand(1234, 9);
    await pwrite(p, 0, a);
    await pwrite(p, 3 * MiB, b);
    await pwrite(p, 8 * MiB, c);
    await shOk(`sync ${q(p)}`);
    const want = new Model(Buffer.alloc(0));
    want.write(0, a); want.write(3 * MiB, b); want.write(8 * MiB, c);
    const s0 = await pstat(m!);
    const f0 = await bfree(m!.mp);
    ok(await pagefs(['clone', p, mp('sparse.clone')], { timeoutMs: 60_000 }), 'pagefs clone sparse');
    const s1 = await pstat(m!);
    // Blocks with data: 256 + 6 + 1. Shared: all but the last, which EOF cuts short (its
    // 1234 bytes are copied). The block holding the 100 bytes at 3M + 5 blocks is whole
    // (the file goes on past it), so it is shared too.
    expect(s1.sharedBlocks - s0.sharedBlocks).toBe(SPARSE_SHARED);
    expect(s1.usedBlocks - s0.usedBlocks).toBeLessThanOrEqual(2);
    expect(f0 - await bfree(m!.mp)).toBeLessThanOrEqual(2);
    expect(diff(await fsp.readFile(mp('sparse.clone')), want.b)).toBe('equal');
    const st = async (x: string) => ok(await run('stat', ['-c', '%s %b', x], { timeoutMs: 30_000 }), 'stat').trim();
    await shOk(`sync ${q(mp('sparse.clone'))}`);
    expect(await st(mp('sparse.clone'))).toBe(await st(p));
  }, 120_000);

  it('after unmount: fsck clean and reports the shared blocks; after remount the copies still compare equal', async () => {
    await m!.unmount();
    let out: string;
    try {
      expectCleanLog(m!);
      out = await fsckClean(m!);
    } finally {
      await m!.remount();
    }
    expect(out).toMatch(new RegExp(`\\b${FILE_BLOCKS + SPARSE_SHARED} shared\\b`));
    ok(await run('cmp', [mp('big'), mp('big.cp')], { timeoutMs: 300_000 }), 'cmp big big.cp after remount');
    ok(await run('cmp', [path.join(m!.dir, 'big.src'), mp('big.clone')], { timeoutMs: 300_000 }), 'cmp big.src big.clone after remount');
  }, 600_000);

  it('deleting the original keeps the copies\' blocks; deleting every copy frees them all', async () => {
    const s0 = await pstat(m!);
    await fsp.unlink(mp('big'));
    await new Promise((r) => setTimeout(r, 500));
    const s1 = await pstat(m!);
    expect(s1.usedBlocks).toBe(s0.usedBlocks); // still referenced by big.cp and big.clone
    expect(s1.sharedBlocks).toBe(s0.sharedBlocks);
    ok(await run('cmp', [path.join(m!.dir, 'big.src'), mp('big.cp')], { timeoutMs: 300_000 }), 'cmp after unlinking the original');
    await fsp.unlink(mp('big.cp'));
    await new Promise((r) => setTimeout(r, 500));
    expect((await pstat(m!)).usedBlocks).toBe(s0.usedBlocks);
    await fsp.unlink(mp('big.clone'));
    const freed = await eventually(async () => (await pstat(m!)).usedBlocks <= s0.usedBlocks - FILE_BLOCKS, 10_000);
    const s3 = await pstat(m!);
    expect(freed, `usedBlocks ${s0.usedBlocks} -> ${s3.usedBlocks}`).toBe(true);
    expect(s0.usedBlocks - s3.usedBlocks).toBeLessThanOrEqual(FILE_BLOCKS + 2);
    expect(s3.sharedBlocks).toBe(SPARSE_SHARED); // the sparse pair's
  }, 600_000);

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m!);
  }, 120_000);
});

// ---------------------------------------------------------------------------------------

describe('copy_file_range: copy-on-write isolation in both directions', () => {
  let m: Mounted | undefined;
  beforeAll(async () => { m = await mountFresh(); });
  afterAll(async () => { await m?.cleanup(); }, 120_000);
  watchLog(() => m);

  const SIZE = 40 * BS + 1234;

  for (const dir of ['changes to the copy leave the original', 'changes to the original leave the copy'] as const) {
    describe(dir, () => {
      const tag = dir.startsWith('changes to the copy') ? 'c2o' : 'o2c';
      let orig = '';
      let copy = '';
      let mOrig: Model;
      let mCopy: Model;
      // The file that changes, and the one that must not.
      const changed = () => (tag === 'c2o' ? { p: copy, mdl: mCopy } : { p: orig, mdl: mOrig });
      const untouched = () => (tag === 'c2o' ? { p: orig, mdl: mOrig } : { p: copy, mdl: mCopy });

      async function expectBoth(when: string): Promise<void> {
        const u = untouched();
        const c = changed();
        const gotU = await fsp.readFile(u.p);
        expect(sha(gotU), `${when}: the untouched file is byte-identical (${diff(gotU, u.mdl.b)})`).toBe(sha(u.mdl.b));
        expect(diff(await fsp.readFile(c.p), c.mdl.b), `${when}: the changed file holds exactly the change`).toBe('equal');
      }

      it('clone shares the blocks', async () => {
        orig = path.join(m!.mp, `${tag}-orig`);
        copy = path.join(m!.mp, `${tag}-copy`);
        const data = prand(SIZE, tag === 'c2o' ? 1 : 2);
        await fsp.writeFile(orig, data);
        await shOk(`sync ${q(orig)}`);
        const s0 = await pstat(m!);
        ok(await pagefs(['clone', orig, copy], { timeoutMs: 60_000 }), 'pagefs clone');
        const s1 = await pstat(m!);
        expect(s1.sharedBlocks - s0.sharedBlocks).toBe(40);
        mOrig = new Model(Buffer.from(data));
        mCopy = new Model(Buffer.from(data));
        await expectBoth('after clone');
        await cycle(m!);
        await expectBoth('after clone and remount');
      });

      for (const step of STEPS) {
        it(step.name, async () => {
          const c = changed();
          await step.apply(c.p, c.mdl);
          await expectBoth(`after ${step.name}`);
          await cycle(m!);
          await expectBoth(`after ${step.name}, unmount, fsck and remount`);
        });
      }
    });
  }

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m!);
  }, 120_000);
});

// ---------------------------------------------------------------------------------------
// Byte ranges and errnos, each also run on a loop-mounted ext4 image.

let extDir = '';
let extMp = '';
let extMounted = false;

async function setupExt4(): Promise<void> {
  extDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pagefs-copy-ext4-'));
  const img = path.join(extDir, 'ext4.img');
  extMp = path.join(extDir, 'mnt');
  fs.mkdirSync(extMp);
  ok(await run('truncate', ['-s', '64M', img], { timeoutMs: 10_000 }), 'truncate');
  ok(await run('mkfs.ext4', ['-q', '-F', img], { timeoutMs: 30_000 }), 'mkfs.ext4');
  ok(await run('mount', ['-o', 'loop', img, extMp], { timeoutMs: 30_000 }), 'mount ext4');
  extMounted = true;
}

async function teardownExt4(): Promise<void> {
  if (extMounted) {
    const r = await run('umount', [extMp], { timeoutMs: 30_000 });
    if (r.code !== 0) await run('umount', ['-l', extMp], { timeoutMs: 10_000 });
    extMounted = false;
    const img = path.join(extDir, 'ext4.img');
    const l = await run('losetup', ['-j', img], { timeoutMs: 10_000 });
    for (const line of l.stdout.split('\n')) {
      const dev = line.split(':')[0];
      if (dev.startsWith('/dev/loop')) await run('losetup', ['-d', dev], { timeoutMs: 10_000 });
    }
  }
  if (extDir) fs.rmSync(extDir, { recursive: true, force: true });
}

type Where = 'pagefs' | 'ext4';

for (const blockSize of [4096, 1024]) {
  describe(`copy_file_range: byte ranges against a model and ext4 (${blockSize}-byte blocks)`, () => {
    let m: Mounted | undefined;
    beforeAll(async () => {
      await setupExt4();
      m = await mountFresh({ blockSize });
    }, 120_000);
    afterAll(async () => {
      try {
        await m?.cleanup();
      } finally {
        await teardownExt4();
      }
    }, 120_000);
    watchLog(() => m);

    /** Runs `fn` in a fresh directory `name` on pagefs and on ext4. */
    async function onBoth<T>(name: string, fn: (dir: string, where: Where) => Promise<T>): Promise<Record<Where, T>> {
      const out = {} as Record<Where, T>;
      for (const [where, root] of [['pagefs', m!.mp], ['ext4', extMp]] as [Where, string][]) {
        const d = path.join(root, name);
        await fsp.mkdir(d);
        out[where] = await fn(d, where);
      }
      return out;
    }

    const bs = blockSize;
    // [offIn, offOut, len]: S (300000 bytes) -> D (200000 bytes), applied in order.
    const CROSS: [number, number, number][] = [
      [100, 5000, 20000], // different alignment, partial head and tail
      [2 * bs + 10, 7 * bs + 10, 5 * bs + 100], // same misalignment: head, whole blocks, tail
      [3 * bs, 9 * bs, 4 * bs], // aligned whole blocks only
      [3 * bs, 20 * bs + 1, 4 * bs], // aligned source, destination off by one
      [13 * bs + 1, 30 * bs, 3 * bs - 1], // unaligned source, aligned destination, ends on a block boundary
      [5, 7, 3], // inside one block
      [bs - 6, 2 * bs + bs - 4, 20], // across a block boundary on both sides
      [0, 40 * bs, bs], // one whole block
      [250000, 190000, 100000], // crosses the source's EOF (50000 exist) and extends the destination
      [1000, 260000, 5000], // past the destination's EOF: the gap reads as zeros
      [400000, 0, 10], // past the source's EOF: 0 bytes
      [300000, 0, 10], // at the source's EOF: 0 bytes
      [299999, 0, 10], // the last byte
    ];

    it('copies between two files give the model\'s bytes (results and bytes equal on ext4)', async () => {
      const S0 = prand(300000, 11);
      const D0 = prand(200000, 12);
      const mdl = new Model(Buffer.from(D0));
      const want = CROSS.map(([i, o, l]) => ({ n: mdl.copyFrom(S0, i, o, l) }));
      const res = await onBoth('cross', async (d) => {
        await fsp.writeFile(path.join(d, 'S'), S0);
        await fsp.writeFile(path.join(d, 'D'), D0);
        const r = await ops(CROSS.map(([offIn, offOut, len]) => ({ op: 'cfr' as const, in: path.join(d, 'S'), offIn, out: path.join(d, 'D'), offOut, len, loop: true })));
        return { r, S: await fsp.readFile(path.join(d, 'S')), D: await fsp.readFile(path.join(d, 'D')) };
      });
      for (const where of ['pagefs', 'ext4'] as Where[]) {
        expect({ where, results: res[where].r }).toEqual({ where, results: want });
        expect(diff(res[where].D, mdl.b), `${where}: destination`).toBe('equal');
        expect(diff(res[where].S, S0), `${where}: source`).toBe('equal');
      }
      // From the store, with fresh caches.
      await cycle(m!);
      expect(diff(await fsp.readFile(path.join(m!.mp, 'cross', 'D')), mdl.b), 'destination after remount').toBe('equal');
      expect(diff(await fsp.readFile(path.join(m!.mp, 'cross', 'S')), S0), 'source after remount').toBe('equal');
    });

    it('copies within one file (non-overlapping ranges, both directions) give the model\'s bytes', async () => {
      const F0 = prand(200000, 13);
      const SAME: [number, number, number][] = [
        [0, 25 * bs, 10 * bs], // aligned, forward
        [10, 30 * bs + 10, 3 * bs], // same misalignment, forward
        [150000, 3, 40000], // different alignment, backward
        [6 * bs, 0, 5 * bs], // aligned, backward, adjacent ranges
        [190000, 210000, 30000], // crosses EOF: 10000 copied, after a gap past EOF (one call: a loop would chase the growing EOF)
      ];
      const mdl = new Model(Buffer.from(F0));
      const want = SAME.map(([i, o, l]) => ({ n: mdl.copyFrom(mdl.b, i, o, l) }));
      const res = await onBoth('same', async (d) => {
        const f = path.join(d, 'F');
        await fsp.writeFile(f, F0);
        const r = await ops(SAME.map(([offIn, offOut, len]) => ({ op: 'cfr' as const, in: f, offIn, out: f, offOut, len })));
        return { r, F: await fsp.readFile(f) };
      });
      for (const where of ['pagefs', 'ext4'] as Where[]) {
        expect({ where, results: res[where].r }).toEqual({ where, results: want });
        expect(diff(res[where].F, mdl.b), `${where}: file`).toBe('equal');
      }
      await cycle(m!);
      expect(diff(await fsp.readFile(path.join(m!.mp, 'same', 'F')), mdl.b), 'after remount').toBe('equal');
    });

    it('a copy whose source holds unwritten (preallocated) blocks and a hole gives zeros there', async () => {
      const F0 = prand(12 * bs, 14);
      const mdl = new Model(Buffer.from(F0));
      const D0 = prand(12 * bs, 15);
      const dm = new Model(Buffer.from(D0));
      // Punch blocks 2..3, zero-range blocks 5..6 (unwritten), then copy the whole file over D.
      mdl.punch(2 * bs, 2 * bs);
      mdl.zero(5 * bs, 2 * bs);
      dm.copyFrom(mdl.b, 0, 0, 12 * bs);
      const res = await onBoth('unwritten', async (d) => {
        await fsp.writeFile(path.join(d, 'S'), F0);
        await fsp.writeFile(path.join(d, 'D'), D0);
        const r = await ops([
          { op: 'falloc', path: path.join(d, 'S'), mode: FALLOC_PUNCH_HOLE | FALLOC_KEEP_SIZE, off: 2 * bs, len: 2 * bs },
          { op: 'falloc', path: path.join(d, 'S'), mode: FALLOC_ZERO_RANGE, off: 5 * bs, len: 2 * bs },
          { op: 'cfr', in: path.join(d, 'S'), offIn: 0, out: path.join(d, 'D'), offOut: 0, len: 12 * bs, loop: true },
        ]);
        return { r, D: await fsp.readFile(path.join(d, 'D')) };
      });
      for (const where of ['pagefs', 'ext4'] as Where[]) {
        expect({ where, results: res[where].r }).toEqual({ where, results: [{}, {}, { n: 12 * bs }] });
        expect(diff(res[where].D, dm.b), `${where}: destination`).toBe('equal');
      }
      await cycle(m!);
      expect(diff(await fsp.readFile(path.join(m!.mp, 'unwritten', 'D')), dm.b), 'after remount').toBe('equal');
    });

    it('a source and destination with unwritten-back (dirty) pages: the copy shares the newest bytes, the rest of the destination keeps its own', async () => {
      const S0 = prand(16 * bs, 23);
      const D0 = prand(16 * bs, 24);
      const sNew = prand(6 * bs + 50, 25); // into S at bs - 20: partial, whole, partial blocks
      const dNew = prand(3 * bs, 26); // into D at 2 * bs: inside the range the copy replaces
      const dOut = prand(bs + 7, 27); // into D at 12 * bs + 3: outside it
      const sm = new Model(Buffer.from(S0));
      sm.write(bs - 20, sNew);
      const dm = new Model(Buffer.from(D0));
      dm.write(2 * bs, dNew);
      dm.write(12 * bs + 3, dOut);
      const copies: [number, number, number][] = [[0, 0, 8 * bs], [bs + 5, 9 * bs + 5, 2 * bs]];
      const want = copies.map(([i, o, l]) => ({ n: dm.copyFrom(sm.b, i, o, l) }));
      const res = await onBoth('dirty', async (d) => {
        await fsp.writeFile(path.join(d, 'S'), S0);
        await fsp.writeFile(path.join(d, 'D'), D0);
        // Written through handles that stay open: no release, so no writeback yet.
        const fs1 = await fsp.open(path.join(d, 'S'), 'r+');
        const fd1 = await fsp.open(path.join(d, 'D'), 'r+');
        try {
          await fs1.write(sNew, 0, sNew.length, bs - 20);
          await fd1.write(dNew, 0, dNew.length, 2 * bs);
          await fd1.write(dOut, 0, dOut.length, 12 * bs + 3);
          const r = await ops(copies.map(([offIn, offOut, len]) => ({ op: 'cfr' as const, in: path.join(d, 'S'), offIn, out: path.join(d, 'D'), offOut, len, loop: true })));
          return { r, D: await fsp.readFile(path.join(d, 'D')), S: await fsp.readFile(path.join(d, 'S')) };
        } finally {
          await fs1.close();
          await fd1.close();
        }
      });
      for (const where of ['pagefs', 'ext4'] as Where[]) {
        expect({ where, results: res[where].r }).toEqual({ where, results: want });
        expect(diff(res[where].D, dm.b), `${where}: destination`).toBe('equal');
        expect(diff(res[where].S, sm.b), `${where}: source`).toBe('equal');
      }
      await cycle(m!);
      expect(diff(await fsp.readFile(path.join(m!.mp, 'dirty', 'D')), dm.b), 'destination after remount').toBe('equal');
      expect(diff(await fsp.readFile(path.join(m!.mp, 'dirty', 'S')), sm.b), 'source after remount').toBe('equal');
    });

    it('overlapping ranges in one file: EINVAL, file unchanged (as on ext4)', async () => {
      const F0 = prand(100000, 16);
      const res = await onBoth('overlap', async (d) => {
        const f = path.join(d, 'F');
        await fsp.writeFile(f, F0);
        const r = await ops([
          { op: 'cfr', in: f, offIn: 0, out: f, offOut: 100, len: 1000 }, // forward overlap, unaligned
          { op: 'cfr', in: f, offIn: 2 * bs, out: f, offOut: bs, len: 4 * bs }, // backward overlap, aligned
          { op: 'cfr', in: f, offIn: 0, out: f, offOut: 0, len: 10 }, // identical range
        ]);
        return { r, same: (await fsp.readFile(f)).equals(F0) };
      });
      expect(res).toEqual({ pagefs: { r: [{ err: 'EINVAL' }, { err: 'EINVAL' }, { err: 'EINVAL' }], same: true }, ext4: { r: [{ err: 'EINVAL' }, { err: 'EINVAL' }, { err: 'EINVAL' }], same: true } });
    });

    it('flags != 0: EINVAL (as on ext4)', async () => {
      const res = await onBoth('flags', async (d) => {
        await fsp.writeFile(path.join(d, 'S'), prand(10000, 17));
        await fsp.writeFile(path.join(d, 'D'), '');
        const r = await ops([1, 2, 0x80000000].map((flags) => ({ op: 'cfr' as const, in: path.join(d, 'S'), offIn: 0, out: path.join(d, 'D'), offOut: 0, len: 4096, flags })));
        return { r, size: (await fsp.stat(path.join(d, 'D'))).size };
      });
      expect(res.pagefs).toEqual({ r: [{ err: 'EINVAL' }, { err: 'EINVAL' }, { err: 'EINVAL' }], size: 0 });
      expect(res.pagefs).toEqual(res.ext4);
    });

    it('a directory as source or destination: the same errno as ext4 (EISDIR or EBADF)', async () => {
      const res = await onBoth('dirs', async (d) => {
        await fsp.writeFile(path.join(d, 'F'), prand(10000, 18));
        await fsp.mkdir(path.join(d, 'sub'));
        return ops([
          { op: 'cfr', in: path.join(d, 'sub'), offIn: 0, out: path.join(d, 'F'), offOut: 0, len: 100 },
          { op: 'cfr', in: path.join(d, 'F'), offIn: 0, out: path.join(d, 'sub'), offOut: 0, len: 100 },
        ]);
      });
      expect(res.pagefs.map((r) => r.err)).toEqual(res.ext4.map((r) => r.err));
      for (const r of res.pagefs) expect(['EISDIR', 'EBADF']).toContain(r.err);
    });

    it('past the source\'s EOF: 0 bytes, destination unchanged; a range crossing EOF copies what exists', async () => {
      const S0 = prand(10 * bs + 17, 19);
      const D0 = prand(3 * bs, 20);
      const res = await onBoth('eof', async (d) => {
        await fsp.writeFile(path.join(d, 'S'), S0);
        await fsp.writeFile(path.join(d, 'D'), D0);
        const r1 = await cfr(path.join(d, 'S'), 11 * bs, path.join(d, 'D'), 0, bs);
        const d1 = await fsp.readFile(path.join(d, 'D'));
        const r2 = await cfr(path.join(d, 'S'), 8 * bs, path.join(d, 'D'), bs, 10 * bs); // 2 blocks + 17 bytes exist
        return { r1, same: d1.equals(D0), r2, D: await fsp.readFile(path.join(d, 'D')) };
      });
      const mdl = new Model(Buffer.from(D0));
      mdl.copyFrom(S0, 8 * bs, bs, 10 * bs);
      for (const where of ['pagefs', 'ext4'] as Where[]) {
        expect({ where, r1: res[where].r1, same: res[where].same, r2: res[where].r2 }).toEqual({ where, r1: { n: 0 }, same: true, r2: { n: 2 * bs + 17 } });
        expect(diff(res[where].D, mdl.b), where).toBe('equal');
      }
    });

    it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
      await finish(m!);
    }, 120_000);
  });
}

// ---------------------------------------------------------------------------------------

describe('copy_file_range: an mmap of the destination made before the copy', () => {
  let m: Mounted | undefined;
  beforeAll(async () => { m = await mountFresh(); });
  afterAll(async () => { await m?.cleanup(); }, 120_000);
  watchLog(() => m);

  it('shows the new bytes as soon as copy_file_range returns (shared blocks and copied edges)', async () => {
    const MAP = 64 * 1024;
    const S0 = prand(2 * MAP, 21);
    const D0 = prand(MAP, 22);
    const src = path.join(m!.mp, 'mm-src');
    const dst = path.join(m!.mp, 'mm-dst');
    await fsp.writeFile(src, S0);
    await fsp.writeFile(dst, D0);
    const copies: [number, number, number][] = [
      [0, 0, 4 * BS], // whole aligned blocks: shared
      [MAP, 5 * BS + 100, 3 * BS], // different alignment: every byte copied
      [7 * BS + 9, 10 * BS + 9, 2 * BS + 1], // same misalignment: head, shared block, tail
      [20 * BS + 1, 15 * BS + 3, 10], // a few bytes inside one page
    ];
    const mdl = new Model(Buffer.from(D0));
    const want: string[] = [];
    for (const [i, o, l] of copies) {
      mdl.copyFrom(S0, i, o, l);
      want.push(mdl.b.toString('base64'));
    }
    const out = ok(await run(process.execPath, [MMAP_JS, src, dst, String(MAP), JSON.stringify(copies)], { timeoutMs: 60_000 }), 'mmap script');
    const res = JSON.parse(out) as { before: string; after: string[]; n: number[] };
    expect(diff(Buffer.from(res.before, 'base64'), D0), 'the mapping before the copies').toBe('equal');
    expect(res.n).toEqual(copies.map(([, , l]) => l));
    for (let k = 0; k < copies.length; k++) {
      expect(diff(Buffer.from(res.after[k], 'base64'), Buffer.from(want[k], 'base64')), `the mapping after copy ${k} ${JSON.stringify(copies[k])}`).toBe('equal');
    }
    expect(diff(await fsp.readFile(dst), mdl.b), 'read(2) after the copies').toBe('equal');
  });

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m!);
  }, 120_000);
});

// ---------------------------------------------------------------------------------------

describe('copy_file_range and punch: cache eviction while both partial edges are filled (64-page cache)', () => {
  let m: Mounted | undefined;
  // --inject-delay widens every fill (a documented debugging aid, timing only); 4 O_DIRECT
  // readers of another file keep the cache over its cap, so every reply they get evicts.
  beforeAll(async () => { m = await mountFresh({ mountArgs: ['--cache-size', '256K', '--inject-delay', 'after-lookup=100'] }); });
  afterAll(async () => { await m?.cleanup(); }, 120_000);
  watchLog(() => m);

  async function underPressure(what: 'copy' | 'punch'): Promise<string[]> {
    const dir = path.join(m!.mp, what);
    await fsp.mkdir(dir);
    await fsp.writeFile(path.join(dir, 'Q'), prand(MiB, 31));
    // The readers stop by themselves (timeout 120) if this script is killed.
    const script = [
      'set -u',
      'pids=()',
      `for i in 1 2 3 4; do timeout 120 bash -c 'while :; do dd if=${q(path.join(dir, 'Q'))} iflag=direct bs=1M of=/dev/null status=none || exit 1; done' & pids+=($!); done`,
      `timeout 100 ${q(process.execPath)} ${q(EDGE_JS)} ${what} ${q(dir)} 5; rc=$?`,
      'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null',
      'exit $rc',
    ].join('\n');
    const out = ok(await run('bash', ['-c', script], { timeoutMs: 150_000 }), `${what} under cache pressure`);
    return (JSON.parse(out.trim().split('\n').pop()!) as { bad: string[] }).bad;
  }

  it('copy_file_range into unaligned edges keeps the destination\'s bytes outside the range', async () => {
    expect(await underPressure('copy')).toEqual([]);
  }, 180_000);

  it('punch hole with unaligned edges zeroes the partial blocks (as the daemon stores them)', async () => {
    expect(await underPressure('punch')).toEqual([]);
  }, 180_000);

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m!);
  }, 120_000);
});

// ---------------------------------------------------------------------------------------

for (const [label, mountArgs] of [
  ['default cache', []],
  // 64 pages: eviction runs in the middle of copies and punches.
  ['a 256 KiB cache', ['--cache-size', '256K']],
] as [string, string[]][]) describe(`copy_file_range: 10,000 rounds from 4 processes (copies both ways, punches, writes; ${label})`, () => {
  let m: Mounted | undefined;
  beforeAll(async () => { m = await mountFresh({ mountArgs }); });
  afterAll(async () => { await m?.cleanup(); }, 120_000);
  watchLog(() => m);

  const ROUNDS = 2500; // per process: 4 x 2500 = 10,000
  const seed0 = Number(process.env.PAGEFS_COPY_SEED ?? (Date.now() % 1_000_000));
  const MAX = 1 * MiB;

  it('finishes (no deadlock), no lock-checker report, every model matches, fsck clean', async () => {
    const mp = (n: string) => path.join(m!.mp, n);
    for (const n of ['C', 'D']) await fsp.writeFile(mp(n), prand(256 * 1024, n.charCodeAt(0)));
    for (const n of ['A1', 'B1', 'A2', 'B2']) await fsp.writeFile(mp(n), ''); // the model workers fill them
    const model = (pair: string, seed: number) => ({
      mode: 'model', seed, rounds: ROUNDS, bs: BS, maxSize: MAX,
      a: mp(`A${pair}`), b: mp(`B${pair}`),
      modelA: path.join(m!.dir, `model-A${pair}`), modelB: path.join(m!.dir, `model-B${pair}`),
    });
    const chaos = (a: string, b: string, seed: number) => ({
      mode: 'chaos', seed, rounds: ROUNDS, bs: BS, maxSize: MAX, a: mp(a), b: mp(b), extra: [mp('A1'), mp('A2')],
    });
    const cfgs = [model('1', seed0 + 1), model('2', seed0 + 2), chaos('C', 'D', seed0 + 3), chaos('D', 'C', seed0 + 4)];
    // The model workers create A1/A2 contents first; start the chaos ones (which read A1/A2) after a moment.
    const start = (cfg: object, delayMs: number) => new Promise<RunResult>((resolve, reject) => {
      setTimeout(() => run(process.execPath, [WORKER_JS, JSON.stringify(cfg)], { timeoutMs: 480_000 }).then(resolve, reject), delayMs);
    });
    const results = await Promise.all(cfgs.map((c, i) => start(c, i < 2 ? 0 : 300)));
    const summary = results.map((r, i) => ({ worker: i, seed: cfgs[i].seed, code: r.code, out: r.stdout.trim().slice(0, 3000), err: r.stderr.slice(0, 2000) }));
    for (const s of summary) expect(s.code, `worker ${s.worker} (seed ${s.seed}): ${s.out}\n${s.err}`).toBe(0);
    const stats = results.map((r) => JSON.parse(r.stdout) as { rounds: number; copies: number; copied: number; checks: number });
    console.log(`copy concurrency (seed ${seed0}): ${JSON.stringify(stats)}`);
    expect(stats.reduce((a, s) => a + s.rounds, 0)).toBe(4 * ROUNDS);
    for (const s of stats) expect(s.copies).toBeGreaterThan(ROUNDS / 4);
    expectCleanLog(m!);

    // The store, not only the caches, holds what the models say.
    await m!.unmount();
    expectCleanLog(m!);
    await fsckClean(m!);
    await m!.remount();
    for (const n of ['A1', 'B1', 'A2', 'B2']) {
      const want = await fsp.readFile(path.join(m!.dir, `model-${n}`));
      expect(diff(await fsp.readFile(mp(n)), want), `${n} after remount (seed ${seed0})`).toBe('equal');
    }
    for (const n of ['C', 'D']) expect((await fsp.readFile(mp(n))).length).toBeLessThanOrEqual(MAX);
  }, 600_000);

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await finish(m!);
  }, 120_000);
});
