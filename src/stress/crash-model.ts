/**
 * The crash checker's model (crash.ts runs the rounds): replays a round's operation log
 * and decides, block by block and name by name, which contents are legal after a crash
 * (what was fsynced, or the result of any later operation) and which are violations.
 * Pure: no I/O of the mount, so tests can feed it hand-written logs.
 */
import crypto from 'node:crypto';
import { stampBlock, classify, describeStamp, STAMP_LEN } from './stamp.js';
import { type CrashLogLine, stampIdOf, stampFileName } from './crash-worker.js';

type Content = { gen: number; v: number } | { raw: Buffer };
const ZERO: Content = { gen: 0, v: 0 };

function keyOf(c: Content): string {
  if ('raw' in c) return 'r' + crypto.createHash('sha1').update(c.raw).digest('hex');
  return c.v === 0 ? 'z' : `${c.gen}:${c.v}`;
}

function cut(c: Content, at: number, bs: number): Content {
  if (at >= bs) return c;
  if (at <= 0) return ZERO;
  if ('raw' in c) {
    const raw = Buffer.from(c.raw);
    raw.fill(0, at);
    return { raw };
  }
  return c.v <= at ? c : { gen: c.gen, v: at };
}

interface Cand {
  c: Content;
  why: string;
}

interface Event {
  what: string;
  lo: number;
  hi: number;
}

/** One inode as the model sees it: its current content and what it may hold after a crash. */
class Image {
  size = 0;
  blocks: Content[];
  sizes = new Map<number, string>();
  cands: Map<string, Cand>[];
  events: Event[] = [];

  constructor(readonly nblocks: number, readonly bs: number) {
    this.blocks = Array.from({ length: nblocks }, () => ZERO);
    this.cands = Array.from({ length: nblocks }, () => new Map([['z', { c: ZERO, why: 'the baseline' }]]));
    this.sizes.set(0, 'the baseline');
  }

  clone(): Image {
    const m = new Image(this.nblocks, this.bs);
    m.size = this.size;
    m.blocks = [...this.blocks];
    m.sizes = new Map(this.sizes);
    m.cands = this.cands.map((s) => new Map(s));
    m.events = [...this.events];
    return m;
  }

  /** The content is certain: the baseline, or the state at a completed fsync. */
  settle(why: string): void {
    this.sizes = new Map([[this.size, why]]);
    for (let b = 0; b < this.nblocks; b++) this.cands[b] = new Map([[keyOf(this.blocks[b]), { c: this.blocks[b], why }]]);
    this.events = [{ what: why, lo: 0, hi: this.nblocks }];
  }

  private set(b: number, c: Content, why: string): void {
    if (b >= this.nblocks) return;
    this.blocks[b] = c;
    const k = keyOf(c);
    if (!this.cands[b].has(k)) this.cands[b].set(k, { c, why });
  }

  write(b: number, nb: number, gen: number, why: string): void {
    for (let k = 0; k < nb; k++) this.set(b + k, { gen, v: this.bs }, why);
    const end = (b + nb) * this.bs;
    if (end > this.size) this.size = end;
    // Any earlier legal size below `end` becomes `end` if this write is kept.
    if ([...this.sizes.keys()].some((s) => s < end) && !this.sizes.has(end)) this.sizes.set(end, why);
    this.events.push({ what: why, lo: b, hi: b + nb });
  }

  /** ftruncate to t: the model keeps content past the size zero, so up and down are the same cut. */
  truncate(t: number, why: string): void {
    const first = Math.floor(t / this.bs);
    for (let b = first; b < this.nblocks; b++) {
      const at = t - b * this.bs;
      this.blocks[b] = cut(this.blocks[b], at, this.bs);
      const next = new Map(this.cands[b]);
      for (const { c } of this.cands[b].values()) {
        const cc = cut(c, at, this.bs);
        const k = keyOf(cc);
        if (!next.has(k)) next.set(k, { c: cc, why });
      }
      this.cands[b] = next;
    }
    this.size = t;
    if (!this.sizes.has(t)) this.sizes.set(t, why);
    this.events.push({ what: why, lo: first, hi: this.nblocks });
  }

