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
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = NAME.exec(name);
    if (!m) continue;
    const p = path.join(dir, name);
    try {
      const st = fs.lstatSync(p);
      if (!st.isSocket() || Date.now() - st.mtimeMs < minAgeMs) continue;
      // A process started after the socket was made holds a reused pid, not the socket
      // (the slack covers the start time's one-second precision).
      const started = processStartedMs(Number(m[1]));
      if (started !== null && started <= st.mtimeMs + START_SLACK_MS) continue;
    } catch {
      continue;
    }
    if (!(await refused(p))) continue;
    try {
      fs.rmSync(p, { force: true });
      removed.push(p);
    } catch {
      // Another user's, in a sticky directory (EPERM): theirs to remove.
    }
  }
  return removed;
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
 * socket that cannot be made (TMPDIR missing or not writable, a path too long for a
 * Unix socket) is logged, not fatal: the mount serves without it, and `pagefs stat` of
 * the mountpoint says the daemon did not answer on its control socket.
 */
export function serveControl(pid: number, snapshot: () => unknown, log: (msg: string) => void): () => void {
  const p = controlPath(pid);
  try {
    fs.rmSync(p, { force: true });
  } catch {
    // listen() below fails too, and says why.
  }
  const server = net.createServer((sock) => {
    // A client that gave up (queryControl's timeout on a busy daemon) makes our write fail
    // with EPIPE; unhandled, that error event killed the daemon and left its mount dead.
    sock.on('error', () => undefined);
    sock.end(JSON.stringify(snapshot(), (_k, v) => (typeof v === 'bigint' ? Number(v) : v)) + '\n');
  });
  server.on('error', (e) => log(`control socket ${p}: ${e.message}; the mount serves without it (pagefs stat of the mountpoint cannot reach this daemon)`));
  server.listen(p, () => fs.chmodSync(p, 0o600));
  server.unref();
  return () => {
    server.close();
    fs.rmSync(p, { force: true });
  };
}

export function queryControl(pid: number, timeoutMs = 5000): Promise<any> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(controlPath(pid));
    let buf = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('the daemon did not answer')); }, timeoutMs);
    sock.on('data', (d) => { buf += d.toString(); });
    sock.on('end', () => { clearTimeout(timer); try { resolve(JSON.parse(buf)); } catch (e) { reject(e); } });
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}
