"""
Calls whose answer the kernel's FUSE client decides before any daemon is asked (or
that libfuse 3.14 answers itself), for test/mount/limits.test.ts. Run in an empty
directory on pagefs and on ext4; each step prints "name: result".
"""
import ctypes, fcntl, os, struct, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from steps import name, step  # noqa: E402

FS_IOC_FIEMAP = 0xc020660b
FIBMAP = 1
FICLONE = 0x40049409
FICLONERANGE = 0x4020940d
RENAME_WHITEOUT = 4

libc = ctypes.CDLL(None, use_errno=True)
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]


def tmpfile():
    fd = os.open('.', os.O_TMPFILE | os.O_RDWR, 0o600)
    os.write(fd, b't')
    os.close(fd)


def fiemap():
    fd = os.open('a', os.O_RDONLY)
    try:
        buf = bytearray(32 + 56 * 4)
        struct.pack_into('QQIIII', buf, 0, 0, 2**64 - 1, 1, 0, 4, 0)  # whole file, FIEMAP_FLAG_SYNC, room for 4
        fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
        return 'extents=%d' % struct.unpack_from('I', buf, 20)[0]
    finally:
        os.close(fd)


def fibmap():
    fd = os.open('a', os.O_RDONLY)
    try:
        block = struct.unpack('i', fcntl.ioctl(fd, FIBMAP, struct.pack('i', 0)))[0]
        return 'block0=' + ('0' if block == 0 else 'nonzero')
    finally:
        os.close(fd)


def clone(cmd, arg):
    s, d = os.open('a', os.O_RDONLY), os.open('b', os.O_WRONLY)
    try:
        fcntl.ioctl(d, cmd, arg(s))
    finally:
        os.close(s)
        os.close(d)


def whiteout():
    open('w', 'w').close()
    if libc.renameat2(-100, b'w', -100, b'w2', RENAME_WHITEOUT) != 0:
        raise OSError(ctypes.get_errno(), 'renameat2')
    st = os.lstat('w')
    return 'left %s rdev=%d' % (oct(st.st_mode & 0o170000), st.st_rdev)


def flock():
    f1, f2 = os.open('a', os.O_RDONLY), os.open('a', os.O_RDONLY)
    try:
        fcntl.flock(f1, fcntl.LOCK_EX)
        try:
            fcntl.flock(f2, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return 'second lock granted'
        except OSError as e:
            return 'second lock ' + name(e.errno)
    finally:
        os.close(f1)
        os.close(f2)


def posix_lock():
    f = os.open('a', os.O_RDWR)
    fcntl.lockf(f, fcntl.LOCK_EX)
    pid = os.fork()
    if pid == 0:
        try:
            fcntl.lockf(os.open('a', os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB)
            os._exit(0)
        except OSError as e:
            os._exit(e.errno)
    _, st = os.waitpid(pid, 0)
    os.close(f)
    return 'other process ' + (name(os.WEXITSTATUS(st)) if os.WEXITSTATUS(st) else 'granted')


os.chdir(sys.argv[1])
with open('a', 'wb') as f:
    f.write(b'x' * 65536)
    os.fsync(f.fileno())
open('b', 'wb').close()
step('O_TMPFILE', tmpfile)
step('FS_IOC_FIEMAP', fiemap)
step('FIBMAP', fibmap)
step('FICLONE', lambda: clone(FICLONE, lambda s: s))
step('FICLONERANGE', lambda: clone(FICLONERANGE, lambda s: struct.pack('qQQQ', s, 0, 4096, 0)))
step('RENAME_WHITEOUT', whiteout)
step('flock', flock)
step('fcntl lock', posix_lock)
