/**
 * The fsx checker's model of one file: its size, the bytes every read must return, and
 * for each byte the number of the operation that last decided what that offset holds
 * (its provenance, named in a mismatch report). Bytes at and beyond the size are always
 * zero in the model, so growing a file needs no special case.
 */
export class FileModel {
  readonly data: Buffer;
  readonly prov: Uint32Array;
  size = 0;

  constructor(readonly capacity: number) {
    this.data = Buffer.alloc(capacity);
    this.prov = new Uint32Array(capacity);
  }

  /** write(2) or a mapped write of `bytes` at `off`. */
  write(off: number, bytes: Buffer, op: number): void {
    bytes.copy(this.data, off);
    this.prov.fill(op, off, off + bytes.length);
    if (off + bytes.length > this.size) this.size = off + bytes.length;
  }

  /** Zeros [off, end) clipped to the size (punch hole, zero range). */
  zero(off: number, end: number, op: number): void {
    const e = Math.min(end, this.size);
    if (off >= e) return;
    this.data.fill(0, off, e);
    this.prov.fill(op, off, e);
  }

  /** ftruncate, or an operation that extends the size (fallocate without KEEP_SIZE). */
  resize(n: number, op: number): void {
    if (n < this.size) {
      this.data.fill(0, n, this.size);
      this.prov.fill(op, n, this.size);
    } else {
      this.prov.fill(op, this.size, n);
    }
    this.size = n;
  }

  /** COLLAPSE_RANGE: [off, off + len) goes, everything after moves down by len. */
  collapse(off: number, len: number, op: number): void {
    const old = this.size;
    this.data.copy(this.data, off, off + len, old);
    this.data.fill(0, old - len, old);
    this.prov.fill(op, off, old);
    this.size = old - len;
  }

  /** INSERT_RANGE: everything from off moves up by len, and [off, off + len) becomes a hole. */
  insert(off: number, len: number, op: number): void {
    const old = this.size;
    this.data.copy(this.data, off + len, off, old);
    this.data.fill(0, off, off + len);
    this.prov.fill(op, off, old + len);
    this.size = old + len;
  }
}
