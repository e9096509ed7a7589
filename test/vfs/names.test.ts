/**
 * '/' and NUL cannot reach the daemon through a path (the kernel splits at '/', C strings
 * end at NUL), so the names the daemon refuses on its own are checked here, below the mount.
 */
import { describe, it, expect } from 'vitest';
import { checkName } from '../../src/vfs/names.js';

const errno = (name: Buffer) => {
  try {
    checkName(name);
    return 'OK';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
};

describe('checkName', () => {
  it('refuses a slash or a NUL anywhere in a name with EINVAL', () => {
    for (const n of ['a/b', '/', 'ab/', 'a\0b', '\0', 'ab\0']) expect(errno(Buffer.from(n, 'latin1'))).toBe('EINVAL');
  });
  it('takes 255 bytes of any other value, refuses 256 and the empty name', () => {
    const all = Buffer.from(Array.from({ length: 255 }, (_, i) => (i % 255) + 1).map((b) => (b === 0x2f ? 0x30 : b)));
    expect(errno(all)).toBe('OK');
    expect(errno(Buffer.alloc(256, 0x61))).toBe('ENAMETOOLONG');
    expect(errno(Buffer.alloc(0))).toBe('ENOENT');
  });
});
