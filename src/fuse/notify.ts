/**
 * Kernel-cache notifications, out of band. The domain calls the Invalidator; we queue the
 * request and send it after the current turn of the event loop, one at a time, from a
 * worker thread (the addon): notify_inval_inode can wait for the kernel, which may be
 * waiting for a reply we have not sent yet (fuse_lowlevel.h's warning), so it is never
 * sent inline from a handler.
 */
import type { FuseBinding, Session } from './binding.js';
import type { Invalidator } from '../vfs/vfs.js';

type Note = { kind: 'inode'; ino: number; off: number; len: number } | { kind: 'entry'; parent: number; name: Buffer };

export class NotifyQueue implements Invalidator {
  private readonly queue: Note[] = [];
  private running = false;
  session: Session | null = null;

  constructor(private readonly fuse: FuseBinding, private readonly log: (m: string) => void) {}

  invalInode(ino: number, off: number, len: number): void {
    this.push({ kind: 'inode', ino, off, len });
  }

  async invalInodeNow(ino: number, off: number, len: number): Promise<void> {
    if (!this.session) return;
    const rc = await this.fuse.notifyInvalInode(this.session, ino, off, len);
    if (rc < 0 && rc !== -2) this.log(`notify inode ${ino} failed: ${rc}`);
  }

  async storeKernel(ino: number, off: number, data: Buffer): Promise<void> {
    if (!this.session) return;
    const rc = await this.fuse.notifyStore(this.session, ino, off, data);
    if (rc < 0 && rc !== -2) this.log(`notify store ${ino} failed: ${rc}`);
  }

  invalEntry(parent: number, name: Buffer): void {
    this.push({ kind: 'entry', parent, name: Buffer.from(name) });
  }

  private push(n: Note): void {
    this.queue.push(n);
    if (!this.running) {
      this.running = true;
      setImmediate(() => void this.drain());
    }
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && this.session) {
      const n = this.queue.shift()!;
      const rc = n.kind === 'inode'
        ? await this.fuse.notifyInvalInode(this.session, n.ino, n.off, n.len)
        : await this.fuse.notifyInvalEntry(this.session, n.parent, n.name);
      // -ENOENT: the kernel holds no such inode or entry any more, which is fine.
      if (rc < 0 && rc !== -2) this.log(`notify ${n.kind} failed: ${rc}`);
    }
    this.running = false;
  }
}