  punch(b: number, nb: number, why: string): void {
    for (let k = 0; k < nb; k++) this.set(b + k, ZERO, why);
    this.events.push({ what: why, lo: b, hi: b + nb });
  }

  static exact(nblocks: number, bs: number, gen: number, nb: number, size: number, why: string): Image {
    const m = new Image(nblocks, bs);
    for (let b = 0; b < Math.min(nb, nblocks); b++) m.blocks[b] = cut({ gen, v: bs }, size - b * bs, bs);
    m.size = size;
    m.settle(why);
    return m;
  }
}

/** What a file name may refer to: the alternatives left by name changes not yet made durable by a directory fsync; the last is current. */
export interface NameState {
  alts: (Image | null)[];
}

// ---------------------------------------------------------------------------------------
// Comparing what is read with the model.

function expectedBytes(f: number, b: number, c: Content, bs: number): Buffer {
  if ('raw' in c) return c.raw;
  const buf = Buffer.alloc(bs);
  if (c.v > 0) {
    stampBlock({ file: stampIdOf(f), block: b, gen: c.gen }, bs, buf, 0);
    buf.fill(0, c.v);
  }
  return buf;
}

function sameAs(actual: Buffer, f: number, b: number, c: Content, bs: number): boolean {
  const e = expectedBytes(f, b, c, bs);
  return actual.equals(e.subarray(0, actual.length));
}

function describeContent(f: number, b: number, c: Content, bs: number): string {
  if ('raw' in c) return 'the bytes the previous check read there';
  if (c.v === 0) return 'zeros';
  const s = describeStamp({ file: stampIdOf(f), block: b, gen: c.gen }, stampFileName);
  return c.v < bs ? `${s} in its first ${c.v} bytes, zeros after` : s;
}

/** Names what a block read back holds: zeros, a stamp (possibly cut short, zeros after), or neither. */
export function describeBytes(actual: Buffer, bs: number): string {
  if (actual.length === 0) return 'nothing (past the end of the file)';
  let zero = true;
  for (let i = 0; i < actual.length; i++) if (actual[i] !== 0) { zero = false; break; }
  if (zero) return 'zeros';
  const head = Buffer.alloc(STAMP_LEN);
  actual.copy(head, 0, 0, Math.min(STAMP_LEN, actual.length));
  const seen = classify(head);
  if (seen.kind !== 'stamp') return 'bytes that are no stamp';
  const full = stampBlock(seen.stamp, bs);
  let p = 0;
  while (p < actual.length && actual[p] === full[p]) p++;
  const name = describeStamp(seen.stamp, stampFileName);
  if (p === actual.length) return p < bs ? `${name} (the ${p} bytes before the end of the file)` : name;
  let rest = true;
  for (let i = p; i < actual.length; i++) if (actual[i] !== 0) { rest = false; break; }
  return rest ? `${name} in its first ${p} bytes, zeros after` : `a torn block starting with ${name}, ${p} bytes of it`;
}

export interface Mismatch {
  kind: 'block' | 'size' | 'missing' | 'unexpected-file' | 'unexpected-name' | 'stale-tail';
  offset?: number;
  block?: number;
  size?: number;
  expected: string;
  actual: string;
  actualHex?: string;
  history: string[];
}

export function historyOf(m: Image, lo: number, hi: number): string[] {
  return m.events.filter((e) => e.lo < hi && e.hi > lo).map((e) => e.what).slice(-12);
}

