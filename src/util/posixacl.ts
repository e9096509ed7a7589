/**
 * POSIX ACLs in their xattr form (system.posix_acl_access, system.posix_acl_default):
 * the codec, the validity rules and the three mode/ACL calculations ext4 makes through
 * the kernel's fs/posix_acl.c (update_mode on set, create_masq on inheritance,
 * chmod_masq on chmod). Pure functions over bytes and numbers: the store's fsck and
 * src/vfs/ both use them.
 *
 * Format (little-endian): a u32 version (2), then 8-byte entries {u16 tag, u16 perm,
 * u32 id}; id is a uid (USER) or gid (GROUP), and 0xffffffff for the other tags.
 *
 * Validity is exactly the kernel's posix_acl_from_xattr + posix_acl_valid, because ext4
 * answers with them: entries in tag order USER_OBJ, USER..., GROUP_OBJ, GROUP..., MASK,
 * OTHER; one USER_OBJ, GROUP_OBJ and OTHER; MASK required once a named entry is present;
 * perms within rwx. Named entries are neither sorted by id nor checked for duplicates
 * there, so they are not here either (ext4 accepts two entries for one uid).
 */
import { fsErr } from './errors.js';

export const ACL_ACCESS = 'system.posix_acl_access';
export const ACL_DEFAULT = 'system.posix_acl_default';
export const ACL_VERSION = 2;
export const ACL_UNDEFINED_ID = 0xffffffff;

export const TAG = { USER_OBJ: 0x01, USER: 0x02, GROUP_OBJ: 0x04, GROUP: 0x08, MASK: 0x10, OTHER: 0x20 } as const;

export interface AclEntry {
  tag: number;
  perm: number;
  id: number;
}

/** Which ACL an xattr name is, or null for any other name. */
export function aclKind(name: Buffer | string): 'access' | 'default' | null {
  const s = typeof name === 'string' ? name : name.toString('latin1');
  return s === ACL_ACCESS ? 'access' : s === ACL_DEFAULT ? 'default' : null;
}

/**
 * The entries of an xattr value, checked as the kernel checks them; an empty list means
 * "no ACL" (a bare header, which the kernel also reads as a removal). Throws EINVAL for a
 * malformed value and EOPNOTSUPP for another version, the kernel's answers.
 */
export function decodeAcl(value: Buffer): AclEntry[] {
  if (value.length < 4) throw fsErr('EINVAL', `ACL of ${value.length} bytes is shorter than its header`);
  if (value.readUInt32LE(0) !== ACL_VERSION) throw fsErr('EOPNOTSUPP', `ACL version ${value.readUInt32LE(0)}, not ${ACL_VERSION}`);
  if ((value.length - 4) % 8 !== 0) throw fsErr('EINVAL', `ACL of ${value.length} bytes is not a header plus 8-byte entries`);
  const entries: AclEntry[] = [];
  for (let off = 4; off < value.length; off += 8) {
    const tag = value.readUInt16LE(off);
    const perm = value.readUInt16LE(off + 2);
    const named = tag === TAG.USER || tag === TAG.GROUP;
    if (!named && tag !== TAG.USER_OBJ && tag !== TAG.GROUP_OBJ && tag !== TAG.MASK && tag !== TAG.OTHER) {
      throw fsErr('EINVAL', `ACL entry with unknown tag 0x${tag.toString(16)}`);
    }
    const id = value.readUInt32LE(off + 4);
    // (uid_t)-1 maps to no user in any namespace: make_kuid fails and the kernel says EINVAL.
    if (named && id === ACL_UNDEFINED_ID) throw fsErr('EINVAL', 'named ACL entry with id -1');
    entries.push({ tag, perm, id: named ? id : ACL_UNDEFINED_ID });
  }
  if (entries.length > 0) checkValid(entries);
  return entries;
}

/** posix_acl_valid's state machine over the tag order. */
function checkValid(entries: AclEntry[]): void {
  const bad = (why: string) => fsErr('EINVAL', `invalid ACL: ${why}`);
  let state: number = TAG.USER_OBJ;
  let needsMask = false;
  for (const e of entries) {
    if (e.perm & ~7) throw bad(`permission 0x${e.perm.toString(16)} beyond rwx`);
    switch (e.tag) {
      case TAG.USER_OBJ:
        if (state !== TAG.USER_OBJ) throw bad('USER_OBJ not first or twice');
        state = TAG.USER;
        break;
      case TAG.USER:
        if (state !== TAG.USER) throw bad('named user out of order');
        needsMask = true;
        break;
      case TAG.GROUP_OBJ:
        if (state !== TAG.USER) throw bad('GROUP_OBJ out of order or twice');
        state = TAG.GROUP;
        break;
      case TAG.GROUP:
        if (state !== TAG.GROUP) throw bad('named group out of order');
        needsMask = true;
        break;
      case TAG.MASK:
        if (state !== TAG.GROUP) throw bad('MASK out of order or twice');
        state = TAG.OTHER;
        break;
      case TAG.OTHER:
        if (state !== TAG.OTHER && !(state === TAG.GROUP && !needsMask)) throw bad(needsMask ? 'named entries without a MASK' : 'OTHER out of order');
        state = 0;
        break;
    }
  }
  if (state !== 0) throw bad('USER_OBJ, GROUP_OBJ or OTHER missing');
}

