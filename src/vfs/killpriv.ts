/**
 * The one case of clearing set-group-ID that the kernel's FUSE client leaves to us.
 *
 * Linux clears S_ISUID and S_ISGID when someone without CAP_FSETID writes, truncates or
 * changes the owner of a regular file (setattr_should_drop_suidgid in fs/attr.c). Without
 * FUSE_CAP_HANDLE_KILLPRIV the FUSE client does this itself, but it drops S_ISGID only
 * together with S_IXGRP (fuse_setattr); ext4 also drops it from a file without group
 * execute when the caller is not in the file's group. That case is done here, on WRITE and
 * on SETATTR of size or owner. HANDLE_KILLPRIV_V2 would hand us the whole decision with
 * the CAP_FSETID test made by the kernel, but libfuse 3.14 does not pass its write flag
 * (FUSE_WRITE_KILL_SUIDGID) to the daemon. Known gap: uid 0 stands in for CAP_FSETID.
 */
import type { Caller } from './vfs.js';
import type { Inode } from './inode.js';
import { S_ISGID } from './inode.js';
import { supplementaryGroups } from '../util/process.js';

const S_IXGRP = 0o010;

/** Whether the caller is in group `gid` (its fsgid or a supplementary group). */
export function callerInGroup(caller: Caller, gid: number): boolean {
  if (caller.gid === gid) return true;
  // A caller that exited cannot be asked; treating it as outside the group is the safe side.
  return supplementaryGroups(caller.pid)?.includes(gid) ?? false;
}

/**
 * Clears S_ISGID of a regular file without group execute when `caller` (not root) is
 * outside the file's group `gid` (its group before the change). Returns whether the mode
 * changed; the caller persists the inode.
 */
export function killSgid(inode: Inode, caller: Caller, gid = inode.rec.gid): boolean {
  const mode = inode.rec.mode;
  if (!inode.isReg || caller.uid === 0 || (mode & (S_ISGID | S_IXGRP)) !== S_ISGID) return false;
  if (callerInGroup(caller, gid)) return false;
  inode.rec.mode = mode & ~S_ISGID;
  inode.stamp('c');
  return true;
}