/** Compares one file's bytes (null: absent) with one alternative; returns the mismatches and, if none, the content per block. */
function compare(f: number, data: Buffer | null, m: Image | null, bs: number): { bad: Mismatch[]; seen?: Image; older: number } {
  if (m === null) {
    if (data === null) return { bad: [], older: 0 };
    return { bad: [{ kind: 'unexpected-file', size: data.length, expected: 'no such file', actual: `a file of ${data.length} bytes`, history: [] }], older: 0 };
  }
  if (data === null) return { bad: [{ kind: 'missing', expected: `a file of ${m.size} bytes`, actual: 'no such file', history: historyOf(m, 0, m.nblocks) }], older: 0 };
  let older = 0;
  const bad: Mismatch[] = [];
  if (!m.sizes.has(data.length)) {
    const list = [...m.sizes.entries()].map(([s, why]) => `${s} (${why})`).join(', ');
    bad.push({ kind: 'size', size: data.length, expected: `size one of ${list}`, actual: `size ${data.length}`, history: historyOf(m, 0, m.nblocks) });
  }
  const seen = new Image(m.nblocks, bs);
  const n = Math.ceil(data.length / bs);
  for (let b = 0; b < n; b++) {
    const actual = data.subarray(b * bs, Math.min(data.length, (b + 1) * bs));
    const cands: Cand[] = b < m.nblocks ? [...m.cands[b].values()] : [{ c: ZERO, why: 'past the largest file size' }];
    const hit = cands.find(({ c }) => sameAs(actual, f, b, c, bs));
    if (hit) {
      if (b < m.nblocks) {
        seen.blocks[b] = cut(hit.c, actual.length, bs);
        if (keyOf(hit.c) !== keyOf(m.blocks[b])) older++;
      }
      continue;
    }
    if (b < m.nblocks) {
      const raw = Buffer.alloc(bs);
      actual.copy(raw);
      seen.blocks[b] = { raw };
    }
    bad.push({
      kind: 'block', offset: b * bs, block: b,
      expected: cands.map(({ c, why }) => `${describeContent(f, b, c, bs)} (${why})`).join('; or '),
      actual: describeBytes(actual, bs), actualHex: actual.subarray(0, STAMP_LEN).toString('hex'),
      history: historyOf(m, b, b + 1),
    });
  }
  seen.size = data.length;
  return { bad, seen, older };
}

export interface ReplayStats {
  ops: number;
  opCounts: Record<string, number>;
  fsyncs: number;
  dirFsyncs: number;
  /** One past the largest generation the log names. */
  nextGen: number;
}

export interface CheckOutcome {
  /** Per file slot with a mismatch: those of the alternative that came closest. */
  bad: { f: number; mismatches: Mismatch[] }[];
  checkedBlocks: number;
  /** Blocks that legally held a state older than the last operation on them (un-synced operations lost). */
  olderBlocks: number;
  /** Files that legally were an earlier file of their name (a name change before its directory fsync lost). */
  olderNames: number;
}

/**
 * The model of the checker's files, pure (no I/O): the baseline (what each slot held when
 * the round started; null: no such file), the replay of a round's log into what each name
 * may hold after a crash at its end, and the comparison with what was read back, which
 * also makes that the new baseline.
 */
export class CrashModel {
  baseline: (Image | null)[];

  constructor(readonly files: number, readonly nblocks: number, readonly bs: number) {
    this.baseline = Array.from({ length: files }, () => null);
  }

  /** What each name must hold when nothing happened since the baseline. */
  unchanged(): NameState[] {
    return this.baseline.map((m) => ({ alts: [m] }));
  }

