/**
 * The hard-link limit through the real mount, against a loop-mounted ext4: a file takes
 * links up to a link count of 65,000 (ext4's EXT4_LINK_MAX, pagefs's LINK_MAX), the next
 * link is EMLINK, and after one unlink a link works again. Apart from the other hostile
 * tree tests because 65,000 links through FUSE take a while.
 */
import { describe, it, expect } from 'vitest';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { expectCleanLog } from '../helpers/mount.js';
import { type Where } from '../helpers/ext4.js';
import { pyCalls, expectDaemonWell, mountBothForFile } from './hostile-lib.js';

const env = mountBothForFile();
const LINK_MAX = 65_000;

describe('the hard-link limit', () => {
  it(`links up to a count of ${LINK_MAX}, then EMLINK; one unlink makes room again; as ext4`, async () => {
    const out = {} as Record<Where, unknown[]>;
    for (const [where, root] of [['pagefs', env.m.mp], ['ext4', env.ext4.mp]] as [Where, string][]) {
      const dir = path.join(root, 'linkmax');
      await fsp.mkdir(dir);
      out[where] = await pyCalls([
        ['write', 'f', 'data'], ['mkdir', 'l'],
        ['links', LINK_MAX - 1, 'f', 'l/'], ['stat', 'f'],
        ['link', 'f', 'over'], ['link', 'l/0', 'over2'], ['symlink', 'f', 'sym'], ['link', 'sym', 'symlink-link'],
        ['unlink', `l/${LINK_MAX - 2}`], ['link', 'f', 'again'], ['link', 'f', 'over3'], ['stat', 'again'],
        ['unlink', 'again'], ['unlinks', LINK_MAX - 2, 'l/'], ['stat', 'f'], ['listdir', 'l'],
      ], { cwd: dir, timeoutMs: 900_000 }).catch((e) => [String(e)]);
    }
    expect(out.pagefs).toEqual(out.ext4);
    expect(out.pagefs).toEqual(['OK', 'OK', 'OK', [8, LINK_MAX, 4], 'EMLINK', 'EMLINK', 'OK', 'OK', 'OK', 'OK', 'EMLINK', [8, LINK_MAX, 4],
      'OK', 'OK', [8, 1, 4], []]);
    await expectDaemonWell(env.m);
  }, 1_200_000);

  it('unmounts cleanly with a clean log', async () => {
    await env.m.unmount();
    expectCleanLog(env.m);
  }, 120_000);
});
