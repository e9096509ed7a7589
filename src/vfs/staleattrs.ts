/**
 * Attributes a request changed beyond what its reply tells the kernel. A reply that
 * carries attributes (SETATTR, LOOKUP, CREATE) refreshes the kernel's copy, and after a
 * WRITE, FALLOCATE, COPY_FILE_RANGE or O_TRUNC OPEN the kernel drops the size and times it
 * knows those move; nothing makes it drop the others. So the set-ID bits a modification
 * clears, or the ctime of a flags ioctl, would show as before until the attribute
 * timeout, to a stat asking for them alone and to exec. The dispatcher sends an
 * attribute-only notify_inval_inode for each inode noted here before it replies.
 */
import type { Caller } from './vfs.js';

/** Notes that `ino`'s attributes changed where the reply to `caller`'s request does not say so. */
export function attrsChangedBehindKernel(caller: Caller, ino: number): void {
  if (!caller.staleAttrs) caller.staleAttrs = [ino];
  else if (!caller.staleAttrs.includes(ino)) caller.staleAttrs.push(ino);
}
