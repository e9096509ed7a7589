/**
 * The fsx checker's engine (in the spirit of xfstests' fsx): a seeded random sequence
 * of operations over a few files, each applied to the file and to an in-memory model,
 * every read checked against the model. It runs synchronously, one operation at a
 * time, in the worker thread fsx-worker.ts (fsx.ts starts it), so that a system call
 * that hangs on a broken mount never blocks the caller's event loop.
 *
 * Writes of whole aligned blocks carry block stamps (stamp.ts: file, block,
 * generation), other writes random bytes: a read that returns a stamp where the model
 * says otherwise names whose block it was and which operation wrote it.
 *
 * The same seed on a filesystem that supports the same operations (the probe) and has
 * the same block size gives the same sequence of operations and arguments.
 */
import fs from 'node:fs';
import path from 'node:path';
import { sys, FALLOC, SEEK_DATA, SEEK_HOLE, PROT_READ, PROT_WRITE, MAP_SHARED, MS_SYNC } from '../sys/index.js';
import { PAGEFS_IOC_COLLAPSE_RANGE, PAGEFS_IOC_INSERT_RANGE, encodeRange } from '../vfs/shift.js';
import { Rng } from './rng.js';
import { stampBlock } from './stamp.js';
import { Provenance, firstDifference, randomBytes } from './fsx-provenance.js';
import { FileModel } from './fsx-model.js';
import { probeOperations, type Probe } from './fsx-probe.js';
import { FSX_OPS, type FsxOp } from './fsx-ops.js';

export { FSX_OPS, DEFAULT_MIX, OP_HELP, type FsxOp } from './fsx-ops.js';

export type { Probe };

/** Stamps of file i carry file id FILE_ID_BASE + i (the race stress uses 1..4). */
export const FILE_ID_BASE = 100;
const PAGE = 4096;
const LOG_KEEP = 1000;

export interface EngineConfig {
  /** The directory to test; the engine works in a new subdirectory of it. */
  dir: string;
  seed: number;
  ops: number;
  files: number;
  maxSize: number;
  maxOpLen: number;
  mix: Record<FsxOp, number>;
}

export interface FsxFailure {
  kind: 'data' | 'size' | 'seek' | 'copy' | 'error';
  /** One line: what went wrong. */
  what: string;
  /** The number of the operation that found it (operations done so far). */
  op: number;
  opText: string;
  file?: string;
  path?: string;
  /** data: the first differing range [offset, end) in file offsets, and how many bytes of the read differ. */
  offset?: number;
  end?: number;
  differing?: number;
  readOffset?: number;
  expectedLength?: number;
  actualLength?: number;
  /** Up to 32 bytes from `offset`, hex. */
  expectedHex?: string;
  actualHex?: string;
  /** Whose bytes: a stamp (block, file, generation, the op that wrote it), zeros or random bytes. */
  expected?: string;
  actual?: string;
  errno?: string;
  /** The last operations, oldest first. */
  log: string[];
}

export interface EngineState {
  ops: number;
  opCounts: Record<string, number>;
  bytesChecked: number;
  remounts: number;
  failure?: FsxFailure;
}

const hex = (n: number) => `0x${n.toString(16)}`;
const code = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/** Thrown inside an operation when a check failed; the failure is already recorded. */
class Stop extends Error {}

export class FsxEngine {
  readonly work: string;
  readonly bs: number;
  private readonly rng: Rng;
  private readonly models: FileModel[] = [];
  private readonly paths: string[] = [];
  private fds: number[] = [];
  private pickTable: FsxOp[] = [];
  private probed!: Probe;
  op = 0;
  readonly counts: Record<string, number> = {};
  bytesChecked = 0;
  remounts = 0;
  failure: FsxFailure | undefined;
  private readonly log: string[] = [];
  private cur = '';
  private readonly prov = new Provenance(FSX_OPS);

  constructor(private readonly c: EngineConfig) {
    this.rng = new Rng(c.seed);
    this.bs = fs.statfsSync(c.dir).bsize;
    this.work = fs.mkdtempSync(path.join(c.dir, `fsx-${c.seed}-`));
    const cap = Math.ceil(c.maxSize / Math.max(PAGE, this.bs)) * Math.max(PAGE, this.bs);
    for (let i = 0; i < c.files; i++) {
      this.models.push(new FileModel(cap));
      this.paths.push(path.join(this.work, `f${i}`));
    }
  }

