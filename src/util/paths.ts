/**
 * Where the project's own files are, from any module (child processes and worker
 * threads always run the compiled JavaScript in dist/, also when the caller is a test
 * running the TypeScript sources), and whether one path lies under another.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A compiled module, e.g. distFile('stress/race-worker.js'). */
export function distFile(rel: string): string {
  return path.join(PROJECT_ROOT, 'dist', rel);
}

export const PAGEFS_BIN = path.join(PROJECT_ROOT, 'bin', 'pagefs.js');

/** `p` with its symbolic links resolved, or made absolute as written when it does not exist. */
export function realOrResolved(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

/** Whether `p` is `dir` or lies under it; both absolute and resolved (realOrResolved) by the caller. */
export function pathWithin(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : dir + '/');
}
