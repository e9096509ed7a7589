/**
 * --poll-us: after a request that came soon after the one before, the daemon polls for
 * the next before its event loop sleeps. Seen from outside as sleeps saved: a process
 * sending one request (readlink, never cached by the kernel here) every 0.2 ms or so
 * finds the daemon's main thread asleep each time without polling, since the daemon is
 * done long before, and awake with a budget of 5 ms (voluntary context switches of that
 * thread, /proc); and once the requests stop, so does the polling (the daemon's CPU time
 * over an idle second). No timing is asserted: the gaps only need to be longer than a
 * readlink takes the daemon and, mostly, shorter than the budget, which a loaded machine
 * keeps.
 */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { mountFresh, run, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { ok } from './lib.js';
import { procStat } from '../../src/util/process.js';

let m: Mounted | null = null;
afterEach(async () => {
  await m?.cleanup();
  m = null;
});

const N = 1000;

/** The daemon's CPU time (utime + stime) in clock ticks (1/100 s). */
function cpuTicks(pid: number): number {
  const f = procStat(pid)!;
  return Number(f[11]) + Number(f[12]);
}

function sleeps(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8');
  return Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)![1]);
}

async function sleepsDuringReadlinks(pollUs: number): Promise<{ sleeps: number; idleTicks: number }> {
  m = await mountFresh({ capacity: '16M', mountArgs: ['--poll-us', String(pollUs)] });
  const link = path.join(m.mp, 'l');
  await fsp.symlink('target', link);
  const loop = `import os, time\nfor _ in range(${N}):\n    assert os.readlink(${JSON.stringify(link)}) == 'target'\n    time.sleep(0.0002)\n`;
  ok(await run('python3', ['-c', 'import os; os.readlink(' + JSON.stringify(link) + ')'], { timeoutMs: 30_000 }), 'readlink');
  const before = sleeps(m.proc.pid!);
  ok(await run('python3', ['-c', loop], { timeoutMs: 60_000 }), 'readlink loop');
  const n = sleeps(m.proc.pid!) - before;
  // Then a second with no request at all: the polling must have stopped.
  const t0 = cpuTicks(m.proc.pid!);
  await new Promise((r) => setTimeout(r, 1000));
  const idleTicks = cpuTicks(m.proc.pid!) - t0;
  expectCleanLog(m);
  await m.unmount();
  await m.cleanup();
  m = null;
  return { sleeps: n, idleTicks };
}

describe('--poll-us', () => {
  it('saves the daemon most of its sleeps between requests that come one at a time; 0 sleeps after each', async () => {
    const without = (await sleepsDuringReadlinks(0)).sleeps;
    const withPoll = await sleepsDuringReadlinks(5000);
    expect(without, 'without polling the main thread sleeps about once a request').toBeGreaterThan(N * 0.8);
    expect(withPoll.sleeps, `with polling (${without} sleeps without)`).toBeLessThan(N / 4);
    // A poll that outlived its budget would burn the whole idle second (100 ticks).
    expect(withPoll.idleTicks, 'CPU ticks of the idle daemon in the second after the requests').toBeLessThan(20);
  }, 120_000);
});
