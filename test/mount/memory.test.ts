/**
 * The daemon's memory, through a real mount: what bounds its RSS beside the page cache
 * (scripts/load.mjs, docs/LOAD.md). No SQLite connection maps the store (every page
 * touched through a mapping counted in the daemon's RSS, once per connection), malloc's
 * free memory is trimmed, and `pagefs stat` shows the figures.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { mountFresh, pagefs, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { ok, dropCaches, eventually, expectNoMountUnder, pagefsStat } from './lib.js';

let m: Mounted;

beforeAll(async () => {
  m = await mountFresh({ capacity: '1G' });
}, 60_000);

afterAll(async () => {
  if (!m) return;
  try {
    expectCleanLog(m);
  } finally {
    await m.cleanup();
    await expectNoMountUnder(m.dir);
  }
}, 120_000);

/** The daemon's mappings of exactly this file (not its -wal or -shm). */
function mappingsOf(pid: number, file: string): string[] {
  return fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((l) => l.endsWith(` ${file}`));
}

async function liveStat(): Promise<any> {
  return pagefsStat(m.mp);
}

describe('daemon memory', () => {
  it('reads and writes without mapping the store into the daemon', async () => {
    const data = crypto.randomBytes(16 << 20);
    await fsp.writeFile(path.join(m.mp, 'f'), data);
    // Cold: a fresh daemon and an empty kernel cache, so every block is read from the
    // store, by the reader threads and their own connections.
    await m.unmount();
    await m.remount();
    await dropCaches();
    const back = await fsp.readFile(path.join(m.mp, 'f'));
    expect(back.equals(data)).toBe(true);
    const s = await liveStat();
    expect(s.live.readers.blocks).toBeGreaterThan(0);
    expect(mappingsOf(m.proc.pid!, m.store)).toEqual([]);
  }, 180_000);

  it('pagefs stat shows the memory figures and the malloc trims', async () => {
    expect(await eventually(async () => (await liveStat()).live.memory.trim.trims >= 2, 30_000, 250)).toBe(true);
    const mem = (await liveStat()).live.memory;
    expect(mem.rss).toBeGreaterThan(0);
    expect(mem.heapUsed).toBeGreaterThan(0);
    const text = ok(await pagefs(['stat', m.mp], { timeoutMs: 30_000 }), 'pagefs stat');
    expect(text).toMatch(/^memory:\s+rss \d.*JS heap .*malloc trims/m);
  }, 60_000);
});
