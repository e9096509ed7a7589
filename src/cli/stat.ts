/** pagefs stat STORE|MOUNTPOINT [--json] */
import fs from 'node:fs';
import { Store } from '../store/store.js';
import { findMount, isPagefsMount } from './mounts.js';
import { formatSize } from '../util/size.js';
import { UserError } from '../util/errors.js';

export function statCommand(target: string, opts: { json?: boolean }): void {
  let storePath = target;
  let mountpoint: string | null = null;
  let isDir = false;
  try {
    isDir = fs.statSync(target).isDirectory();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`pagefs stat: ${target}: ${(e as Error).message}`);
  }
  if (isDir) {
    const m = findMount(target);
    if (!m || !isPagefsMount(m)) throw new UserError(`pagefs stat: ${target} is a directory but not a pagefs mount`);
    storePath = m.source;
    mountpoint = m.mountpoint;
  }
  const store = Store.open(storePath, { readonly: false, cmd: 'pagefs stat' });
  try {
    const sb = store.sb;
    const b = store.blocks;
    const owner = store.owner();
    const s = {
      store: storePath,
      mountpoint,
      daemonPid: owner?.pid ?? null,
      formatVersion: sb.formatVersion,
      uuid: sb.uuid,
      blockSize: sb.blockSize,
      capacityBlocks: sb.capacityBlocks,
      capacityBytes: sb.capacityBlocks * sb.blockSize,
      usedBlocks: b.used,
      sharedBlocks: b.sharedCount(),
      freeBlocks: sb.capacityBlocks - b.used,
      inodes: store.inodes.count(),
    };
    if (opts.json) {
      process.stdout.write(JSON.stringify(s) + '\n');
      return;
    }
    const lines = [
      ['store', storePath],
      ['mounted', owner ? `on ${mountpoint ?? '?'} by daemon pid ${owner.pid}` : 'no'],
      ['format', `version ${s.formatVersion}, uuid ${s.uuid}`],
      ['block size', `${s.blockSize} bytes`],
      ['capacity', `${formatSize(s.capacityBytes)} (${s.capacityBlocks} blocks)`],
      ['used', `${s.usedBlocks} blocks (${formatSize(s.usedBlocks * s.blockSize)})`],
      ['shared', `${s.sharedBlocks} blocks`],
      ['free', `${s.freeBlocks} blocks (${formatSize(s.freeBlocks * s.blockSize)})`],
      ['inodes', String(s.inodes)],
    ];
    if (owner) lines.push(['note', 'a mounted store\'s figures lag its daemon\'s dirty pages until writeback']);
    for (const [k, v] of lines) process.stdout.write(`${(k + ':').padEnd(12)}${v}\n`);
  } finally {
    store.close();
  }
}
