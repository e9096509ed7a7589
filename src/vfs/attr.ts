/** getattr's partner: setattr (chmod, chown, truncate, utimes). */
import type { Vfs, Caller } from './vfs.js';
import type { Inode } from './inode.js';
import { S_IFMT } from './inode.js';
import { killPriv, type KillVerdict } from './killpriv.js';
import { OpCtx } from '../cache/lockcheck.js';
import { setSizeLocked } from './resize.js';
import { nowParts } from '../store/open.js';
import { fsErr } from '../util/errors.js';
import { chmodAcl } from './acl.js';
import { checkSetattr } from './flags.js';

export interface AttrChange {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atime?: [number, number] | 'now';
  mtime?: [number, number] | 'now';
  ctime?: [number, number];
  /** What the kernel said of clearing set-ID bits on a size or owner change (killpriv.ts). */
  kill?: KillVerdict;
}

export async function setattr(vfs: Vfs, caller: Caller, ino: number, ch: AttrChange): Promise<Inode> {
  const inode = vfs.inode(ino);
  checkSetattr(inode, ch);
  const r = inode.rec;
  if (ch.size !== undefined) {
    if (inode.isDir) throw fsErr('EISDIR');
    if (!inode.isReg) throw fsErr('EINVAL');
    if (ch.size < 0) throw fsErr('EINVAL');
    const ctx = new OpCtx('setattr(size)');
    const m = inode.mapping!;
    await m.iRwsem.acquire(ctx, 'exclusive');
    try {
      await setSizeLocked(vfs, ctx, inode, ch.size);
    } finally {
      m.iRwsem.release(ctx, 'exclusive');
    }
  }
  return vfs.change([inode], () => {
    // With default_permissions the kernel's setattr_prepare has already dropped S_ISGID
    // from a chmod by someone outside the file's group; it knows the supplementary groups.
    if (ch.mode !== undefined) {
      r.mode = (r.mode & S_IFMT) | (ch.mode & 0o7777);
      chmodAcl(vfs, inode);
    }
    if (ch.size !== undefined || ch.uid !== undefined || ch.gid !== undefined) killPriv(inode, caller, ch.kill ?? 'kernel');
    if (ch.uid !== undefined) r.uid = ch.uid;
    if (ch.gid !== undefined) r.gid = ch.gid;
    const now = nowParts();
    if (ch.atime !== undefined) [r.atimeS, r.atimeNs] = ch.atime === 'now' ? now : ch.atime;
    if (ch.mtime !== undefined) [r.mtimeS, r.mtimeNs] = ch.mtime === 'now' ? now : ch.mtime;
    if (ch.ctime !== undefined) [r.ctimeS, r.ctimeNs] = ch.ctime;
    else [r.ctimeS, r.ctimeNs] = now;
    vfs.persist(inode);
    return inode;
  });
}
