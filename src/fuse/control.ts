/**
 * The daemon's control socket: a Unix socket, root-only, that answers one JSON document
 * of live figures (page cache, locks, reader threads, reservations) to whoever connects.
 * `pagefs stat MOUNTPOINT` reads it; the store alone cannot tell what is in memory.
 */
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { processStartedMs } from '../util/process.js';
import { pathWithin, realOrResolved } from '../util/paths.js';

const NAME = /^pagefs-ctl-(\d+)\.sock$/;
const START_SLACK_MS = 2000;
/** sun_path holds 108 bytes, its terminating NUL included. */
const MAX_SOCKET_PATH = 107;

export function controlPath(pid: number): string {
  return path.join(os.tmpdir(), `pagefs-ctl-${pid}.sock`);
}

/**
 * Removes the control sockets of daemons that died without unmounting (SIGKILL, the OOM
 * killer, a crash): nothing else would, and each one stays in the temporary directory
 * until reboot. A socket goes only when no live process that started before it was
 * made holds its pid (the pid is gone, a zombie's, or reused since), it is older than
 * `minAgeMs` (a daemon starting now may have bound its path and not yet listen()ed on
 * it), and a connection to it is refused (no process, of this pid namespace or another,
 * listens there). Nothing is looked at when `dir` lies under `mountpoint`, the caller's
 * own mount: that lookup would wait on the calling daemon itself. Resolves to the paths
 * removed.
 */
export async function sweepStaleControls(mountpoint: string, minAgeMs = 10_000, dir = os.tmpdir()): Promise<string[]> {
  if (pathWithin(realOrResolved(dir), realOrResolved(mountpoint))) return [];
  let entries: fs.Dirent[];
  try {
    // Types from the directory itself: only sockets are stat'ed below, so no lookup
    // crosses into a mount (this runs while the daemon serves its own).
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const e of entries) {
    const m = NAME.exec(e.name);
    if (!m || !e.isSocket()) continue;
    const p = path.join(dir, e.name);
    const st = lstatOrNull(p);
    if (!st || !st.isSocket() || Date.now() - st.mtimeMs < minAgeMs) continue;
    // A process started after the socket was made holds a reused pid, not the socket
    // (the slack covers the start time's one-second precision).
    const started = processStartedMs(Number(m[1]));
    if (started !== null && started <= st.mtimeMs + START_SLACK_MS) continue;
    if (!(await refused(p))) continue;
    // Still the socket that was refused: a daemon given that pid meanwhile makes a new one.
    const now = lstatOrNull(p);
    if (!now || now.ino !== st.ino || now.mtimeMs !== st.mtimeMs) continue;
    try {
      fs.rmSync(p, { force: true });
      removed.push(p);
    } catch {
      // Another user's, in a sticky directory (EPERM): theirs to remove.
    }
  }
  return removed;
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}

/** Whether connecting to the Unix socket at `p` is refused: nothing listens there. */
function refused(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(p);
    s.on('connect', () => { s.destroy(); resolve(false); });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

/**
 * Answers `snapshot()` at controlPath(pid) until the returned function is called. A
 * socket that cannot be made (TMPDIR missing, not a directory or not writable, a path
 * too long for a Unix socket) is logged, not fatal: the mount serves without it, and
 * `pagefs stat` of the mountpoint says the daemon did not answer on its control socket.
 * Nothing here throws, at the start or at the unmount (whose writeback comes after).
 */
export function serveControl(pid: number, snapshot: () => unknown, log: (msg: string) => void): () => void {
  const p = controlPath(pid);
  const unavailable = (why: string) => log(`control socket ${p}: ${why}; the mount serves without it (pagefs stat of the mountpoint cannot reach this daemon)`);
  // Node would bind a longer path cut short, somewhere else, without an error.
  if (Buffer.byteLength(p) > MAX_SOCKET_PATH) {
    unavailable(`longer than a Unix socket's path may be (${MAX_SOCKET_PATH} bytes)`);
    return () => undefined;
  }
  const remove = () => {
    try {
      fs.rmSync(p, { force: true });
    } catch {
      // Not ours to remove, or not there to remove: listen() says which at the start.
    }
  };
  remove();
  const server = net.createServer((sock) => {
    // A client that gave up (queryControl's timeout on a busy daemon) makes our write fail
    // with EPIPE; unhandled, that error event killed the daemon and left its mount dead.
    sock.on('error', () => undefined);
    sock.end(JSON.stringify(snapshot(), (_k, v) => (typeof v === 'bigint' ? Number(v) : v)) + '\n');
  });
  server.on('error', (e) => unavailable(e.message));
  server.listen(p, () => {
    try {
      fs.chmodSync(p, 0o600);
    } catch (e) {
      unavailable(`chmod: ${(e as Error).message}`);
      server.close();
    }
  });
  server.unref();
  return () => {
    server.close();
    remove();
  };
}

export function queryControl(pid: number, timeoutMs = 5000, at = controlPath(pid)): Promise<any> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(at);
    let buf = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('the daemon did not answer')); }, timeoutMs);
    sock.on('data', (d) => { buf += d.toString(); });
    sock.on('end', () => { clearTimeout(timer); try { resolve(JSON.parse(buf)); } catch (e) { reject(e); } });
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}
