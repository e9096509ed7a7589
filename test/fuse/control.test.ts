/**
 * The daemon's control socket (src/fuse/control.ts), which `pagefs stat MOUNTPOINT` and
 * scripts/load.mjs query: a client that hangs up before the answer is written (its
 * timeout ran out while the daemon was busy) must not take the daemon down. The busy
 * daemon is this process, its event loop blocked by spawnSync while a child connects
 * and hangs up; the answer is then written into a closed socket.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { spawnSync } from 'node:child_process';
import { serveControl, controlPath, queryControl } from '../../src/fuse/control.js';

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
    stop = serveControl(PID, () => ({ answers: ++answers, pad: 'x'.repeat(1 << 16) }));
    await new Promise((r) => setTimeout(r, 100)); // listening
    const r = spawnSync(process.execPath, ['-e', hangUp, controlPath(PID), '20'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    // Now the event loop accepts the 20 dead connections and writes into them.
    await new Promise((r) => setTimeout(r, 500));
    const live = await queryControl(PID);
    expect(live.answers).toBeGreaterThanOrEqual(1);
  }, 60_000);
});
