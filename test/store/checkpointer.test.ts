/**
 * The checkpoint thread (src/store/checkpointer.ts): it copies what the writer commits,
 * fsync's commit leaves the copy to it, a thread that cannot run hands checkpoints back to
 * the writer, and once it is closed the writer's close folds the WAL into the store's file.
 */
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import { newStore } from '../helpers/store.js';
import { Checkpointer, BACKSTOP_FRAMES } from '../../src/store/checkpointer.js';
import type { Store } from '../../src/store/store.js';
import type { CheckpointReply } from '../../src/store/checkpoint-worker.js';

const BS = 4096;

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Commits `n` data blocks, from block `first` on (about n / 3 frames of 16 KiB). */
function writeBlocks(store: Store, first: number, n: number): void {
  store.txn(() => { for (let p = first; p < first + n; p++) store.blocks.writeData(p, Buffer.alloc(BS, p % 251)); });
}

/** Whether `p` settles within `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((r) => { timer = setTimeout(() => r(false), ms); });
  try {
    return await Promise.race([p.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

const autocheckpoint = (store: Store) => store.db.pragma('wal_autocheckpoint', { simple: true }) as number;

/** A new store with a checkpointer (whose thread opens `threadPath`, the store unless told), closed after `fn`. */
async function withCheckpointer(fn: (store: Store, ck: Checkpointer, logs: string[]) => Promise<void> | void, threadPath?: string): Promise<void> {
  const { file, store } = newStore('ckpt', BS, 64 << 20);
  const logs: string[] = [];
  const ck = new Checkpointer(threadPath?.replace('STORE', file) ?? file, store.db, (m) => logs.push(m));
  store.checkpoints = ck;
  try {
    await fn(store, ck, logs);
  } finally {
    await ck.close();
    store.close();
  }
}

describe('Checkpointer', () => {
  it('copies what the writer commits on its own thread, and leaves the writer only a backstop', () => withCheckpointer(async (store, ck, logs) => {
    expect(autocheckpoint(store)).toBe(BACKSTOP_FRAMES);
    writeBlocks(store, 1, 900); // 300 frames: under SQLite's own threshold, so only the thread copies them
    await until('a checkpoint', () => ck.stats.checkpoints > 0 && !ck.busy);
    expect(ck.stats.maxWalFrames).toBeGreaterThanOrEqual(300);
    expect(ck.stats.behind).toBe(0);
    expect(ck.stats.failures).toBe(0);
    expect(logs).toEqual([]);
  }), 30_000);

  it('lets fsync\'s commit go without the writer\'s own checkpoint', () => withCheckpointer((store) => {
    let during = -1;
    store.durably(() => { during = autocheckpoint(store); });
    expect(during).toBe(0);
    expect(autocheckpoint(store)).toBe(BACKSTOP_FRAMES);
  }), 30_000);

  it('keeps the backstop for fsync\'s commit once the WAL has reached it', () => withCheckpointer(async (store, ck) => {
    writeBlocks(store, 1, 3 * BACKSTOP_FRAMES + 300); // three blocks a 16 KiB page: past the backstop
    await until('a checkpoint', () => ck.stats.checkpoints > 0 && !ck.busy);
    expect(ck.stats.maxWalFrames).toBeGreaterThanOrEqual(BACKSTOP_FRAMES);
    let during = -1;
    store.durably(() => { during = autocheckpoint(store); });
    expect(during).toBe(BACKSTOP_FRAMES);
  }), 60_000);

  it('hands checkpoints back to the writer when its thread cannot run', () => withCheckpointer(async (store, ck, logs) => {
    await until('the thread to stop', () => !ck.stats.running);
    expect(autocheckpoint(store)).toBe(1000); // SQLite's default
    expect(ck.busy).toBe(false); // a streaming write-behind waits for nothing
    expect(logs.some((m) => m.startsWith('checkpoint thread stopped'))).toBe(true);
    // Commits and fsyncs go on, checkpointed by the writer.
    writeBlocks(store, 1, 30);
    let during = -1;
    store.durably(() => { during = autocheckpoint(store); });
    expect(during).toBe(1000);
  }, 'STORE.missing'), 30_000);

  it('takes a checkpoint that found the lock held for no news of the WAL', () => withCheckpointer(async (store, ck) => {
    writeBlocks(store, 1, 3 * BACKSTOP_FRAMES + 300);
    await until('a checkpoint', () => ck.stats.checkpoints > 0 && !ck.busy);
    const seen = ck.stats.maxWalFrames;
    expect(seen).toBeGreaterThanOrEqual(BACKSTOP_FRAMES);
    // What the thread reports when the writer's backstop held the checkpoint lock:
    // SQLite's busy flag and -1 frames (not a way this test can make it happen on cue).
    (ck as unknown as { done(r: CheckpointReply): void }).done({ busy: true, log: -1, checkpointed: -1, seq: -1, ns: 0 });
    let during = -1;
    store.durably(() => { during = autocheckpoint(store); });
    expect(during).toBe(BACKSTOP_FRAMES); // still known to be at the backstop
    expect(ck.stats.maxWalFrames).toBe(seen);
    expect(ck.stats.behind).toBe(0);
  }), 60_000);

  it('idle() answers at once when no checkpoint is due, and starts a due one without waiting for its interval', () => withCheckpointer(async (store, ck) => {
    expect(ck.busy).toBe(false);
    expect(await within(ck.idle(), 1000)).toBe(true);
    // A checkpoint spaced ten minutes after the last: the commit makes one due, not running.
    const spaced = ck as unknown as { interval: number; lastStart: number };
    spaced.interval = 600_000;
    spaced.lastStart = performance.now();
    writeBlocks(store, 1, 900);
    expect(ck.busy).toBe(true);
    expect(ck.stats.checkpoints).toBe(0);
    expect(await within(ck.idle(), 10_000)).toBe(true);
    expect(ck.stats.checkpoints).toBe(1);
    expect(ck.stats.maxWalFrames).toBeGreaterThanOrEqual(300);
    expect(ck.stats.behind).toBe(0);
    expect(ck.busy).toBe(false);
  }), 30_000);

  it('idle() waits for the checkpoint after the running one when a commit came after it began', () => withCheckpointer(async (store, ck) => {
    writeBlocks(store, 1, 900);
    expect(ck.stats.checkpoints).toBe(0); // the first commit started one; its reply comes as a message
    writeBlocks(store, 901, 900); // committed while it runs: frames it may not copy
    await ck.idle();
    expect(ck.stats.checkpoints).toBe(2);
    expect(ck.stats.behind).toBe(0);
  }), 30_000);

  it('once closed, leaves the writer\'s close to fold the whole WAL into the store\'s file', async () => {
    const { file, store } = newStore('ckpt', BS);
    const ck = new Checkpointer(file, store.db, () => undefined);
    store.checkpoints = ck;
    writeBlocks(store, 1, 300);
    await until('a checkpoint', () => ck.stats.checkpoints > 0 && !ck.busy);
    writeBlocks(store, 301, 300);
    await ck.close();
    store.close();
    expect(fs.existsSync(`${file}-wal`)).toBe(false);
    expect(fs.existsSync(`${file}-shm`)).toBe(false);
  }, 30_000);
});
