#!/usr/bin/env node
/**
 * One worker of the load test's metadata storm (scripts/load.mjs starts a few): in its
 * own directory tree DIR/stormID/d0..d{DIRS-1}, for SECONDS, random creates (with small
 * contents), rewrites, renames (across directories, sometimes over another of its
 * files), hard links, stats, unlinks and directory listings. It keeps a model of what
 * it made and checks every answer against it: a renamed or linked file must have the
 * contents written under its first name, nlink and size must match, a listing must hold
 * exactly the model's names. Nobody else touches its tree, so any difference is an error
 * of the filesystem.
 *
 * Prints a JSON line { ops: {kind: n}, errors, messages } every second and a last one
 * with "done": true. Exit 0 when no error was seen, 1 otherwise.
 *   node scripts/load/storm.mjs DIR ID SECONDS SEED
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { Rng } = await import(path.join(ROOT, 'dist', 'stress', 'rng.js'));

const [base, id, secondsArg, seedArg] = process.argv.slice(2);
const seconds = Number(secondsArg);
const seed = Number(seedArg);
if (!base || !id || !(seconds > 0) || !Number.isInteger(seed)) {
  process.stderr.write('usage: node scripts/load/storm.mjs DIR ID SECONDS SEED\n');
  process.exit(2);
}

const DIRS = 4;
/** Files the model holds at most; above it the storm unlinks more than it creates. */
const MAX_NAMES = 400;
const rng = new Rng(seed);
const top = path.join(base, `storm${id}`);
const dirs = Array.from({ length: DIRS }, (_, i) => path.join(top, `d${i}`));
fs.mkdirSync(top);
for (const d of dirs) fs.mkdirSync(d);

/** name (full path) -> file { data: Buffer, names: Set<string> }; hard links share a file. */
const names = new Map();
const ops = {};
let errors = 0;
const messages = [];
let serial = 0;

const fail = (msg) => {
  errors++;
  if (messages.length < 20) messages.push(msg);
};
const count = (k) => (ops[k] = (ops[k] ?? 0) + 1);
const pick = (arr) => arr[rng.int(arr.length)];
const freshName = () => path.join(pick(dirs), `f${id}-${serial++}`);
const someName = () => (names.size ? pick([...names.keys()]) : null);
const bytes = () => {
  const n = rng.int(8193);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(256);
  return b;
};

/** Runs one filesystem call; an exception is an error of the filesystem (the model says it must work). */
function attempt(what, fn) {
  try {
    fn();
    return true;
  } catch (e) {
    fail(`${what}: ${e.code ?? ''} ${e.message}`);
    return false;
  }
}

function checkContents(name, file, what) {
  let got;
  if (!attempt(`${what}: read ${name}`, () => (got = fs.readFileSync(name)))) return;
  if (!got.equals(file.data)) fail(`${what}: ${name} holds ${got.length} bytes that differ from the ${file.data.length} written`);
}

function checkStat(name, file, what) {
  let st;
  if (!attempt(`${what}: stat ${name}`, () => (st = fs.statSync(name)))) return;
  if (st.size !== file.data.length) fail(`${what}: ${name} has size ${st.size}, wrote ${file.data.length}`);
  if (st.nlink !== file.names.size) fail(`${what}: ${name} has nlink ${st.nlink}, expected ${file.names.size}`);
}

function gone(name, what) {
  try {
    fs.statSync(name);
    fail(`${what}: ${name} still exists`);
  } catch (e) {
    if (e.code !== 'ENOENT') fail(`${what}: stat ${name}: ${e.code} (expected ENOENT)`);
  }
}

