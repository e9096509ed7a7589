/**
 * A daemon killed without unmounting (SIGKILL here; the OOM killer or a crash alike)
 * leaves its control socket in the temporary directory; the next daemon to start removes
 * it (src/fuse/control.ts, sweepStaleControls), but only once it is older than a daemon
 * needs to start listening, and never a socket something still listens on. A socket
 * that cannot be made at all costs the mount nothing but `pagefs stat`'s live figures.
 */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import { mountFresh, expectCleanLog, pagefs, type Mounted } from '../helpers/mount.js';
import { controlPath, queryControl } from '../../src/fuse/control.js';

// Above pid_max (32768 by default, 2^22 at most): no process has this pid.
const DEAD_PID = 2 ** 22 + 1000 + (process.pid % 1000);

let mounts: Mounted[] = [];
let decoy: net.Server | null = null;
afterEach(async () => {
  for (const m of mounts) await m.cleanup();
  mounts = [];
  decoy?.close();
  decoy = null;
  fs.rmSync(controlPath(DEAD_PID), { force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const aged = (p: string) => fs.utimesSync(p, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));

async function gone(p: string, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (!fs.existsSync(p)) return true;
  return !fs.existsSync(p);
}

describe('control sockets of dead daemons', () => {
  it('a SIGKILLed daemon\'s socket is removed by a later daemon once old enough; a listened-on one stays', async () => {
    const a = await mountFresh();
    mounts.push(a);
    const dead = controlPath(a.proc.pid!);
    await a.kill();
    expect(fs.lstatSync(dead).isSocket(), 'SIGKILL leaves the socket behind').toBe(true);

    // Young: a daemon may have bound its path and not be listening yet.
    const b = await mountFresh();
    mounts.push(b);
    await sleep(1000);
    expect(fs.existsSync(dead), 'a socket made a moment ago is left alone').toBe(true);
    await b.unmount();

    // A socket named for a pid that is gone but still listened on (another pid namespace).
    decoy = net.createServer((s) => {
      s.on('error', () => undefined); // the sweep hangs up at once
      s.end('{}\n');
    });
    await new Promise<void>((r) => decoy!.listen(controlPath(DEAD_PID), r));
    aged(controlPath(DEAD_PID));
    aged(dead);

    const c = await mountFresh();
    mounts.push(c);
    expect(await gone(dead, 10_000), 'the dead daemon\'s socket is removed').toBe(true);
    await sleep(500);
    expect(fs.existsSync(controlPath(DEAD_PID)), 'a socket something listens on stays').toBe(true);
    // The new daemon's own socket answers.
    expect((await queryControl(c.proc.pid!)).pid).toBe(c.proc.pid);
    await c.unmount();
    expect(fs.existsSync(controlPath(c.proc.pid!)), 'a clean unmount removes the daemon\'s own socket').toBe(false);
    for (const m of [b, c]) expectCleanLog(m);
  }, 90_000);
});

describe('a control socket that cannot be made', () => {
  it('TMPDIR missing: the daemon logs it and serves; pagefs stat says it did not answer; the unmount is clean', async () => {
    const m = await mountFresh({ env: { ...process.env, TMPDIR: '/nonexistent-pagefs-tmpdir' } });
    mounts.push(m);
    const f = `${m.mp}/f`;
    await fs.promises.writeFile(f, 'still served');
    expect(await fs.promises.readFile(f, 'utf8')).toBe('still served');
    expect(m.log()).toMatch(/control socket \/nonexistent-pagefs-tmpdir\/pagefs-ctl-\d+\.sock: .*the mount serves without it/);
    const r = await pagefs(['stat', m.mp]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/did not answer on its control socket/);
    await m.unmount();
    expectCleanLog(m);
  }, 60_000);
});