  replay(lines: CrashLogLine[]): { names: NameState[]; stats: ReplayStats } {
    const { nblocks, bs } = this;
    const stats: ReplayStats = { ops: 0, opCounts: {}, fsyncs: 0, dirFsyncs: 0, nextGen: 1 };
    const names: NameState[] = this.baseline.map((m) => ({ alts: [m === null ? null : m.clone()] }));
    const tmp = new Map<number, Image>();
    const cur = (f: number): Image => {
      const alts = names[f].alts;
      let m = alts[alts.length - 1];
      if (m === null) {
        // The worker never works on a name it has not opened or created.
        m = new Image(nblocks, bs);
        alts.push(m);
      }
      return m;
    };
    for (const l of lines) {
      if ('fsynced' in l) {
        cur(l.fsynced).settle(`${l.data ? 'fdatasync' : 'fsync'} after op ${l.after}`);
        stats.fsyncs++;
      } else if ('tmpsynced' in l) {
        stats.fsyncs++;
      } else if ('dirsynced' in l) {
        for (const s of names) s.alts = [s.alts[s.alts.length - 1]];
        stats.dirFsyncs++;
      } else if ('n' in l) {
        stats.ops++;
        stats.opCounts[l.op] = (stats.opCounts[l.op] ?? 0) + 1;
        if ('gen' in l && l.gen >= stats.nextGen) stats.nextGen = l.gen + 1;
        const why = `op ${l.n} ${l.op}`;
        switch (l.op) {
          case 'open':
            if (names[l.f].alts[names[l.f].alts.length - 1] === null) names[l.f].alts.push(new Image(nblocks, bs));
            break;
          case 'write': cur(l.f).write(l.b, l.nb, l.gen, `${why} of blocks ${l.b}..${l.b + l.nb - 1}, generation ${l.gen}`); break;
          case 'truncate': cur(l.f).truncate(l.size, `${why} to ${l.size}`); break;
          case 'punch': cur(l.f).punch(l.b, l.nb, `${why} of blocks ${l.b}..${l.b + l.nb - 1}`); break;
          case 'tmp':
            tmp.set(l.f, Image.exact(nblocks, bs, l.gen, l.nb, l.size, `the temp file of ${why} (${l.nb} blocks of generation ${l.gen}, size ${l.size}), fsynced and renamed over`));
            break;
          case 'rename': {
            // The worker renames only after the temp file's fsync returned.
            const t = tmp.get(l.f);
            if (!t) throw new Error(`crash log: op ${l.n} renames a temp file it never wrote`);
            names[l.f].alts.push(t);
            break;
          }
          case 'unlink': names[l.f].alts.push(null); break;
          case 'create': names[l.f].alts.push(new Image(nblocks, bs)); break;
          case 'orphan-write': break;
        }
      }
    }
    return { names, stats };
  }

  /** Compares the files read back (null: no such file) with `names`; what was read becomes the baseline. */
  check(names: NameState[], data: (Buffer | null)[], settledWhy: string): CheckOutcome {
    const out: CheckOutcome = { bad: [], checkedBlocks: 0, olderBlocks: 0, olderNames: 0 };
    const next: (Image | null)[] = [];
    for (let f = 0; f < this.files; f++) {
      const alts = names[f].alts;
      let best: Mismatch[] | null = null;
      let seen: Image | null | undefined;
      // The current alternative first: it is the likeliest.
      for (let i = alts.length - 1; i >= 0; i--) {
        const r = compare(f, data[f], alts[i], this.bs);
        if (r.bad.length === 0) {
          seen = r.seen ?? null;
          out.olderBlocks += r.older;
          if (i < alts.length - 1) out.olderNames++;
          break;
        }
        if (best === null || r.bad.length < best.length) best = r.bad;
      }
      if (seen === undefined) {
        out.bad.push({ f, mismatches: best! });
        // Carry on from what is there; the blocks no model state explains are kept as raw bytes.
        seen = data[f] === null ? null : compare(f, data[f], new Image(this.nblocks, this.bs), this.bs).seen!;
      }
      if (data[f]) out.checkedBlocks += Math.ceil(data[f]!.length / this.bs);
      seen?.settle(settledWhy);
      next.push(seen);
    }
    this.baseline = next;
    return out;
  }
}

// ---------------------------------------------------------------------------------------
// Processes, mounts, the CLI.
