"""
Inode flag steps for test/mount/flags.test.ts, run as root in an empty directory on
pagefs and on ext4: each step prints one line "name: result" (OK, OK:<detail> or the
errno name), and the test compares the two transcripts line by line.

Flag words are printed without the bits ext4 sets on its own (extents, inline data),
which pagefs has no use for.
"""
import ctypes, fcntl, os, struct, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from steps import step  # noqa: E402

FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IOC_FSGETXATTR = 0x801c581f
FS_IOC_FSSETXATTR = 0x401c5820
FS_XFLAG_NODUMP, FS_XFLAG_NOATIME = 0x80, 0x40
IMMUTABLE, APPEND, NODUMP, NOATIME = 0x10, 0x20, 0x40, 0x80
EXT4_OWN = 0x80000 | 0x10000000  # EXTENTS_FL, INLINE_DATA_FL
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE = 0x01, 0x02, 0x10

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def getflags(p):
    fd = os.open(p, os.O_RDONLY)
    try:
        v = struct.unpack('I', fcntl.ioctl(fd, FS_IOC_GETFLAGS, b'\0' * 4))[0]
        return hex(v & ~EXT4_OWN)
    finally:
        os.close(fd)


def setflags_own(p, v):
    """setflags(v) keeping ext4's own bits (EXT4_OWN) as the file has them, as chattr
    does: a word without EXTENTS_FL makes ext4 try to convert the file to block maps,
    which fails (EOPNOTSUPP) or not depending on whether its delayed allocation has run
    yet. pagefs has no such bits, so it sees the same request either way."""
    fd = os.open(p, os.O_RDONLY)
    try:
        cur = struct.unpack('I', fcntl.ioctl(fd, FS_IOC_GETFLAGS, b'\0' * 4))[0]
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack('I', v | (cur & EXT4_OWN)))
    finally:
        os.close(fd)


def chflags(p, add=0, remove=0):
    """What chattr does: read the flags, change some bits, write them all back."""
    fd = os.open(p, os.O_RDONLY)
    try:
        v = struct.unpack('I', fcntl.ioctl(fd, FS_IOC_GETFLAGS, b'\0' * 4))[0]
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack('I', (v | add) & ~remove))
    finally:
        os.close(fd)


def xflags_get(p):
    """struct fsxattr's fsx_xflags (what xfs_io's lsattr reads)."""
    fd = os.open(p, os.O_RDONLY)
    try:
        return hex(struct.unpack_from('I', fcntl.ioctl(fd, FS_IOC_FSGETXATTR, b'\0' * 28), 0)[0])
    finally:
        os.close(fd)


def xflags_set(p, x):
    """What xfs_io's chattr does: read struct fsxattr, set fsx_xflags, write it back."""
    fd = os.open(p, os.O_RDONLY)
    try:
        buf = bytearray(fcntl.ioctl(fd, FS_IOC_FSGETXATTR, b'\0' * 28))
        struct.pack_into('I', buf, 0, x)
        fcntl.ioctl(fd, FS_IOC_FSSETXATTR, bytes(buf))
    finally:
        os.close(fd)


def ctime_moves(p, change):
    """Whether stat(2) shows a new ctime at once after `change` (ext4 moves it at every flag
    change; pagefs must make the kernel drop its cached attributes for it to show)."""
    before = os.stat(p).st_ctime_ns
    time.sleep(0.02)
    change()
    return 'moved' if os.stat(p).st_ctime_ns > before else 'unchanged'


def opened(p, flags):
    os.close(os.open(p, flags, 0o644))


def falloc(fd, mode, off, ln):
    if libc.fallocate(fd, mode, off, ln) != 0:
        raise OSError(ctypes.get_errno(), 'fallocate')


def read(p):
    with open(p, 'rb') as f:
        return f.read().decode()