  /** Tries each optional operation once on a scratch file, like fsx; what the filesystem refuses is skipped. */
  probe(): Probe {
    const bs = this.bs;
    const { ok, skipped, shiftVia } = probeOperations(this.work, bs);
    const supported = FSX_OPS.filter((o) => ok.has(o));
    this.probed = { blockSize: bs, supported, skipped, shiftVia };
    for (const o of supported) for (let i = 0; i < this.c.mix[o]; i++) this.pickTable.push(o);
    if (this.pickTable.length === 0) throw new Error('fsx: the operation mix leaves no supported operation');
    return this.probed;
  }

  /** Creates the files (empty) and opens them. */
  setup(): void {
    for (const p of this.paths) fs.writeFileSync(p, '');
    this.openAll();
  }

  openAll(): void {
    this.fds = this.paths.map((p) => fs.openSync(p, 'r+'));
  }

  closeAll(): void {
    for (const fd of this.fds) if (fd >= 0) fs.closeSync(fd);
    this.fds = [];
  }

  /** After a clean run: close and remove the work directory. After a failure the files stay for inspection. */
  finish(): void {
    if (this.fds.length) this.closeAll();
    if (!this.failure) fs.rmSync(this.work, { recursive: true, force: true });
  }

  state(): EngineState {
    return { ops: this.op, opCounts: { ...this.counts }, bytesChecked: this.bytesChecked, remounts: this.remounts, failure: this.failure };
  }

  /** The last n entries of the operation log, oldest first. */
  logTail(n: number): string[] {
    return this.log.slice(-n);
  }

  /** The model's bytes and the last LOG_KEEP operations, written to `dir` after a failure. */
  dump(dir: string): void {
    fs.mkdirSync(dir, { recursive: true });
    this.models.forEach((m, i) => fs.writeFileSync(path.join(dir, `f${i}.expected`), m.data.subarray(0, m.size)));
    fs.writeFileSync(path.join(dir, 'ops.log'), this.log.join('\n') + '\n');
  }

  // ---- one operation -------------------------------------------------------------

  /** Runs the next operation; returns false once a failure has been recorded. */
  step(): boolean {
    if (this.failure) return false;
    this.op++;
    let op = this.pick();
    let f = this.rng.int(this.c.files);
    // An operation the file's state does not allow (collapse of a one-block file, ...) is drawn again.
    for (let tries = 0; !this.feasible(op, f) && tries < 16; tries++) {
      op = this.pick();
      f = this.rng.int(this.c.files);
    }
    if (!this.feasible(op, f)) op = 'read';
    this.setCode(op);
    this.counts[op] = (this.counts[op] ?? 0) + 1;
    try {
      this.run(op, f);
    } catch (e) {
      if (e instanceof Stop) return false;
      if ((e as NodeJS.ErrnoException).code === undefined) throw e;
      this.fail({ kind: 'error', what: `${op} on f${f} failed: ${code(e)} (${(e as Error).message})`, errno: code(e), file: `f${f}`, path: this.paths[f] });
      return false;
    }
    return true;
  }

  private pick(): FsxOp {
    return this.pickTable[this.rng.int(this.pickTable.length)];
  }

  private feasible(op: FsxOp, f: number): boolean {
    const m = this.models[f];
    const bs = this.bs;
    switch (op) {
      case 'collapse': return Math.floor((m.size - 1) / bs) >= 1;
      case 'insert': return m.size > 0 && m.size + bs <= this.c.maxSize;
      case 'copy': return this.models.some((x) => x.size > 0);
      default: return true;
    }
  }

  private setCode(op: FsxOp): void {
    this.prov.opStarts(this.op, op);
  }

  private note(text: string): void {
    this.cur = `#${this.op} ${text}`;
    this.log.push(this.cur);
    if (this.log.length > 2 * LOG_KEEP) this.log.splice(0, this.log.length - LOG_KEEP);
  }

