/**
 * Helpers shared by the hostile-input tests (hostile-*.test.ts): namespace calls on raw
 * byte paths made by one python3 child per batch (a hung mount fails the batch by
 * timeout instead of hanging the worker), and the check that the daemon still answers.
 */
import fsp from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { expectCleanLog, type Mounted } from '../helpers/mount.js';
import { pagefsAndExt4, type SideBySide } from '../helpers/ext4.js';

/**
 * Runs each call with bytes paths (hex on the wire, so any byte but NUL goes through) and
 * prints one JSON answer per call: 'OK', the errno name, or the call's result. Calls:
 * create, mkdir, rmdir, unlink, symlink TARGET PATH, link OLD NEW, rename OLD NEW,
 * mknod (a FIFO), stat ([type, nlink, size]; a directory's size is null: filesystems
 * differ there), lstat, readlink (hex), listdir (sorted
 * hex names), read (hex of the contents), write PATH HEXDATA, chdir_mkdirs N NAME (mkdir
 * NAME and chdir into it N times: a tree deeper than PATH_MAX), chdir_rmdirs N NAME (the
 * same tree removed from the bottom up; the first call must be cwd at the top),
 * links N SRC PREFIX (hard links PREFIX0..), unlinks N PREFIX, setxattr PATH NAME
 * HEXVALUE [FLAGS], getxattr PATH NAME [SIZE], listxattr PATH [SIZE], removexattr, lsetxattr.
 */
const PY = String.raw`
import errno, json, os, sys, ctypes
libc = ctypes.CDLL(None, use_errno=True)
def name(e): return 'EOPNOTSUPP' if e == errno.EOPNOTSUPP else errno.errorcode.get(e, str(e))
def b(x): return bytes.fromhex(x)
def sized(fn, args, size):
    fn.restype = ctypes.c_ssize_t
    buf = ctypes.create_string_buffer(max(size, 1))
    r = fn(*args, buf if size > 0 else None, ctypes.c_size_t(size))
    if r < 0: raise OSError(ctypes.get_errno(), 'sized')
    return buf.raw[:r].hex() if size > 0 else r
def one(c):
    op, a = c[0], c[1:]
    if op == 'create': os.close(os.open(b(a[0]), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    elif op == 'mkdir': os.mkdir(b(a[0]))
    elif op == 'rmdir': os.rmdir(b(a[0]))
    elif op == 'unlink': os.unlink(b(a[0]))
    elif op == 'symlink': os.symlink(b(a[0]), b(a[1]))
    elif op == 'link': os.link(b(a[0]), b(a[1]))
    elif op == 'rename': os.rename(b(a[0]), b(a[1]))
    elif op == 'mknod': os.mknod(b(a[0]), 0o644 | 0o010000)
    elif op in ('stat', 'lstat'):
        s = (os.stat if op == 'stat' else os.lstat)(b(a[0]))
        return [s.st_mode >> 12, s.st_nlink, None if s.st_mode >> 12 == 4 else s.st_size]
    elif op == 'readlink': return os.readlink(b(a[0])).hex()
    elif op == 'listdir': return sorted(n.hex() for n in os.listdir(b(a[0])))
    elif op == 'read':
        with open(b(a[0]), 'rb') as f: return f.read().hex()
    elif op == 'write':
        with open(b(a[0]), 'wb') as f: f.write(b(a[1]))
    elif op == 'chdir_mkdirs':
        for i in range(int(a[0])):
            os.mkdir(b(a[1]))
            os.chdir(b(a[1]))
    elif op == 'chdir_rmdirs':
        for i in range(int(a[0])): os.chdir(b(a[1]))
        for i in range(int(a[0])):
            os.chdir(b'..')
            os.rmdir(b(a[1]))
    elif op == 'chdir': os.chdir(b(a[0]))
    elif op == 'links':
        for i in range(int(a[0])): os.link(b(a[1]), b(a[2]) + str(i).encode())
    elif op == 'unlinks':
        for i in range(int(a[0])): os.unlink(b(a[1]) + str(i).encode())
    elif op == 'setxattr': os.setxattr(b(a[0]), b(a[1]), b(a[2]), int(a[3]) if len(a) > 3 else 0)
    elif op == 'lsetxattr': os.setxattr(b(a[0]), b(a[1]), b(a[2]), int(a[3]) if len(a) > 3 else 0, follow_symlinks=False)
    elif op == 'getxattr':
        if len(a) > 2: return sized(libc.getxattr, [b(a[0]), b(a[1])], int(a[2]))
        return os.getxattr(b(a[0]), b(a[1])).hex()
    elif op == 'listxattr':
        if len(a) > 1: return sized(libc.listxattr, [b(a[0])], int(a[1]))
        return sorted(n for n in os.listxattr(b(a[0])))
    elif op == 'removexattr': os.removexattr(b(a[0]), b(a[1]))
    else: raise SystemExit('bad op ' + op)
    return 'OK'
out = []
for c in json.loads(sys.stdin.read()):
    try: out.append(one(c))
    except OSError as e: out.append(name(e.errno))
print(json.dumps(out))
`;

export type PathArg = string | Buffer;
export type Call = [string, ...(PathArg | number)[]];

/** Paths and bytes go as hex; numbers (counts, flags, sizes) as decimal. */
const hex = (a: PathArg | number) => (typeof a === 'number' ? String(a) : Buffer.isBuffer(a) ? a.toString('hex') : Buffer.from(a).toString('hex'));

/** Runs the calls in order in one python3 child (cwd `cwd`); one answer per call. */
export async function pyCalls(calls: Call[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<unknown[]> {
  const wire = calls.map(([op, ...args]) => [op, ...args.map(hex)]);
  const r = await runWithInput('python3', ['-c', PY], JSON.stringify(wire), { cwd: opts.cwd ?? '/', timeoutMs: opts.timeoutMs ?? 60_000 });
  if (r.code !== 0) throw new Error(`python3 calls failed (${r.code}): ${r.stderr.slice(0, 2000)}\ncalls: ${JSON.stringify(calls).slice(0, 500)}`);
  return JSON.parse(r.stdout);
}

/** One call's answer. */
export async function pyCall(...call: Call): Promise<unknown> {
  return (await pyCalls([call]))[0];
}

async function runWithInput(cmd: string, args: string[], input: string, opts: { cwd: string; timeoutMs: number }) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { stderr += `\n[killed after ${opts.timeoutMs} ms: a hung mount?]`; child.kill('SIGKILL'); }, opts.timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code, sig) => { clearTimeout(timer); resolve({ code: code ?? (sig ? -1 : 0), stdout, stderr }); });
    child.stdin.on('error', () => { /* reported by exit */ });
    child.stdin.end(input);
  });
}

/** After every property run: the daemon answers a stat of the mount and its log is clean. */
export async function expectDaemonWell(m: Mounted): Promise<void> {
  await fsp.stat(m.mp);
  expectCleanLog(m);
}

export type Both = SideBySide;

/** A fresh pagefs and a loop-mounted ext4, both with 4 KiB blocks, for one test file's tests. */
export function mountBothForFile(): Both {
  return pagefsAndExt4({ blockSize: 4096 }, { blockSize: 4096 });
}