def by_name(tag, f):
    """Changes through the file's name: truncate, attributes, names, xattrs (f has xattr user.old)."""
    step(tag + ' truncate', lambda: os.truncate(f, 0))
    step(tag + ' chmod', lambda: os.chmod(f, 0o600))
    step(tag + ' chown', lambda: os.chown(f, 1, 1))
    step(tag + ' utime now', lambda: os.utime(f, None))
    step(tag + ' utime explicit', lambda: os.utime(f, (1, 1)))
    step(tag + ' unlink', lambda: os.unlink(f))
    step(tag + ' rename from', lambda: os.rename(f, tag + '2'))
    step(tag + ' link', lambda: os.link(f, tag + '-link'))
    step(tag + ' setxattr', lambda: os.setxattr(f, 'user.new', b'1'))
    step(tag + ' removexattr', lambda: os.removexattr(f, 'user.old'))


def immutable_file():
    f = 'imm'
    with open(f, 'w') as fh:
        fh.write('hello')
    os.setxattr(f, 'user.old', b'1')
    open('other', 'w').close()
    rw = os.open(f, os.O_RDWR)
    src = os.open('other', os.O_RDWR)
    os.write(src, b'0123456789' * 1000)
    step('imm getflags new', lambda: getflags(f))
    step('imm set +i', lambda: chflags(f, IMMUTABLE))
    step('imm getflags', lambda: getflags(f))
    step('imm open O_WRONLY', lambda: opened(f, os.O_WRONLY))
    step('imm open O_RDWR', lambda: opened(f, os.O_RDWR))
    step('imm open O_WRONLY|O_APPEND', lambda: opened(f, os.O_WRONLY | os.O_APPEND))
    step('imm open O_RDONLY|O_TRUNC', lambda: opened(f, os.O_RDONLY | os.O_TRUNC))
    step('imm open O_RDONLY', lambda: opened(f, os.O_RDONLY))
    step('imm read', lambda: read(f))
    by_name('imm', f)
    step('imm rename onto', lambda: os.rename('other', f))
    step('imm getxattr', lambda: os.getxattr(f, 'user.old').decode())
    step('imm write (fd opened before)', lambda: os.write(rw, b'x'))
    step('imm pwrite (fd opened before)', lambda: os.pwrite(rw, b'x', 100))
    step('imm ftruncate', lambda: os.ftruncate(rw, 1))
    step('imm fchmod', lambda: os.fchmod(rw, 0o600))
    step('imm fallocate', lambda: falloc(rw, 0, 0, 8192))
    step('imm fallocate keep size', lambda: falloc(rw, FALLOC_FL_KEEP_SIZE, 0, 8192))
    step('imm punch hole', lambda: falloc(rw, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096))
    step('imm copy_file_range into', lambda: os.copy_file_range(src, rw, 4096, 0, 0))
    step('imm copy_file_range from', lambda: os.copy_file_range(rw, src, 5, 0, 0))
    step('imm content', lambda: read(f))
    step('imm set +d while immutable', lambda: chflags(f, NODUMP))
    step('imm set -i', lambda: chflags(f, 0, IMMUTABLE))
    step('imm write after -i', lambda: os.pwrite(rw, b'J', 0))
    step('imm content after -i', lambda: read(f))
    step('imm getflags after -i', lambda: getflags(f))
    os.close(rw)
    os.close(src)