  private run(op: FsxOp, f: number): void {
    const m = this.models[f];
    const fd = this.fds[f];
    const bs = this.bs;
    const rng = this.rng;
    const aligned = rng.int(2) === 0;
    const name = `f${f}`;
    switch (op) {
      case 'write': {
        const [off, len] = this.range(this.c.maxSize, aligned);
        const { data, how } = this.data(f, off, len);
        this.note(`write ${name} ${hex(off)}+${hex(len)} ${how}${off + len > m.size ? ` (size ${hex(m.size)} -> ${hex(off + len)})` : ''}`);
        for (let done = 0; done < len;) done += fs.writeSync(fd, data, done, len - done, off + done);
        m.write(off, data, this.op);
        return;
      }
      case 'read': {
        let off: number;
        let len: number;
        if (m.size === 0 || rng.int(10) === 0) {
          // Across or beyond EOF: the read must stop at the size.
          off = rng.int(m.size + bs);
          len = 1 + rng.int(this.c.maxOpLen);
        } else {
          [off, len] = this.range(m.size, aligned);
        }
        this.note(`read ${name} ${hex(off)}+${hex(len)}`);
        this.checkSize(f);
        const buf = Buffer.alloc(len);
        const got = fs.readSync(fd, buf, 0, len, off);
        this.check(f, 'read', off, buf.subarray(0, got), Math.max(0, Math.min(len, m.size - off)));
        return;
      }
      case 'mapread': {
        if (m.size === 0) {
          this.note(`mapread ${name} (empty file: nothing to map)`);
          this.checkSize(f);
          return;
        }
        const [off, len] = this.range(m.size, aligned);
        const mapLen = Math.ceil(m.size / PAGE) * PAGE;
        this.note(`mapread ${name} ${hex(off)}+${hex(len)} (map 0+${hex(mapLen)})`);
        this.checkSize(f);
        const map = sys().mmap(fd, 0, mapLen, PROT_READ, MAP_SHARED);
        let got: Buffer;
        let tail: Buffer;
        try {
          got = map.read(off, len);
          tail = map.read(m.size, mapLen - m.size);
        } finally {
          map.munmap();
        }
        this.check(f, 'mapped read', off, got, len);
        this.check(f, 'mapped read of the EOF page (past EOF must read as zeros)', m.size, tail, tail.length);
        return;
      }
      case 'mapwrite': {
        const [off, len] = this.range(this.c.maxSize, aligned);
        const { data, how } = this.data(f, off, len);
        const grow = off + len > m.size;
        this.note(`mapwrite ${name} ${hex(off)}+${hex(len)} ${how}${grow ? ` (ftruncate ${hex(m.size)} -> ${hex(off + len)} first)` : ''}, msync`);
        // As before every mapping: a size the kernel has wrong would end in SIGBUS, not in a report.
        this.checkSize(f);
        if (grow) {
          fs.ftruncateSync(fd, off + len);
          m.resize(off + len, this.op);
        }
        const map = sys().mmap(fd, 0, Math.ceil((off + len) / PAGE) * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED);
        try {
          map.write(off, data);
          map.msync(off, len, MS_SYNC);
        } finally {
          map.munmap();
        }
        m.write(off, data, this.op);
        return;
      }
      case 'dread': {
        const a = Math.max(PAGE, bs);
        const off = rng.int(Math.ceil(m.size / a) + 1) * a;
        const len = (1 + rng.int(Math.max(1, Math.floor(this.c.maxOpLen / a)))) * a;
        this.note(`dread ${name} ${hex(off)}+${hex(len)} (O_DIRECT)`);
        this.checkSize(f);
        const d = sys().openDirect(this.paths[f], fs.constants.O_RDONLY);
        let got: Buffer;
        try {
          got = sys().preadDirect(d, len, off);
        } finally {
          fs.closeSync(d);
        }
        this.check(f, 'O_DIRECT read', off, got, Math.max(0, Math.min(len, m.size - off)));
        return;
      }
      case 'truncate': {
        const n = rng.int(3) === 0 ? rng.int(Math.floor(this.c.maxSize / bs) + 1) * bs : rng.int(this.c.maxSize + 1);
        this.note(`truncate ${name} ${hex(m.size)} -> ${hex(n)}`);
        fs.ftruncateSync(fd, n);
        m.resize(n, this.op);
        return;
      }
      case 'falloc':
      case 'falloc_keep':
      case 'zero': {
        const [off, len] = this.range(this.c.maxSize, aligned);
        const mode = op === 'falloc' ? 0 : op === 'falloc_keep' ? FALLOC.KEEP_SIZE : FALLOC.ZERO_RANGE;
        const grows = mode !== FALLOC.KEEP_SIZE && off + len > m.size;
        this.note(`${op} ${name} ${hex(off)}+${hex(len)}${grows ? ` (size ${hex(m.size)} -> ${hex(off + len)})` : ''}`);
        sys().fallocate(fd, mode, off, len);
        if (op === 'zero') m.zero(off, off + len, this.op);
        if (grows) m.resize(off + len, this.op);
        return;
      }
      case 'punch':
      case 'zero_keep': {
        // Mostly inside the file, sometimes across or past EOF.
        const [off, len] = this.range(m.size > 0 && rng.int(5) > 0 ? m.size : this.c.maxSize, aligned);
        this.note(`${op} ${name} ${hex(off)}+${hex(len)}`);
        sys().fallocate(fd, op === 'punch' ? FALLOC.PUNCH_HOLE | FALLOC.KEEP_SIZE : FALLOC.ZERO_RANGE | FALLOC.KEEP_SIZE, off, len);
        m.zero(off, off + len, this.op);
        return;
      }
      case 'collapse': {
        // ext4's and XFS's rule: off + len < size.
        const avail = Math.floor((m.size - 1) / bs);
        const lb = 1 + rng.int(Math.min(avail, Math.max(1, Math.floor(this.c.maxOpLen / bs))));
        const ob = rng.int(avail - lb + 1);
        const [off, len] = [ob * bs, lb * bs];
        this.note(`collapse ${name} ${hex(off)}+${hex(len)} (size ${hex(m.size)} -> ${hex(m.size - len)})`);
        this.shift(fd, 'collapse', off, len);
        m.collapse(off, len, this.op);
        return;
      }
      case 'insert': {
        const ob = rng.int(Math.ceil(m.size / bs));
        const room = Math.floor((this.c.maxSize - m.size) / bs);
        const lb = 1 + rng.int(Math.min(room, Math.max(1, Math.floor(this.c.maxOpLen / bs))));
        const [off, len] = [ob * bs, lb * bs];
        this.note(`insert ${name} ${hex(off)}+${hex(len)} (size ${hex(m.size)} -> ${hex(m.size + len)})`);
        this.shift(fd, 'insert', off, len);
        m.insert(off, len, this.op);
        return;
      }
      case 'copy':
        this.copy(aligned);
        return;
      case 'fsync':
        this.note(`fsync ${name}`);
        fs.fsyncSync(fd);
        return;
      case 'reopen':
        this.note(`reopen ${name} (close, open)`);
        fs.closeSync(fd);
        this.fds[f] = -1;
        this.fds[f] = fs.openSync(this.paths[f], 'r+');
        return;
      case 'seek':
        this.seek(f, rng.int(2) === 0 ? SEEK_DATA : SEEK_HOLE);
        return;
    }
  }

