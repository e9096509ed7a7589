/**
 * The POSIX ACL codec and mode calculations, without a mount. Through the mount the kernel
 * validates an ACL before pagefs sees it, so these are the only tests that reach pagefs's
 * own validation; the expected answers are ext4's (the same blobs, raw setxattr, kernel
 * 6.18: see test/mount/acl.test.ts for the ones checked side by side).
 */
import { describe, it, expect } from 'vitest';
import { decodeAcl, encodeAcl, aclMode, createMasq, chmodMasq, TAG, ACL_UNDEFINED_ID as U, type AclEntry } from '../../src/util/posixacl.js';

const { USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER } = TAG;
const e = (tag: number, perm: number, id = U): AclEntry => ({ tag, perm, id });
const blob = (entries: AclEntry[], version = 2) => {
  const b = encodeAcl(entries);
  b.writeUInt32LE(version, 0);
  return b;
};
const errno = (fn: () => unknown) => {
  try {
    fn();
    return 'OK';
  } catch (err: any) {
    return err.code;
  }
};

describe('decodeAcl: what ext4 (the kernel) accepts and refuses', () => {
  const minimal = [e(USER_OBJ, 6), e(GROUP_OBJ, 4), e(OTHER, 4)];
  const named = [e(USER_OBJ, 6), e(USER, 6, 65534), e(GROUP_OBJ, 4), e(GROUP, 5, 4), e(MASK, 7), e(OTHER, 0)];
  it('round-trips valid ACLs', () => {
    expect(decodeAcl(encodeAcl(minimal))).toEqual(minimal);
    expect(decodeAcl(encodeAcl(named))).toEqual(named);
  });
  it('a bare header is an empty ACL (a removal)', () => {
    expect(decodeAcl(blob([]))).toEqual([]);
  });
  it.each([
    ['shorter than the header', Buffer.from([2, 0]), 'EINVAL'],
    ['version 1', blob(minimal, 1), 'EOPNOTSUPP'],
    ['a partial entry', Buffer.concat([encodeAcl(minimal), Buffer.alloc(2)]), 'EINVAL'],
    ['an unknown tag', blob([e(USER_OBJ, 6), e(GROUP_OBJ, 4), e(0x40, 4)]), 'EINVAL'],
    ['a perm beyond rwx', blob([e(USER_OBJ, 8), e(GROUP_OBJ, 4), e(OTHER, 4)]), 'EINVAL'],
    ['a named user without a mask', blob([e(USER_OBJ, 6), e(USER, 6, 1000), e(GROUP_OBJ, 4), e(OTHER, 4)]), 'EINVAL'],
    ['GROUP_OBJ before USER_OBJ', blob([e(GROUP_OBJ, 4), e(USER_OBJ, 6), e(OTHER, 4)]), 'EINVAL'],
    ['no OTHER', blob([e(USER_OBJ, 6), e(GROUP_OBJ, 4)]), 'EINVAL'],
    ['two USER_OBJ', blob([e(USER_OBJ, 6), e(USER_OBJ, 6), e(GROUP_OBJ, 4), e(OTHER, 4)]), 'EINVAL'],
    ['two MASK', blob([e(USER_OBJ, 6), e(GROUP_OBJ, 4), e(MASK, 4), e(MASK, 4), e(OTHER, 4)]), 'EINVAL'],
    ['a named user with id -1', blob([e(USER_OBJ, 6), e(USER, 6, U), e(GROUP_OBJ, 4), e(MASK, 6), e(OTHER, 4)]), 'EINVAL'],
    ['a named group after the mask', blob([e(USER_OBJ, 6), e(GROUP_OBJ, 4), e(MASK, 6), e(GROUP, 6, 5), e(OTHER, 4)]), 'EINVAL'],
    ['two entries for one uid (accepted, as by ext4)', blob([e(USER_OBJ, 6), e(USER, 6, 5), e(USER, 4, 5), e(GROUP_OBJ, 4), e(MASK, 6), e(OTHER, 4)]), 'OK'],
  ])('%s: %s', (_what, value, want) => {
    expect(errno(() => decodeAcl(value))).toBe(want);
  });
});

describe('mode calculations (fs/posix_acl.c semantics)', () => {
  it('aclMode: the mask stands for the group bits; only a 3-entry ACL is equivalent', () => {
    expect(aclMode([e(USER_OBJ, 7), e(GROUP_OBJ, 5), e(OTHER, 1)], 0o100000)).toEqual({ mode: 0o100751, equivalent: true });
    expect(aclMode([e(USER_OBJ, 6), e(USER, 7, 9), e(GROUP_OBJ, 4), e(MASK, 6), e(OTHER, 0)], 0o102777))
      .toEqual({ mode: 0o102660, equivalent: false });
  });
  it('createMasq: a file created 0666 under default u::rwx g::r-x g:adm:rwx m::rwx o::r-x', () => {
    const dflt = [e(USER_OBJ, 7), e(GROUP_OBJ, 5), e(GROUP, 7, 4), e(MASK, 7), e(OTHER, 5)];
    const r = createMasq(dflt, 0o100666);
    expect(r.mode).toBe(0o100664);
    expect(r.acl).toEqual([e(USER_OBJ, 6), e(GROUP_OBJ, 5), e(GROUP, 7, 4), e(MASK, 6), e(OTHER, 4)]);
    expect(dflt[3].perm).toBe(7); // the parent's ACL is not touched
  });
  it('createMasq: a minimal default ACL gives only a mode', () => {
    expect(createMasq([e(USER_OBJ, 7), e(GROUP_OBJ, 0), e(OTHER, 0)], 0o040777)).toEqual({ acl: null, mode: 0o040700 });
  });
  it('chmodMasq: owner, mask (or group without one) and other follow the mode; named entries stay', () => {
    expect(chmodMasq([e(USER_OBJ, 6), e(USER, 6, 9), e(GROUP_OBJ, 4), e(MASK, 6), e(OTHER, 4)], 0o100640))
      .toEqual([e(USER_OBJ, 6), e(USER, 6, 9), e(GROUP_OBJ, 4), e(MASK, 4), e(OTHER, 0)]);
    expect(chmodMasq([e(USER_OBJ, 6), e(GROUP_OBJ, 4), e(OTHER, 4)], 0o100705))
      .toEqual([e(USER_OBJ, 7), e(GROUP_OBJ, 0), e(OTHER, 5)]);
  });
});