def append_file():
    f = 'app'
    with open(f, 'w') as fh:
        fh.write('log1\n')
    os.setxattr(f, 'user.old', b'1')
    rw = os.open(f, os.O_RDWR)
    step('app set +a', lambda: chflags(f, APPEND))
    step('app getflags', lambda: getflags(f))
    step('app open O_WRONLY', lambda: opened(f, os.O_WRONLY))
    step('app open O_RDWR', lambda: opened(f, os.O_RDWR))
    step('app open O_WRONLY|O_APPEND|O_TRUNC', lambda: opened(f, os.O_WRONLY | os.O_APPEND | os.O_TRUNC))
    step('app open O_RDONLY|O_TRUNC', lambda: opened(f, os.O_RDONLY | os.O_TRUNC))
    step('app open O_RDONLY', lambda: opened(f, os.O_RDONLY))

    def append():
        fd = os.open(f, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b'log2\n')
            os.pwrite(fd, b'log3\n', 0)  # O_APPEND: lands at the end whatever the offset
        finally:
            os.close(fd)
    step('app append', append)
    step('app content', lambda: read(f).replace('\n', '|'))
    by_name('app', f)
    step('app ftruncate', lambda: os.ftruncate(rw, 0))
    step('app fallocate', lambda: falloc(rw, 0, 0, 8192))
    step('app fallocate keep size', lambda: falloc(rw, FALLOC_FL_KEEP_SIZE, 0, 16384))
    step('app punch hole', lambda: falloc(rw, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096))
    step('app zero range', lambda: falloc(rw, FALLOC_FL_ZERO_RANGE, 0, 4096))
    step('app size', lambda: os.stat(f).st_size)
    step('app set -a', lambda: chflags(f, 0, APPEND))
    step('app truncate after -a', lambda: os.truncate(f, 2))
    step('app content after -a', lambda: read(f))
    os.close(rw)


def immutable_dir():
    d = 'idir'
    os.mkdir(d)
    os.mkdir(d + '/sub')
    with open(d + '/e', 'w') as fh:
        fh.write('e')
    open('outside', 'w').close()
    step('idir set +i', lambda: chflags(d, IMMUTABLE))
    step('idir getflags', lambda: getflags(d))
    step('idir create', lambda: opened(d + '/new', os.O_CREAT | os.O_WRONLY))
    step('idir mkdir', lambda: os.mkdir(d + '/newdir'))
    step('idir mkdir existing', lambda: os.mkdir(d + '/sub'))
    step('idir symlink', lambda: os.symlink('t', d + '/sl'))
    step('idir mkfifo', lambda: os.mkfifo(d + '/fifo'))
    step('idir link into', lambda: os.link('outside', d + '/ln'))
    step('idir rename into', lambda: os.rename('outside', d + '/moved'))
    step('idir unlink', lambda: os.unlink(d + '/e'))
    step('idir rmdir', lambda: os.rmdir(d + '/sub'))
    step('idir rename out', lambda: os.rename(d + '/e', 'e-out'))
    step('idir rename within', lambda: os.rename(d + '/e', d + '/e2'))
    step('idir write existing file', lambda: open(d + '/e', 'a').write('more'))
    step('idir read existing file', lambda: read(d + '/e'))
    step('idir chmod', lambda: os.chmod(d, 0o700))
    step('idir rmdir itself', lambda: os.rmdir(d))
    step('idir list', lambda: ','.join(sorted(os.listdir(d))))
    step('idir set -i', lambda: chflags(d, 0, IMMUTABLE))
    step('idir create after -i', lambda: opened(d + '/new', os.O_CREAT | os.O_WRONLY))
    empty = 'idir-empty'
    os.mkdir(empty)
    step('idir empty set +i', lambda: chflags(empty, IMMUTABLE))
    step('idir rmdir empty immutable', lambda: os.rmdir(empty))
    step('idir rename immutable dir', lambda: os.rename(empty, 'idir-empty2'))
    step('idir empty set -i', lambda: chflags(empty, 0, IMMUTABLE))
    step('idir rmdir after -i', lambda: os.rmdir(empty))


def append_dir():
    d = 'adir'
    os.mkdir(d)
    with open(d + '/e', 'w') as fh:
        fh.write('e')
    open('outside2', 'w').close()
    step('adir set +a', lambda: chflags(d, APPEND))
    step('adir create', lambda: opened(d + '/new', os.O_CREAT | os.O_WRONLY))
    step('adir mkdir', lambda: os.mkdir(d + '/newdir'))
    step('adir rename into', lambda: os.rename('outside2', d + '/moved'))
    step('adir unlink', lambda: os.unlink(d + '/new'))
    step('adir rmdir', lambda: os.rmdir(d + '/newdir'))
    step('adir rename within', lambda: os.rename(d + '/e', d + '/e2'))
    step('adir rename out', lambda: os.rename(d + '/e', 'e-out2'))
    step('adir list', lambda: ','.join(sorted(os.listdir(d))))
    step('adir set -a', lambda: chflags(d, 0, APPEND))
    step('adir unlink after -a', lambda: os.unlink(d + '/new'))