export function encodeAcl(entries: AclEntry[]): Buffer {
  const out = Buffer.alloc(4 + entries.length * 8);
  out.writeUInt32LE(ACL_VERSION, 0);
  entries.forEach((e, i) => {
    out.writeUInt16LE(e.tag, 4 + i * 8);
    out.writeUInt16LE(e.perm, 6 + i * 8);
    out.writeUInt32LE(e.id, 8 + i * 8);
  });
  return out;
}

/**
 * posix_acl_equiv_mode: the permission bits an access ACL stands for (the MASK, where
 * present, as the group bits), and whether the mode alone says it all.
 */
export function aclMode(entries: AclEntry[], mode: number): { mode: number; equivalent: boolean } {
  let bits = 0;
  let equivalent = true;
  for (const e of entries) {
    if (e.tag === TAG.USER_OBJ) bits |= (e.perm & 7) << 6;
    else if (e.tag === TAG.GROUP_OBJ) bits |= (e.perm & 7) << 3;
    else if (e.tag === TAG.OTHER) bits |= e.perm & 7;
    else if (e.tag === TAG.MASK) { bits = (bits & ~0o070) | ((e.perm & 7) << 3); equivalent = false; }
    else equivalent = false;
  }
  return { mode: (mode & ~0o777) | bits, equivalent };
}

/**
 * posix_acl_create_masq: a parent's default ACL applied to a new inode's create mode.
 * Owner and other entries, and the MASK (or GROUP_OBJ without one), keep only what the
 * mode allows, and the mode keeps only what they allow. Returns the new inode's access
 * ACL (null when the mode alone says it all) and its mode.
 */
export function createMasq(inherited: AclEntry[], mode: number): { acl: AclEntry[] | null; mode: number } {
  const acl = inherited.map((e) => ({ ...e }));
  let m = mode;
  let group: AclEntry | undefined;
  let mask: AclEntry | undefined;
  let equivalent = true;
  for (const e of acl) {
    if (e.tag === TAG.USER_OBJ) { e.perm &= (m >> 6) & 7; m &= (e.perm << 6) | ~0o700; }
    else if (e.tag === TAG.OTHER) { e.perm &= m & 7; m &= e.perm | ~0o007; }
    else if (e.tag === TAG.GROUP_OBJ) group = e;
    else if (e.tag === TAG.MASK) { mask = e; equivalent = false; }
    else equivalent = false;
  }
  const g = mask ?? group!;
  g.perm &= (m >> 3) & 7;
  m &= (g.perm << 3) | ~0o070;
  return { acl: equivalent ? null : acl, mode: m };
}

/** posix_acl_chmod_masq: a new mode written into an access ACL (MASK, or GROUP_OBJ without one, takes the group bits). */
export function chmodMasq(entries: AclEntry[], mode: number): AclEntry[] {
  const acl = entries.map((e) => ({ ...e }));
  const hasMask = acl.some((e) => e.tag === TAG.MASK);
  for (const e of acl) {
    if (e.tag === TAG.USER_OBJ) e.perm = (mode >> 6) & 7;
    else if (e.tag === TAG.OTHER) e.perm = mode & 7;
    else if (e.tag === (hasMask ? TAG.MASK : TAG.GROUP_OBJ)) e.perm = (mode >> 3) & 7;
  }
  return acl;
}

/** What is wrong with a stored ACL row (schema.ts I8), or null. */
export function aclProblem(name: Buffer, value: Buffer, mode: number): string | null {
  const kind = aclKind(name);
  const type = mode & 0o170000;
  if (type === 0o120000) return 'a symlink carries an ACL';
  if (kind === 'default' && type !== 0o040000) return 'a default ACL on a non-directory';
  let entries: AclEntry[];
  try {
    entries = decodeAcl(value);
  } catch (e) {
    return (e as Error).message;
  }
  if (entries.length === 0) return 'an empty ACL';
  if (kind === 'access' && aclMode(entries, mode).equivalent) return 'an access ACL the mode alone expresses';
  return null;
}