  /** [off, len] with off + len <= limit (limit >= 1); block-aligned when asked and possible. */
  private range(limit: number, aligned: boolean): [number, number] {
    const bs = this.bs;
    const rng = this.rng;
    const small = rng.int(2) === 0;
    if (aligned && limit >= bs) {
      const nb = Math.floor(limit / bs);
      const lb = 1 + rng.int(Math.min(nb, small ? 2 : Math.max(1, Math.floor(this.c.maxOpLen / bs))));
      return [rng.int(nb - lb + 1) * bs, lb * bs];
    }
    const len = 1 + rng.int(Math.min(limit, small ? 2 * bs : this.c.maxOpLen));
    return [rng.int(limit - len + 1), len];
  }

  /** Write data: block stamps when [off, off + len) is block-aligned, random bytes otherwise. */
  private data(f: number, off: number, len: number): { data: Buffer; how: string } {
    const bs = this.bs;
    if (off % bs === 0 && len % bs === 0) {
      const g = this.prov.newGeneration(this.op);
      const buf = Buffer.allocUnsafe(len);
      for (let k = 0; k < len / bs; k++) stampBlock({ file: FILE_ID_BASE + f, block: off / bs + k, gen: g }, bs, buf, k * bs);
      return { data: buf, how: `stamped gen ${g}` };
    }
    return { data: randomBytes(this.rng.int(2 ** 31), len), how: 'random' };
  }

  private shift(fd: number, kind: 'collapse' | 'insert', off: number, len: number): void {
    if (this.probed.shiftVia === 'ioctl') {
      sys().ioctl(fd, kind === 'collapse' ? PAGEFS_IOC_COLLAPSE_RANGE : PAGEFS_IOC_INSERT_RANGE, encodeRange(off, len));
      // The ioctl's documented contract: the daemon cannot lower the kernel's cached size,
      // so a collapse is followed by a stat (an insert raises it by itself).
      if (kind === 'collapse') fs.fstatSync(fd);
    } else {
      sys().fallocate(fd, kind === 'collapse' ? FALLOC.COLLAPSE_RANGE : FALLOC.INSERT_RANGE, off, len);
    }
  }

