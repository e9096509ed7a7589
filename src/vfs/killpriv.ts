/**
 * Clearing set-user-ID and set-group-ID when a file is modified.
 *
 * Linux clears S_ISUID and S_ISGID when someone without CAP_FSETID writes, truncates,
 * fallocates or copies into a regular file, and on every change of owner
 * (setattr_should_drop_suidgid in fs/attr.c); S_ISGID without group execute only when the
 * caller is outside the file's group.
 *
 * Without HANDLE_KILLPRIV_V2 ('kernel' below) the FUSE client clears S_ISUID, and S_ISGID
 * with S_IXGRP, by a SETATTR of the mode first (fuse_setattr), and leaves out the S_ISGID
 * without S_IXGRP case: that one is done here (killSgid). With HANDLE_KILLPRIV_V2 (the
 * addon negotiates it, libfuse 3.14 cannot) the kernel sends no such SETATTR and says
 * instead, on WRITE, O_TRUNC OPEN and SETATTR, whether the caller lacks CAP_FSETID
 * ('kill') or has it ('keep'); every chown says 'kill'. FALLOCATE and COPY_FILE_RANGE
 * carry no such word (the kernel's file_modified is then a no-op): there uid 0 stands in
 * for CAP_FSETID, the known gap.
 */
import type { Caller } from './vfs.js';
import { attrsChangedBehindKernel } from './staleattrs.js';
import type { Inode } from './inode.js';
import { S_ISGID, S_ISUID } from './inode.js';
import { supplementaryGroups } from '../util/process.js';

const S_IXGRP = 0o010;

/** What the kernel said of a modification; see the head of this file. */
export type KillVerdict = 'kill' | 'keep' | 'kernel';

/** The verdict of a request that carries the kernel's kill flag (WRITE, OPEN, SETATTR); none is sent without HANDLE_KILLPRIV_V2. */
export function toldVerdict(killprivV2: boolean, killFlag: number): KillVerdict {
  return !killprivV2 ? 'kernel' : killFlag ? 'kill' : 'keep';
}

/** The verdict for a request the kernel says nothing about (FALLOCATE, COPY_FILE_RANGE). */
export function guessVerdict(killprivV2: boolean, caller: Caller): KillVerdict {
  return !killprivV2 ? 'kernel' : caller.uid === 0 ? 'keep' : 'kill';
}

/**
 * Clears what a modification by `caller` clears under `verdict`. Returns whether the mode
 * changed (ctime is stamped); the caller persists the inode. `gid`: the file's group
 * before the change.
 */
export function killPriv(inode: Inode, caller: Caller, verdict: KillVerdict, gid = inode.rec.gid): boolean {
  if (verdict === 'keep' || inode.isDir) return false;
  const mode = inode.rec.mode;
  if (verdict === 'kill' && (mode & (S_ISUID | S_ISGID))) {
    inode.rec.mode = mode & ~(S_ISUID | ((mode & S_IXGRP) ? S_ISGID : 0));
    if (inode.rec.mode !== mode) inode.stamp('c');
  }
  const changed = killSgid(inode, caller, gid) || inode.rec.mode !== mode;
  // The kernel drops only the size and times it knows a write or an fallocate moves: a
  // stat asking for the mode alone, and exec's permission check, would see the set-ID
  // bits for up to the attribute timeout.
  if (changed) attrsChangedBehindKernel(caller, inode.ino);
  return changed;
}

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
