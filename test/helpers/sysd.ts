/**
 * sysd: a child process that makes syscalls on the mount for a test, with native-shim's
 * sys module (dist/sys/index.js, compiled from src/sys/index.ts), answering over a pipe.
 * Each call has a timeout after which the child is SIGKILLed, so a hung daemon fails a
 * test instead of hanging the worker (a synchronous call in the worker itself would hang
 * it past every timeout). ext4 files go through the same child, so both sides see
 * exactly the same syscalls.
 *
 * Arguments and results are JSON: BigInt arguments travel as decimal strings, buffers
 * as base64. A failed call answers its errno name (Reply.code).
 */
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { ROOT } from './mount.js';

const SYSD_SRC = String.raw`
import fs from 'node:fs';
import readline from 'node:readline';
const { sys } = await import(process.argv[1]);
const S = sys();
const maps = new Map();
let nextMap = 1;
const big = (x) => (typeof x === 'string' ? BigInt(x) : x);
const b64 = (b) => b.toString('base64');
const outcome = (fn) => { try { return fn(); } catch (e) { return e.code ?? String(e); } };
function readFully(fd, len, off) {
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, buf, got, len - got, off + got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}
const ops = {
  open: (p, flags, mode) => fs.openSync(p, flags, mode ?? 0o644),
  close: (fd) => fs.closeSync(fd),
  fallocate: (fd, mode, off, len) => S.fallocate(fd, mode, big(off), big(len)),
  lseek: (fd, off, whence) => S.lseek(fd, big(off), whence),
  seeks: (fd, offs) => offs.map((o) => [outcome(() => S.lseek(fd, big(o), 3)), outcome(() => S.lseek(fd, big(o), 4))]),
  ioctl: (fd, cmd, hex) => S.ioctl(fd, cmd, hex == null ? null : Buffer.from(hex, 'hex')),
  pwrite: (fd, data, off) => {
    const b = Buffer.from(data, 'base64');
    let done = 0;
    while (done < b.length) done += fs.writeSync(fd, b, done, b.length - done, off + done);
    return done;
  },
  pread: (fd, len, off) => b64(readFully(fd, len, off)),
  ftruncate: (fd, len) => fs.ftruncateSync(fd, len),
  fstat: (fd) => { const s = fs.fstatSync(fd); return { size: s.size, blocks: s.blocks }; },
  fsync: (fd) => fs.fsyncSync(fd),
  statfs: (p) => { const s = fs.statfsSync(p); return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree }; },
  // The whole file; with direct, through O_DIRECT (no page cache is populated).
  readFile: (p, direct) => {
    if (!direct) {
      const fd = fs.openSync(p, 'r');
      try { return b64(readFully(fd, fs.fstatSync(fd).size, 0)); } finally { fs.closeSync(fd); }
    }
    const fd = S.openDirect(p, fs.constants.O_RDONLY);
    try {
      const size = fs.fstatSync(fd).size;
      const parts = [];
      for (let off = 0; off < size; off += 1 << 20) {
        const b = S.preadDirect(fd, 1 << 20, off);
        parts.push(b);
        if (b.length < 1 << 20) break;
      }
      return b64(Buffer.concat(parts).subarray(0, size));
    } finally { fs.closeSync(fd); }
  },
  // The raw calls: any offset and length goes to the kernel as given (BigInt as a string).
  rawPread: (fd, len, off) => b64(S.pread(fd, big(len), big(off))),
  rawPwrite: (fd, data, off) => S.pwrite(fd, Buffer.from(data, 'base64'), big(off)),
  rawFtruncate: (fd, len) => S.ftruncate(fd, big(len)),
  rawTruncate: (p, len) => S.truncate(p, big(len)),
  copyFileRange: (fdIn, offIn, fdOut, offOut, len, flags) => S.copyFileRange(fdIn, offIn == null ? null : big(offIn), fdOut, offOut == null ? null : big(offOut), big(len), flags),
  mmap: (fd, off, len, prot, flags) => { const id = nextMap++; maps.set(id, S.mmap(fd, off, len, prot, flags)); return id; },
  mread: (id, off, len) => b64(maps.get(id).read(off, len)),
  munmap: (id) => { maps.get(id).munmap(); maps.delete(id); },
};
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const { id, op, args } = JSON.parse(line);
  let out;
  try {
    const v = ops[op](...args);
    out = { id, ok: true, v: v === undefined ? null : v };
  } catch (e) {
    out = { id, ok: false, code: e.code ?? 'THROW', message: String(e && e.message || e) };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
});
`;

export interface Reply { id: number; ok: boolean; v?: any; code?: string; message?: string }

export class Sysd {
  private child: ChildProcess;
  private pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private nextId = 1;
  private buf = '';
  private stderr = '';
  private exited: Promise<void>;
  private dead = '';

  constructor() {
    const sysModule = pathToFileURL(path.join(ROOT, 'dist', 'sys', 'index.js')).href;
    this.child = spawn(process.execPath, ['--input-type=module', '-e', SYSD_SRC, sysModule], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (d: string) => {
      this.buf += d;
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
        const msg = JSON.parse(this.buf.slice(0, i)) as Reply;
        this.buf = this.buf.slice(i + 1);
        const p = this.pending.get(msg.id);
        if (p) {
          this.pending.delete(msg.id);
          clearTimeout(p.timer);
          p.resolve(msg);
        }
      }
    });
    this.child.stderr!.on('data', (d) => { this.stderr += d; });
    this.child.stdin!.on('error', () => { /* the exit handler reports it */ });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, sig) => {
      this.dead = `sysd exited (${code ?? sig}): ${this.stderr.slice(0, 2000)}`;
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(this.dead));
      }
      this.pending.clear();
      resolve();
    }));
  }

  raw(op: string, args: unknown[], timeoutMs = 30_000): Promise<Reply> {
    if (this.dead) return Promise.reject(new Error(this.dead));
    const id = this.nextId++;
    const enc = args.map((a) => (typeof a === 'bigint' ? a.toString() : a));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.child.kill('SIGKILL');
        reject(new Error(`sysd: ${op}(${JSON.stringify(enc).slice(0, 200)}) did not answer in ${timeoutMs} ms (a hung mount?)`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.child.stdin!.write(JSON.stringify({ id, op, args: enc }) + '\n');
    });
  }

  /** The call's value; an errno failure throws an Error with .code. */
  async call(op: string, ...args: unknown[]): Promise<any> {
    const r = await this.raw(op, args);
    if (!r.ok) throw Object.assign(new Error(`${op}: ${r.code}: ${r.message}`), { code: r.code });
    return r.v;
  }

  /** 'OK' or the errno name. */
  async outcome(op: string, ...args: unknown[]): Promise<string> {
    const r = await this.raw(op, args);
    return r.ok ? 'OK' : r.code!;
  }

  /** Ends the child (closing every fd and mapping it holds); SIGKILL after 10 s. */
  async stop(): Promise<void> {
    if (!this.dead) this.child.stdin!.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}