  private copy(aligned: boolean): void {
    const rng = this.rng;
    const bs = this.bs;
    const n = this.c.files;
    const withData = this.models.map((m, i) => (m.size > 0 ? i : -1)).filter((i) => i >= 0);
    const s = withData[rng.int(withData.length)];
    const d = n > 1 && rng.int(2) === 0 ? (s + 1 + rng.int(n - 1)) % n : s;
    const src = this.models[s];
    const dst = this.models[d];
    let soff = 0;
    let doff = 0;
    let len = 0;
    let found = false;
    for (let tries = 0; tries < 16 && !found; tries++) {
      if (aligned && src.size >= bs) {
        soff = rng.int(Math.ceil(src.size / bs)) * bs;
        len = (1 + rng.int(Math.max(1, Math.floor(this.c.maxOpLen / bs)))) * bs;
      } else {
        soff = rng.int(src.size);
        len = 1 + rng.int(this.c.maxOpLen);
      }
      // Mostly within the source; sometimes past its EOF, where the kernel stops the copy.
      if (rng.int(4) > 0) len = Math.min(len, src.size - soff);
      len = Math.min(len, this.c.maxSize);
      const room = this.c.maxSize - len;
      doff = aligned ? rng.int(Math.floor(room / bs) + 1) * bs : rng.int(room + 1);
      // The same file: the ranges may not overlap (EINVAL).
      found = s !== d || doff + len <= soff || soff + len <= doff;
    }
    const expect = Math.max(0, Math.min(len, src.size - soff));
    const grows = doff + expect > dst.size;
    this.note(`copy f${s} ${hex(soff)}+${hex(len)} -> f${d} ${hex(doff)}${expect < len ? ` (source EOF: ${hex(expect)} bytes)` : ''}${grows ? ` (f${d} size ${hex(dst.size)} -> ${hex(doff + expect)})` : ''}`);
    if (!found) {
      // No non-overlapping placement within the file: leave it as a no-op on the model.
      this.cur += ' [no room: skipped]';
      this.log[this.log.length - 1] = this.cur;
      return;
    }
    let done = 0;
    while (done < expect) {
      const got = sys().copyFileRange(this.fds[s], soff + done, this.fds[d], doff + done, len - done, 0);
      if (got <= 0) break;
      done += got;
    }
    if (done !== expect) {
      this.fail({ kind: 'copy', what: `copy_file_range copied ${done} bytes where the source has ${expect} from offset ${hex(soff)}`, file: `f${d}`, path: this.paths[d] });
      throw new Stop();
    }
    dst.write(doff, Buffer.from(src.data.subarray(soff, soff + expect)), this.op);
  }

  private seek(f: number, whence: number): void {
    const m = this.models[f];
    const bs = this.bs;
    const x = this.rng.int(m.size + bs);
    const name = whence === SEEK_DATA ? 'SEEK_DATA' : 'SEEK_HOLE';
    this.note(`seek f${f} ${name} from ${hex(x)}`);
    let p: number | 'ENXIO';
    try {
      p = sys().lseek(this.fds[f], x, whence);
    } catch (e) {
      if (code(e) !== 'ENXIO') throw e;
      p = 'ENXIO';
    }
    const firstData = (a: number, b: number) => {
      for (let i = a; i < b; i++) if (m.data[i] !== 0) return i;
      return -1;
    };
    let bad = '';
    if (x >= m.size) {
      if (p !== 'ENXIO') bad = `at or past EOF (size ${hex(m.size)}) it must fail with ENXIO, it returned ${hex(p)}`;
    } else if (whence === SEEK_DATA) {
      const end = p === 'ENXIO' ? m.size : p;
      const d = firstData(x, end);
      if (p !== 'ENXIO' && (p < x || p >= m.size)) bad = `returned ${hex(p)}, outside [${hex(x)}, size ${hex(m.size)})`;
      else if (d >= 0) bad = `returned ${p === 'ENXIO' ? 'ENXIO' : hex(p)}, skipping data at ${hex(d)} (model byte ${hex(m.data[d])}, set by ${this.prov.setBy(m.prov[d])})`;
    } else if (p === 'ENXIO' || p < x || p > m.size) {
      bad = `returned ${p === 'ENXIO' ? 'ENXIO' : hex(p)}, outside [${hex(x)}, size ${hex(m.size)}]`;
    } else if (p < m.size) {
      // A hole reads as zeros, at least to the end of its block.
      const d = firstData(p, Math.min(m.size, (Math.floor(p / bs) + 1) * bs));
      if (d >= 0) bad = `reported a hole at ${hex(p)}, but the model has data at ${hex(d)} (byte ${hex(m.data[d])}, set by ${this.prov.setBy(m.prov[d])})`;
    }
    if (bad) {
      this.fail({ kind: 'seek', what: `lseek ${name} from ${hex(x)} on f${f}: ${bad}`, file: `f${f}`, path: this.paths[f] });
      throw new Stop();
    }
  }

