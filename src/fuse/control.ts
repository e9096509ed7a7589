/**
 * The daemon's control socket: a Unix socket, root-only, that answers one JSON document
 * of live figures (page cache, locks, reader threads, reservations) to whoever connects.
 * `pagefs stat MOUNTPOINT` reads it; the store alone cannot tell what is in memory.
 */
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function controlPath(pid: number): string {
  return path.join(os.tmpdir(), `pagefs-ctl-${pid}.sock`);
}

export function serveControl(pid: number, snapshot: () => unknown): () => void {
  const p = controlPath(pid);
  fs.rmSync(p, { force: true });
  const server = net.createServer((sock) => {
    // A client that gave up (queryControl's timeout on a busy daemon) makes our write fail
    // with EPIPE; unhandled, that error event killed the daemon and left its mount dead.
    sock.on('error', () => undefined);
    sock.end(JSON.stringify(snapshot(), (_k, v) => (typeof v === 'bigint' ? Number(v) : v)) + '\n');
  });
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