def other_flags():
    f = 'plain'
    open(f, 'w').close()
    os.mkdir('pdir')
    step('other set +A +d', lambda: chflags(f, NOATIME | NODUMP))
    step('other getflags', lambda: getflags(f))
    step('other dir set +A +d', lambda: chflags('pdir', NOATIME | NODUMP))
    step('other dir getflags', lambda: getflags('pdir'))
    step('other write with +A +d', lambda: open(f, 'a').write('x'))
    step('other set none', lambda: setflags_own(f, 0))
    step('other getflags none', lambda: getflags(f))
    step('other fsxattr set nodump', lambda: xflags_set(f, FS_XFLAG_NODUMP))
    step('other getflags after fsxattr', lambda: getflags(f))
    step('other fsxattr set noatime', lambda: xflags_set(f, FS_XFLAG_NOATIME))
    step('other fsxattr get', lambda: xflags_get(f))
    step('other getflags after fsxattr noatime', lambda: getflags(f))
    step('other fsxattr set none', lambda: xflags_set(f, 0))
    os.stat(f)  # the kernel caches the attributes here; the flag changes below must drop them
    step('other ctime at setflags', lambda: ctime_moves(f, lambda: chflags(f, NODUMP)))
    step('other ctime at fsxattr', lambda: ctime_moves(f, lambda: xflags_set(f, 0)))
    # Bits no ext4 shows: refused. TOPDIR on a file: refused (ext4_mask_flags).
    step('other set reserved bit', lambda: setflags_own(f, 0x80000000))
    step('other set +T on a file', lambda: setflags_own(f, 0x20000))
    # INDEX (htree): shown by ext4, never settable by anyone: silently dropped.
    step('other set index bit', lambda: setflags_own(f, 0x1000))
    step('other getflags after index', lambda: getflags(f))


def shift(via_ioctl):
    """COLLAPSE/INSERT_RANGE: pagefs's ioctls (FUSE refuses these fallocate modes), ext4's fallocate."""
    def run(mode, nr):
        def go():
            if via_ioctl:
                fcntl.ioctl(fd, (1 << 30) | (16 << 16) | (0x50 << 8) | nr, struct.pack('QQ', 4096, 4096))
            else:
                falloc(fd, mode, 4096, 4096)
            return os.fstat(fd).st_size
        return go
    collapse, insert = run(0x08, 1), run(0x20, 2)
    with open('shift', 'wb') as f:
        f.write(b'abcd' * 4096)
    fd = os.open('shift', os.O_RDWR)
    chflags('shift', IMMUTABLE)
    step('shift collapse immutable', collapse)
    step('shift insert immutable', insert)
    chflags('shift', APPEND, IMMUTABLE)
    step('shift collapse append-only', collapse)
    step('shift insert append-only', insert)
    chflags('shift', 0, APPEND)
    step('shift collapse', collapse)
    step('shift insert', insert)
    os.close(fd)


def shift_pagefs():
    shift(True)


def shift_ext4():
    shift(False)


def kernel_first():
    """Where the kernel answers before pagefs is asked: unlink(2) of a directory."""
    os.makedirs('kdir/sub')
    chflags('kdir', IMMUTABLE)
    step('kernel unlink of a directory in an immutable directory', lambda: os.unlink('kdir/sub'))
    chflags('kdir', 0, IMMUTABLE)


def unsupported():
    """Flags ext4 honours and pagefs does not: pagefs-only steps (docs/CONFORMANCE.md)."""
    f = 'unsup'
    open(f, 'w').close()
    step('unsup +S (sync)', lambda: chflags(f, 0x8))
    step('unsup +e (extents)', lambda: chflags(f, 0x80000))
    step('unsup +j (data journalling)', lambda: chflags(f, 0x4000))
    step('unsup getflags', lambda: getflags(f))


for part in sys.argv[2:]:
    os.chdir(sys.argv[1])
    globals()[part]()
