/** pagefs stress --race DIR: the race stress against any directory (a pagefs mount, tmpfs, ext4, XFS). */
import fs from 'node:fs';
import { runRace, type RaceResult } from '../stress/race.js';
import { progress } from './progress.js';
import { UserError } from '../util/errors.js';

export interface StressOpts {
  race?: boolean;
  readers: string;
  directReaders: string;
  mappers: string;
  duration: string;
  seed?: string;
  blocks: string;
  variant: string;
  stopOnFirst?: boolean;
  json?: boolean;
}

function int(v: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UserError(`pagefs stress: ${what} '${v}' must be a whole number from ${min} to ${max}`);
  return Number(v);
}

export async function stressCommand(dir: string, o: StressOpts): Promise<void> {
  if (!o.race) throw new UserError('pagefs stress: choose a mode: --race');
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new UserError(`pagefs stress: ${dir} does not exist`);
  }
  if (!st.isDirectory()) throw new UserError(`pagefs stress: ${dir} is not a directory`);
  if (o.variant !== 'punch' && o.variant !== 'shift') throw new UserError(`pagefs stress: --variant must be punch or shift, not '${o.variant}'`);
  const seed = o.seed !== undefined ? int(o.seed, '--seed', 0, 2 ** 31 - 1) : Math.floor(Math.random() * 2 ** 31);
  const durationMs = int(o.duration, '--duration', 1, 86400) * 1000;
  const bar = progress('race', durationMs / 1000, 's');
  const r = await runRace({
    dir, seed, durationMs,
    readers: int(o.readers, '--readers', 0, 64), directReaders: int(o.directReaders, '--direct-readers', 0, 64),
    mappers: int(o.mappers, '--mappers', 0, 64), blocks: int(o.blocks, '--blocks', 16, 1 << 20),
    variant: o.variant, stopOnFirst: !!o.stopOnFirst,
    onProgress: (p) => bar.update(Math.floor(p.elapsedMs / 1000), `${p.ops} writer ops, ${p.violations} violations`),
  });
  bar.stop();
  if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
  else process.stdout.write(formatRace(r));
  if (r.violations.length > 0 || r.errors.length > 0) process.exitCode = 1;
}

export function formatRace(r: RaceResult, indent = ''): string {
  const lines: string[] = [];
  const ops = Object.entries(r.opCounts).map(([k, v]) => `${v} ${k}`).join(', ');
  for (const v of r.violations.slice(0, 5)) {
    lines.push(`VIOLATION (${v.why}) seen by the ${v.role} reader ${v.id}:`,
      `  offset ${v.offset} (block ${v.block}), after ${v.writerOps} writer operations`,
      `  expected: ${v.expected}`,
      `  actual:   ${v.actual}`,
      `  bytes:    ${v.actualHex}${v.settled ? '' : '  (the read overlapped an operation on this block: only another file\'s data is wrong then)'}`);
  }
  if (r.violations.length > 5) lines.push(`... and ${r.violations.length - 5} more violations`);
  for (const e of r.errors) lines.push(`ERROR: ${e}`);
  if (r.skipped.length > 0) lines.push(`skipped (not supported here): ${r.skipped.join(', ')}`);
  const verdict = r.violations.length === 0 && r.errors.length === 0 ? 'clean' : r.violations.length > 0 ? `${r.violations.length} violation(s)` : 'errors';
  lines.push(`race: ${verdict}: seed ${r.seed}, ${(r.elapsedMs / 1000).toFixed(1)} s, block size ${r.blockSize}, ${r.writerOps} writer ops (${ops || 'none'}), ${r.reads} reads, ${r.checkedBlocks} settled blocks checked`);
  return lines.map((l) => indent + l).join('\n') + '\n';
}
