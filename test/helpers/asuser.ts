/**
 * Runs filesystem calls as another user, through setpriv and python3: the user's real and
 * effective uid and gid and supplementary groups are set exactly (no /etc/passwd entry is
 * needed, so any number works and nothing is added to the system). Each call's answer is
 * 'OK', 'OK:<detail>' or the errno name, one per step, so a test compares whole
 * sequences between pagefs and ext4 in one expect.
 */
import fs from 'node:fs';
import { run } from './mount.js';

const PY = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

export interface User {
  uid: number;
  gid: number;
  /** Supplementary groups (none by default). */
  groups?: number[];
}

export const NOBODY: User = { uid: 65534, gid: 65534 };

/**
 * One step: [op, ...args]. Ops: read, write (no O_TRUNC), trunc (O_WRONLY|O_TRUNC),
 * exec, ls, create, mkdir, rmdir, unlink, rename, link, stat (mode:uid:gid in octal and
 * decimal), statmode (statx(2) asking for the mode alone, as `stat -c %a` does: the kernel
 * answers it from its cache unless it dropped the mode), chmod (octal), chown (uid gid, -1 keeps), touch (UTIME_NOW), utime (explicit
 * atime and mtime in seconds), truncate (path, size), fallocate (path, offset, length;
 * posix_fallocate), punch (path, offset, length; FALLOC_FL_PUNCH_HOLE|KEEP_SIZE), copy
 * (source, target: copy_file_range of the whole source to offset 0), setcap (a file
 * capability, CAP_NET_BIND_SERVICE permitted and effective, as a v2 security.capability
 * xattr), getcap (that xattr in hex, or ENODATA).
 */
export type Step = (string | number)[];

const RUNNER = String.raw`
import ctypes, errno, json, os, subprocess, sys
def name(e): return errno.errorcode.get(e, str(e))
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
CAP = bytes.fromhex('0100000200040000000000000000000000000000')
def step(op, a):
    if op == 'read':
        with open(a[0], 'rb') as f: return 'OK:%d' % len(f.read())
    if op == 'write':
        fd = os.open(a[0], os.O_WRONLY)
        try: os.write(fd, b'w')
        finally: os.close(fd)
        return 'OK'
    if op == 'trunc':
        os.close(os.open(a[0], os.O_WRONLY | os.O_TRUNC)); return 'OK'
    if op == 'exec':
        return 'OK:%d' % subprocess.run([a[0]], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    if op == 'ls': return 'OK:' + ','.join(sorted(os.listdir(a[0])))
    if op == 'create':
        os.close(os.open(a[0], os.O_CREAT | os.O_EXCL | os.O_WRONLY, int(a[1], 8) if len(a) > 1 else 0o644)); return 'OK'
    if op == 'mkdir': os.mkdir(a[0], int(a[1], 8) if len(a) > 1 else 0o755); return 'OK'
    if op == 'rmdir': os.rmdir(a[0]); return 'OK'
    if op == 'unlink': os.unlink(a[0]); return 'OK'
    if op == 'rename': os.rename(a[0], a[1]); return 'OK'
    if op == 'link': os.link(a[0], a[1]); return 'OK'
    if op == 'stat':
        st = os.lstat(a[0]); return 'OK:%o:%d:%d' % (st.st_mode & 0o7777, st.st_uid, st.st_gid)
    if op == 'statmode':
        buf = ctypes.create_string_buffer(256)
        if libc.statx(-100, a[0].encode(), 0x100, 0x2, buf) != 0: raise OSError(ctypes.get_errno(), 'statx')
        return 'OK:%o' % (int.from_bytes(buf.raw[28:30], 'little') & 0o7777)
    if op == 'chmod': os.chmod(a[0], int(a[1], 8)); return 'OK'
    if op == 'chown': os.chown(a[0], int(a[1]), int(a[2])); return 'OK'
    if op == 'touch': os.utime(a[0], None); return 'OK'
    if op == 'utime': os.utime(a[0], (int(a[1]), int(a[2]))); return 'OK'
    if op == 'truncate': os.truncate(a[0], int(a[1])); return 'OK'
    if op == 'fallocate' or op == 'punch':
        fd = os.open(a[0], os.O_WRONLY)
        try:
            if op == 'fallocate': os.posix_fallocate(fd, int(a[1]), int(a[2]))
            elif libc.fallocate(fd, 3, int(a[1]), int(a[2])) != 0: raise OSError(ctypes.get_errno(), 'fallocate')
        finally: os.close(fd)
        return 'OK'
    if op == 'copy':
        src = os.open(a[0], os.O_RDONLY); dst = os.open(a[1], os.O_WRONLY)
        try: return 'OK:%d' % os.copy_file_range(src, dst, os.fstat(src).st_size, 0, 0)
        finally: os.close(src); os.close(dst)
    if op == 'setcap': os.setxattr(a[0], 'security.capability', CAP); return 'OK'
    if op == 'getcap': return 'OK:' + os.getxattr(a[0], 'security.capability').hex()
    return 'bad op ' + op
out = []
for s in json.loads(sys.argv[1]):
    try: out.append(step(s[0], [str(x) for x in s[1:]]))
    except OSError as e: out.append(name(e.errno))
print(json.dumps(out))
`;

/** Runs the steps in order as `user` (or as root when user is null); returns one answer per step. */
export async function asUser(user: User | null, steps: Step[]): Promise<string[]> {
  const py = [PY, '-c', RUNNER, JSON.stringify(steps)];
  const argv = user === null ? py : [
    'setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`,
    ...(user.groups?.length ? [`--groups=${user.groups.join(',')}`] : ['--clear-groups']),
    '--', ...py,
  ];
  const r = await run(argv[0], argv.slice(1), { timeoutMs: 30_000, cwd: '/', env: { PATH: '/usr/bin:/bin:/usr/sbin:/sbin', HOME: '/' } });
  if (r.code !== 0) throw new Error(`as ${JSON.stringify(user)}: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as string[];
}
