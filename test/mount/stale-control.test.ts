/**
 * A daemon killed without unmounting (SIGKILL here; the OOM killer or a crash alike)
 * leaves its control socket in the temporary directory; the next daemon to start removes
 * it (src/fuse/control.ts, sweepStaleControls), but only once it is older than a daemon
 * needs to start listening, and never a socket something still listens on. A socket
 * that cannot be made at all costs the mount nothing but `pagefs stat`'s live figures.
 *
 * Each daemon here gets a TMPDIR of its test's own, so that no daemon of another test
 * file sweeps these sockets first.
 */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { mountFresh, expectCleanLog, run, BIN, type Mounted } from '../helpers/mount.js';
import { queryControl } from '../../src/fuse/control.js';
import { eventually } from './lib.js';

// Above pid_max (32768 by default, 2^22 at most): no process has this pid.
const DEAD_PID = 2 ** 22 + 1000;

let mounts: Mounted[] = [];
let decoy: net.Server | null = null;
let tmp = '';
afterEach(async () => {
  for (const m of mounts) await m.cleanup();
  mounts = [];
  decoy?.close();
  decoy = null;
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  tmp = '';
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mtime = (p: string, ms: number) => fs.utimesSync(p, new Date(ms), new Date(ms));

function socketsUnder(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((n) => fs.lstatSync(path.join(dir, n)).isSocket());
}


describe('control sockets of dead daemons', () => {
  it('a SIGKILLed daemon\'s socket is removed by a later daemon once old enough; a listened-on one stays', async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pagefs-ctl-test-'));
    const env = { ...process.env, TMPDIR: tmp };
    const sock = (pid: number) => path.join(tmp, `pagefs-ctl-${pid}.sock`);

    const a = await mountFresh({ env });
    mounts.push(a);
    const dead = sock(a.proc.pid!);
    await a.kill();
    expect(fs.lstatSync(dead).isSocket(), 'SIGKILL leaves the socket behind').toBe(true);

    // Young (made later than now): a daemon may have bound its path and not listen yet.
    mtime(dead, Date.now() + 60_000);
    const b = await mountFresh({ env });
    mounts.push(b);
    await sleep(1000);
    expect(fs.existsSync(dead), 'a socket made a moment ago is left alone').toBe(true);
    await b.unmount();
    expect(b.log()).not.toMatch(/removed \d+ control socket/);

    // A socket named for a pid that is gone but still listened on (another pid namespace).
    decoy = net.createServer((s) => {
      s.on('error', () => undefined); // the sweep hangs up at once
      s.end('{}\n');
    });
    await new Promise<void>((r) => decoy!.listen(sock(DEAD_PID), r));
    mtime(sock(DEAD_PID), Date.now() - 60_000);
    mtime(dead, Date.now() - 60_000);

    const c = await mountFresh({ env });
    mounts.push(c);
    expect(await eventually(async () => !fs.existsSync(dead), 10_000), 'the dead daemon\'s socket is removed').toBe(true);
    expect(await eventually(async () => /removed 1 control socket\(s\) of pagefs daemons that died without unmounting/.test(c.log()), 5_000),
      `the new daemon says it removed one: ${c.log()}`).toBe(true);
    expect(fs.existsSync(sock(DEAD_PID)), 'a socket something listens on stays').toBe(true);
    // The new daemon's own socket answers.
    expect((await queryControl(c.proc.pid!, 5000, sock(c.proc.pid!))).pid).toBe(c.proc.pid);
    await c.unmount();
    expect(fs.existsSync(sock(c.proc.pid!)), 'a clean unmount removes the daemon\'s own socket').toBe(false);
    for (const m of [b, c]) expectCleanLog(m);
  }, 90_000);
});

describe('a control socket that cannot be made', () => {
  const cases: [string, () => string][] = [
    ['TMPDIR missing', () => path.join(tmp, 'missing')],
    ['TMPDIR a regular file', () => {
      const f = path.join(tmp, 'file');
      fs.writeFileSync(f, 'not a directory');
      return f;
    }],
    ['a socket path too long for a Unix socket', () => {
      const d = path.join(tmp, 'd'.repeat(100));
      fs.mkdirSync(d);
      return d;
    }],
  ];
  for (const [what, makeTmpdir] of cases) {
    it(`${what}: the daemon logs it and serves; pagefs stat says it did not answer; the unmount is clean`, async () => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pagefs-ctl-test-'));
      const env = { ...process.env, TMPDIR: makeTmpdir() };
      const m = await mountFresh({ env });
      mounts.push(m);
      const f = path.join(m.mp, 'f');
      await fs.promises.writeFile(f, 'still served');
      expect(await fs.promises.readFile(f, 'utf8')).toBe('still served');
      expect(await eventually(async () => /control socket .*pagefs-ctl-\d+\.sock: .*the mount serves without it/.test(m.log()), 5_000), m.log()).toBe(true);
      const r = await run(process.execPath, [BIN, 'stat', m.mp], { env, timeoutMs: 30_000 });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/did not answer on its control socket/);
      await m.unmount(); // the daemon exits 0 after writing everything back
      expectCleanLog(m);
      expect(socketsUnder(tmp), 'no socket bound at some other path').toEqual([]);
    }, 60_000);
  }
});