  // ---- checks --------------------------------------------------------------------

  private checkSize(f: number): void {
    const st = fs.fstatSync(this.fds[f]);
    if (st.size !== this.models[f].size) {
      this.fail({ kind: 'size', what: `f${f} has size ${hex(st.size)} (${st.size}), the model ${hex(this.models[f].size)} (${this.models[f].size})`, file: `f${f}`, path: this.paths[f] });
      throw new Stop();
    }
  }

  /** Compares what a read returned at `off` with the model's `expectedLen` bytes there. */
  private check(f: number, what: string, off: number, actual: Buffer, expectedLen: number): void {
    const m = this.models[f];
    const expected = m.data.subarray(off, off + expectedLen);
    this.bytesChecked += Math.min(actual.length, expectedLen);
    if (actual.length === expectedLen && actual.equals(expected)) return;
    const { first, last, differing } = firstDifference(expected, actual);
    const fileName = (id: number) => (id >= FILE_ID_BASE && id < FILE_ID_BASE + this.c.files ? `f${id - FILE_ID_BASE}` : `file id ${id} (not one of this run's files)`);
    const o = off + first;
    this.fail({
      kind: 'data',
      what: `${what} of f${f} at ${hex(off)}+${hex(expectedLen)} returned ${actual.length === expectedLen ? 'bad data' : `${actual.length} bytes where ${expectedLen} were expected${differing > Math.abs(actual.length - expectedLen) ? ', and bad data' : ''}`}`,
      file: `f${f}`, path: this.paths[f],
      offset: o, end: off + last + 1, differing,
      readOffset: off, expectedLength: expectedLen, actualLength: actual.length,
      expectedHex: expected.subarray(first, Math.min(expectedLen, first + 32)).toString('hex'),
      actualHex: actual.subarray(first, Math.min(actual.length, first + 32)).toString('hex'),
      expected: `${this.prov.whose(m.data, o, fileName)}; this offset last set by ${this.prov.setBy(m.prov[o] ?? 0)}`,
      actual: this.prov.whose(actual, first, fileName),
    });
    throw new Stop();
  }

  /** Reads every file whole (after a remount, and at the end) and checks it. */
  verifyAll(label: string): boolean {
    if (this.failure) return false;
    for (let f = 0; f < this.c.files; f++) {
      this.cur = `${label} (after op #${this.op}): read f${f} whole`;
      try {
        this.checkSize(f);
        const m = this.models[f];
        const buf = Buffer.alloc(m.size + this.bs);
        let got = 0;
        while (got < buf.length) {
          const n = fs.readSync(this.fds[f], buf, got, buf.length - got, got);
          if (n <= 0) break;
          got += n;
        }
        this.check(f, label, 0, buf.subarray(0, got), m.size);
      } catch (e) {
        if (e instanceof Stop) return false;
        if ((e as NodeJS.ErrnoException).code === undefined) throw e;
        this.fail({ kind: 'error', what: `${label}: reading f${f} failed: ${code(e)}`, errno: code(e), file: `f${f}`, path: this.paths[f] });
        return false;
      }
    }
    return true;
  }

  /** Records a failure that is not the filesystem's data (a remount that failed). */
  failOutside(what: string): void {
    if (!this.failure) this.fail({ kind: 'error', what });
  }

  private fail(x: Omit<FsxFailure, 'op' | 'opText' | 'log'>): void {
    this.failure = { ...x, op: this.op, opText: this.cur, log: this.logTail(20) };
  }
}
