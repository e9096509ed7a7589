/** pagefs fsck STORE: exit 0 when clean, 1 with one line per problem. */
import { Store } from '../store/store.js';
import { fsck } from '../store/fsck.js';
import { UserError } from '../util/errors.js';

export function fsckCommand(storePath: string): void {
  const store = Store.open(storePath, { readonly: false, cmd: 'pagefs fsck' });
  try {
    const owner = store.owner();
    if (owner) throw new UserError(`pagefs fsck: ${storePath} is mounted (daemon pid ${owner.pid}); unmount it first`);
    const r = fsck(store.db, store.sb);
    for (const n of r.notes) process.stdout.write(`note: ${n}\n`);
    if (r.problems.length === 0) {
      process.stdout.write(`pagefs fsck: ${storePath}: clean (${r.inodes} inodes, ${r.usedBlocks} blocks used, ${r.sharedBlocks} shared, ${r.freeBlocks} free)\n`);
      return;
    }
    for (const p of r.problems) process.stdout.write(`problem: ${p}\n`);
    process.stdout.write(`pagefs fsck: ${storePath}: ${r.problems.length} problem(s)\n`);
    process.exitCode = 1;
  } finally {
    store.close();
  }
}
