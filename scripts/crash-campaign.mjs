#!/usr/bin/env node
/**
 * A crash campaign: many kill points (one per round) of the crash-under-load checker
 * (src/stress/crash.ts) over one fresh store, with the seed printed first and a summary
 * at the end. Exit 0 when there was no violation, fsck problem, daemon error or other
 * error; 1 otherwise (the store, its daemon log and the logs of the failing rounds are
 * kept then, and their place printed).
 *
 *   node scripts/crash-campaign.mjs [--rounds 200] [--seed N] [--files 4] [--max-file-size 1048576]
 *                                   [--block-size 4096] [--keep] [--json] [-- MOUNT-ARGS...]
 *
 * Needs root (FUSE mounts) and a build (npx tsc -p .). Never leaves a mount behind.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin', 'pagefs.js');
const { runCrash } = await import(path.join(ROOT, 'dist', 'stress', 'crash.js'));

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const mountArgs = dash >= 0 ? argv.slice(dash + 1) : [];
const opts = dash >= 0 ? argv.slice(0, dash) : argv;
const get = (name, def) => {
  const i = opts.indexOf(name);
  return i >= 0 ? opts[i + 1] : def;
};
const rounds = Number(get('--rounds', '200'));
const seed = Number(get('--seed', String(Math.floor(Math.random() * 2 ** 31))));
const files = Number(get('--files', '4'));
const maxFileSize = Number(get('--max-file-size', String(1 << 20)));
const blockSize = get('--block-size', '4096');
const keep = opts.includes('--keep');
const json = opts.includes('--json');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pagefs-crash-'));
const store = path.join(dir, 'store.db');
const mp = path.join(dir, 'mnt');
fs.mkdirSync(mp);
const mk = spawnSync(process.execPath, [BIN, 'mkfs', store, '--capacity', '1G', '--block-size', blockSize], { encoding: 'utf8' });
if (mk.status !== 0) {
  process.stderr.write(`mkfs failed: ${mk.stderr}`);
  process.exit(2);
}

// Interrupted: the first signal stops the run at its next step, which unmounts (or clears the
// mount) and reports; a second one clears the mount at once and exits.
const controller = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (!controller.signal.aborted) {
      process.stderr.write(`crash campaign: ${sig}: stopping after the current step (again to stop at once)\n`);
      controller.abort();
      return;
    }
    for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const [pre, post] = line.split(' - ');
      if (!post || !post.startsWith('fuse')) continue;
      const f = pre.split(' ');
      if (f[4] !== mp) continue;
      try { fs.writeFileSync(`/sys/fs/fuse/connections/${f[2].split(':')[1]}/abort`, '1'); } catch { /* gone */ }
      spawnSync('umount', ['-l', mp]);
    }
    process.stderr.write(`crash campaign: interrupted; the store is kept in ${dir}\n`);
    process.exit(130);
  });
}

process.stdout.write(`crash campaign: seed ${seed}, ${rounds} rounds, ${files} files of at most ${maxFileSize} bytes, block size ${blockSize}, store ${store}` +
  (mountArgs.length ? `, mount args ${mountArgs.join(' ')}` : '') + '\n');
const t0 = Date.now();
const describe = (v) => `VIOLATION round ${v.round} (${v.phase}, worker seed ${v.workerSeed}) ${v.file} ${v.kind}` +
  (v.offset !== undefined ? ` at offset ${v.offset} (block ${v.block})` : '') + '\n' +
  `  expected: ${v.expected}\n  actual:   ${v.actual}${v.actualHex ? ` [${v.actualHex}]` : ''}${v.size !== undefined ? ` (file size ${v.size})` : ''}\n` +
  (v.history.length ? `  history:  ${v.history.join(' | ')}\n` : '') + (v.log ? `  log:      ${v.log}\n` : '');
let shown = 0;
let r;
try {
  r = await runCrash({
    store, mountpoint: mp, rounds, seed, files, maxFileSize, mountArgs, signal: controller.signal,
    afterRound: ({ result }) => {
      // Violations as they are found (at most 50 in all).
      for (; shown < result.violations.length && shown < 50; shown++) process.stdout.write(describe(result.violations[shown]));
    },
    onProgress: (p) => {
      if (p.round % 10 === 0 || p.round === p.rounds) {
        process.stdout.write(`  round ${p.round}/${p.rounds}: ${p.ops} ops, ${p.fsyncs} fsyncs, ${p.violations} violations, ${(p.elapsedMs / 1000).toFixed(0)} s\n`);
      }
    },
  });
} catch (e) {
  process.stderr.write(`crash campaign: stopped by an error: ${e.stack ?? e}\nstore kept in ${dir}\n`);
  process.exit(2);
}

const bad = r.violations.length + r.fsckProblems.length + r.daemonErrors.length + r.errors.length;
if (json) process.stdout.write(JSON.stringify(r) + '\n');
if (r.violations.length > shown) process.stdout.write(`(${r.violations.length - shown} more violations: run with --json)\n`);
const kinds = {};
for (const v of r.violations) kinds[`${v.phase} ${v.kind}`] = (kinds[`${v.phase} ${v.kind}`] ?? 0) + 1;
if (r.violations.length) process.stdout.write(`violations by kind: ${Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(', ')}; in ${new Set(r.violations.map((v) => v.round)).size} rounds\n`);
for (const p of r.fsckProblems) process.stdout.write(`FSCK round ${p.round} (${p.phase}), exit ${p.code}:\n  ${p.output.split('\n').join('\n  ')}\n`);
for (const l of r.daemonErrors.slice(0, 20)) process.stdout.write(`DAEMON ${l}\n`);
for (const l of r.errors.slice(0, 20)) process.stdout.write(`ERROR ${l}\n`);
for (const l of r.notes.slice(0, 20)) process.stdout.write(`note: ${l}\n`);
const ops = Object.entries(r.opCounts).map(([k, v]) => `${v} ${k}`).join(', ');
const delays = r.killDelays;
const phases = Object.entries(r.phaseMs).map(([k, v]) => `${k} ${(v / 1000).toFixed(0)} s`).join(', ');
process.stdout.write(`time: ${phases}\n`);
process.stdout.write(
  `crash campaign: ${bad ? 'FAILED' : 'clean'}: seed ${seed}, ${r.rounds} rounds (kill points), ${r.ops} ops (${ops}), ` +
  `${r.fsyncs} fsyncs, ${r.dirFsyncs} directory fsyncs, kill delays ${Math.min(...delays)}..${Math.max(...delays)} ms, ${r.tailProbes} tail probes, ` +
  `${r.checkedBlocks} blocks checked (${r.olderBlocks} legally older than their last op, ${r.olderNames} files legally their name's earlier file), ` +
  `${r.fsckNotes} fsck notes, ${r.violations.length} violations, ${r.fsckProblems.length} fsck problems, ` +
  `${r.daemonErrors.length} daemon errors, ${r.errors.length} errors, ${((Date.now() - t0) / 60000).toFixed(1)} min\n`);
if (bad || keep) process.stdout.write(`store, daemon log and round logs kept in ${dir}\n`);
else fs.rmSync(dir, { recursive: true, force: true });
process.exit(bad ? 1 : 0);