const OPS = {
  create() {
    const name = freshName();
    const data = bytes();
    if (!attempt(`create ${name}`, () => {
      const fd = fs.openSync(name, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
      try { fs.writeSync(fd, data); } finally { fs.closeSync(fd); }
    })) return;
    names.set(name, { data, names: new Set([name]) });
  },
  rewrite() {
    const name = someName();
    if (!name) return;
    const file = names.get(name);
    const data = bytes();
    if (attempt(`rewrite ${name}`, () => fs.writeFileSync(name, data))) file.data = data;
    checkContents(name, file, 'rewrite');
  },
  rename() {
    const from = someName();
    if (!from) return;
    // One time in four onto another of our names: rename replaces it atomically.
    const over = rng.int(4) === 0 ? someName() : null;
    const to = over && over !== from ? over : freshName();
    const file = names.get(from);
    if (!attempt(`rename ${from} -> ${to}`, () => fs.renameSync(from, to))) return;
    const victim = names.get(to);
    // Renaming a name onto another link of the same file does nothing (POSIX).
    if (victim === file) return;
    if (victim) victim.names.delete(to);
    names.delete(from);
    file.names.delete(from);
    file.names.add(to);
    names.set(to, file);
    gone(from, 'rename');
    checkContents(to, file, 'rename');
    checkStat(to, file, 'rename');
  },
  link() {
    const from = someName();
    if (!from) return;
    const file = names.get(from);
    const to = freshName();
    if (!attempt(`link ${from} -> ${to}`, () => fs.linkSync(from, to))) return;
    file.names.add(to);
    names.set(to, file);
    checkStat(to, file, 'link');
    checkContents(to, file, 'link');
  },
  stat() {
    const name = someName();
    if (name) checkStat(name, names.get(name), 'stat');
  },
  unlink() {
    const name = someName();
    if (!name) return;
    const file = names.get(name);
    if (!attempt(`unlink ${name}`, () => fs.unlinkSync(name))) return;
    names.delete(name);
    file.names.delete(name);
    gone(name, 'unlink');
    const other = file.names.values().next().value;
    if (other) {
      checkStat(other, file, 'unlink (other link)');
      checkContents(other, file, 'unlink (other link)');
    }
  },
  readdir() {
    const d = pick(dirs);
    let got;
    if (!attempt(`readdir ${d}`, () => (got = fs.readdirSync(d)))) return;
    const want = [...names.keys()].filter((n) => path.dirname(n) === d).map((n) => path.basename(n)).sort();
    got.sort();
    if (got.length !== want.length || got.some((n, i) => n !== want[i])) {
      fail(`readdir ${d}: ${got.length} names, the model has ${want.length}` +
        ` (extra: ${got.filter((n) => !want.includes(n)).slice(0, 3).join(' ')}; missing: ${want.filter((n) => !got.includes(n)).slice(0, 3).join(' ')})`);
    }
  },
};
// Weights: creates and unlinks balance around MAX_NAMES; listings are costly, so rare.
const MIX = [['create', 6], ['rewrite', 2], ['rename', 4], ['link', 2], ['stat', 6], ['unlink', 5], ['readdir', 1]];
const total = MIX.reduce((t, [, w]) => t + w, 0);
function nextOp() {
  if (names.size >= MAX_NAMES) return rng.int(2) ? 'unlink' : 'rename';
  let r = rng.int(total);
  for (const [k, w] of MIX) if ((r -= w) < 0) return k;
  return 'stat';
}

const report = (done) => process.stdout.write(JSON.stringify({ id: Number(id), ops, errors, messages, files: names.size, done }) + '\n');
const end = Date.now() + seconds * 1000;
let lastReport = Date.now();
let stop = false;
process.on('SIGTERM', () => (stop = true));
while (!stop && Date.now() < end) {
  const k = nextOp();
  OPS[k]();
  count(k);
  if (Date.now() - lastReport >= 1000) {
    lastReport = Date.now();
    report(false);
    // Let the SIGTERM handler run: the loop above never yields otherwise.
    await new Promise((r) => setImmediate(r));
  }
}
// Last check: every file of the model is there with its contents.
for (const [name, file] of names) {
  checkContents(name, file, 'final');
  checkStat(name, file, 'final');
}
count('final-check');
report(true);
process.exit(errors ? 1 : 0);
