/**
 * Page memory: fixed frames of one page each, carved from 2 MiB slabs and handed out
 * again when a page leaves the cache, as the kernel does with its page frames.
 *
 * Why not a Buffer per page: on this kind of virtual machine the first touch of fresh
 * memory is what a cache fill paid most for. Measured with better-sqlite3 on a 64 MiB
 * store, reading 16,384 random 4 KiB blocks cost 9 us each when the Buffers were dropped
 * and 30 us each when they were kept, as a cache keeps them: every kept Buffer was new
 * memory, faulted in page by page. Frames are touched once, in slabs the daemon's
 * allocator advises for transparent huge pages (one fault per 2 MiB where the kernel
 * has them), and reused from then on.
 *
 * A frame in the free list may hold another file's bytes: whoever takes one fills all
 * of it (PageCache.insert copies whole pages or zero-fills).
 */

/** Slab size: one transparent huge page. */
export const SLAB_BYTES = 2 << 20;

export type SlabAllocator = (bytes: number) => Buffer;

export class FramePool {
  private readonly free: Buffer[] = [];
  slabs = 0;

  constructor(readonly frameSize: number, private readonly allocSlab: SlabAllocator = (n) => Buffer.allocUnsafeSlow(n)) {
    if (SLAB_BYTES % frameSize !== 0) throw new RangeError(`frame size ${frameSize} does not divide ${SLAB_BYTES}`);
  }

  /** A frame of frameSize bytes with unspecified contents. */
  take(): Buffer {
    const f = this.free.pop();
    if (f) return f;
    const slab = this.allocSlab(SLAB_BYTES);
    this.slabs++;
    // Handed out from the start of the slab: the rest stays untouched until needed.
    for (let at = SLAB_BYTES - this.frameSize; at > 0; at -= this.frameSize) this.free.push(slab.subarray(at, at + this.frameSize));
    return slab.subarray(0, this.frameSize);
  }

  give(frame: Buffer): void {
    this.free.push(frame);
  }

  /** Frames in the free list (not used by any page). */
  get idle(): number {
    return this.free.length;
  }

  get bytes(): number {
    return this.slabs * SLAB_BYTES;
  }
}
