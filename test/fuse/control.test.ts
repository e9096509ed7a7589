/**
 * The daemon's control socket (src/fuse/control.ts), which `pagefs stat MOUNTPOINT` and
 * scripts/load.mjs query: a client that hangs up before the answer is written (its
 * timeout ran out while the daemon was busy) must not take the daemon down. The busy
 * daemon is this process, its event loop blocked by spawnSync while a child connects
 * and hangs up; the answer is then written into a closed socket. And which leftover
 * sockets a starting daemon removes (test/mount/stale-control.test.ts has it through
 * the mount).
 */
import { describe, it, expect, afterEach } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { serveControl, controlPath, queryControl, sweepStaleControls } from '../../src/fuse/control.js';
import { processStartedMs } from '../../src/util/process.js';
import { distFile } from '../../src/util/paths.js';

// A pid no daemon has: the socket's name is made from it.
const PID = 2 ** 22 + (process.pid % 1000);
let stop: (() => void) | null = null;

afterEach(() => {
  stop?.();
  stop = null;
});

const hangUp = `
const net = require('node:net');
let left = Number(process.argv[2]);
for (let i = Number(process.argv[2]); i > 0; i--) {
  const s = net.connect(process.argv[1]);
  s.on('connect', () => s.destroy());
  s.on('error', () => {});
  s.on('close', () => { if (--left === 0) process.exit(0); });
}`;

describe('control socket', () => {
  it('keeps serving after clients that hung up before the answer was written', async () => {
    let answers = 0;
    stop = serveControl(PID, () => ({ answers: ++answers, pad: 'x'.repeat(1 << 16) }), (msg) => { throw new Error(msg); });
    await new Promise((r) => setTimeout(r, 100)); // listening
    const r = spawnSync(process.execPath, ['-e', hangUp, controlPath(PID), '20'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    // Now the event loop accepts the 20 dead connections and writes into them.
    await new Promise((r) => setTimeout(r, 500));
    const live = await queryControl(PID);
    expect(live.answers).toBeGreaterThanOrEqual(1);
  }, 60_000);
});

describe('sweeping the sockets of dead daemons (sweepStaleControls, in a directory of its own)', () => {
  let dir = '';
  const servers: net.Server[] = [];
  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A Unix socket file at `p` that nothing listens on: bound by a child that then exits. */
  function deadSocket(p: string): void {
    const r = spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(process.argv[1], () => process.exit(0))`, p], { timeout: 30_000 });
    expect(r.status).toBe(0);
    expect(fs.lstatSync(p).isSocket()).toBe(true);
  }
  const at = (p: string, ms: number) => fs.utimesSync(p, new Date(ms), new Date(ms));

  it('removes only sockets no live process made and nothing listens on', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pagefs-sweep-'));
    const name = (pid: number) => path.join(dir, `pagefs-ctl-${pid}.sock`);
    const started = processStartedMs(process.pid)!;
    // To within the boot time's one second (and Node's own start before its clock).
    expect(Math.abs(started - (Date.now() - process.uptime() * 1000))).toBeLessThan(2500);
    const dead = 2 ** 22 + 2000 + (process.pid % 1000);

    deadSocket(name(dead)); // a killed daemon's
    const reused = path.join(dir, `pagefs-ctl-${process.pid}.sock`);
    deadSocket(reused);
    const ours = path.join(dir, `pagefs-ctl-${process.ppid}.sock`);
    deadSocket(ours); // made by a live process (the pid's, started before it), even if nothing listens
    const listened = name(dead + 1);
    const s = net.createServer((c) => c.on('error', () => undefined).end());
    servers.push(s);
    await new Promise<void>((r) => s.listen(listened, r));
    const plain = name(dead + 2);
    fs.writeFileSync(plain, 'not a socket');

    // At or under the caller's own mountpoint nothing is looked at.
    expect(await sweepStaleControls(dir, 0, dir)).toEqual([]);
    expect(await sweepStaleControls(path.dirname(dir), 0, dir)).toEqual([]);
    // Too young: nothing.
    expect(await sweepStaleControls('/nonexistent-mountpoint', 60_000, dir)).toEqual([]);
    // No age limit: the gone pid's socket goes; this process's pid's stays (made after the
    // process started), though nothing listens on it.
    expect(await sweepStaleControls('/nonexistent-mountpoint', 0, dir)).toEqual([name(dead)]);
    at(reused, started - 3_000); // made before this process, which now has the pid, by more than the slack

    expect(await sweepStaleControls('/nonexistent-mountpoint', 0, dir)).toEqual([reused]);
    for (const p of [ours, listened, plain]) expect(fs.existsSync(p), p).toBe(true);
  }, 60_000);

  it('skips a socket it may not remove (another user\'s, in a sticky directory) instead of failing', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pagefs-sweep-'));
    fs.chmodSync(dir, 0o1777);
    const sock = path.join(dir, `pagefs-ctl-${2 ** 22 + 3000 + (process.pid % 1000)}.sock`);
    deadSocket(sock);
    fs.chmodSync(sock, 0o777); // anyone may connect, and be refused
    const code = `import { sweepStaleControls } from ${JSON.stringify(distFile('fuse/control.js'))};
      console.log(JSON.stringify(await sweepStaleControls('/nonexistent-mountpoint', 0, process.argv[1])));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code, dir], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('[]');
    expect(fs.lstatSync(sock).isSocket()).toBe(true);
  }, 60_000);
});
