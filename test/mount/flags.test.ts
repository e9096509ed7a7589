/**
 * Inode flags (chattr/lsattr, FS_IOC_GETFLAGS/SETFLAGS, FS_IOC_FSGETXATTR/FSSETXATTR)
 * and their enforcement, through the real mount, each step run the same way on a
 * loop-mounted ext4 image: the transcripts (result or errno of every step) must be equal.
 * The steps live in flags_scenario.py.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mountFresh, run, pagefs, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { mountExt4, type Ext4 } from '../helpers/ext4.js';
import { ok, q, shOk } from './lib.js';

const SCENARIO = path.join(path.dirname(fileURLToPath(import.meta.url)), 'flags_scenario.py');
const PY = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const NOBODY = 65534;

let m: Mounted;
let ext4: Ext4;
beforeAll(async () => {
  [m, ext4] = await Promise.all([mountFresh({ mountArgs: ['-o', 'allow_other'] }), mountExt4()]);
  fs.chmodSync(m.dir, 0o755); // mkdtemp made it 0700: nobody must be stopped by the flags, not by the path
}, 90_000);
afterAll(async () => {
  await m?.cleanup();
  await ext4?.cleanup();
}, 90_000);

type Where = 'pagefs' | 'ext4';
const roots = (): [Where, string][] => [['pagefs', m.mp], ['ext4', ext4.mp]];

/** Runs scenario parts in a fresh directory `name` on both filesystems; returns each transcript as lines. */
async function scenario(name: string, parts: string[]): Promise<Record<Where, string[]>> {
  const out = {} as Record<Where, string[]>;
  for (const [where, root] of roots()) {
    const dir = path.join(root, name);
    await fsp.mkdir(dir);
    const r = await run(PY, [SCENARIO, dir, ...parts], { timeoutMs: 120_000 });
    out[where] = ok(r, `${where}: flags_scenario ${parts.join(' ')}`).trim().split('\n');
  }
  return out;
}

/** argv as another user, with a timeout: its exit code and output. */
function asUser(uid: number, argv: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { uid, gid: uid, cwd: '/', env: { PATH: '/usr/bin:/bin:/usr/sbin:/sbin' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, out: out.trim() }); });
  });
}

/** lsattr's flag column without ext4's own 'e' (extents), and the path made relative. */
function lsattrLines(text: string, root: string): string[] {
  return text.trim().split('\n').map((l) => {
    const [flags, ...rest] = l.split(' ');
    return `${flags.replace(/e/g, '-')} ${rest.join(' ').replace(root, '<root>')}`;
  });
}

describe('inode flags: the same steps on pagefs and ext4', () => {
  for (const part of ['immutable_file', 'append_file', 'immutable_dir', 'append_dir', 'other_flags']) {
    it(`${part}: every step gives ext4's result or errno`, async () => {
      const t = await scenario(`scn-${part}`, [part]);
      expect(t.pagefs.length).toBeGreaterThan(5);
      expect(t.pagefs).toEqual(t.ext4);
    });
  }

  it('chattr and lsattr print the same on both', async () => {
    const out = {} as Record<Where, string[]>;
    for (const [where, root] of roots()) {
      const d = path.join(root, 'tools');
      const script = `set -u; cd ${q(d)}; echo data > f; mkdir sub
        chattr +i f; lsattr f; echo more >> f 2>/dev/null || echo "append refused"
        chattr -i +a f; lsattr f; echo more >> f && cat f; rm f 2>/dev/null || echo "rm refused"
        chattr -a +A +d f; lsattr f; lsattr -d sub
        chattr +i sub; lsattr -d sub; touch sub/x 2>/dev/null || echo "create refused"; chattr -i sub
        chattr = f; lsattr f
        xfs_io -c 'chattr +d' f; lsattr f; xfs_io -c 'chattr -d' -c 'chattr +A' f; lsattr f; chattr = f`;
      await fsp.mkdir(d);
      out[where] = lsattrLines(await shOk(script, { timeoutMs: 60_000 }), d);
    }
    expect(out.pagefs).toContain('----i----------------- f');
    expect(out.pagefs).toEqual(out.ext4);
  });

  it('only root changes append-only and immutable; the owner may change the others', async () => {
    const res = {} as Record<Where, string[]>;
    for (const [where, root] of roots()) {
      const d = path.join(root, 'owner');
      await fsp.mkdir(d, { mode: 0o755 });
      await fsp.chmod(d, 0o755);
      const f = path.join(d, 'f');
      await fsp.writeFile(f, 'x');
      await fsp.chown(f, NOBODY, NOBODY);
      const steps = [['+d'], ['+i'], ['+a'], ['-d']];
      res[where] = [];
      for (const s of steps) {
        const r = await asUser(NOBODY, ['chattr', ...s, f]);
        res[where].push(`${s[0]}: ${r.code === 0 ? 'OK' : /Operation not permitted/.test(r.out) ? 'EPERM' : r.out}`);
      }
      // Not the owner: refused by the kernel's ownership check before any daemon sees it.
      await fsp.chown(f, 0, 0);
      const r = await asUser(NOBODY, ['chattr', '+d', f]);
      res[where].push(`other user +d: ${r.code === 0 ? 'OK' : /Operation not permitted/.test(r.out) ? 'EPERM' : r.out}`);
    }
    expect(res.pagefs).toEqual(['+d: OK', '+i: EPERM', '+a: EPERM', '-d: OK', 'other user +d: EPERM']);
    expect(res.pagefs).toEqual(res.ext4);
  });

  it('flags ext4 honours and pagefs does not are refused with EOPNOTSUPP (docs/CONFORMANCE.md)', async () => {
    const dir = path.join(m.mp, 'unsupported');
    await fsp.mkdir(dir);
    const t = ok(await run(PY, [SCENARIO, dir, 'unsupported'], { timeoutMs: 60_000 }), 'unsupported').trim().split('\n');
    expect(t).toEqual([
      'unsup +S (sync): EOPNOTSUPP',
      'unsup +e (extents): EOPNOTSUPP',
      'unsup +j (data journalling): EOPNOTSUPP',
      'unsup getflags: OK:0x0',
    ]);
  });
});

describe('inode flags persist', () => {
  it('across a remount, and still refuse what they refused', async () => {
    const d = path.join(m.mp, 'persist');
    await shOk(`set -e; mkdir ${q(d)}; cd ${q(d)}; echo keep > f; mkdir dir; echo log > log
      chattr +i f; chattr +a log; chattr +a dir; chattr +A +d dir`);
    const before = await shOk(`cd ${q(d)}; lsattr f log; lsattr -d dir`);
    await m.unmount();
    const r = await pagefs(['fsck', m.store]);
    expect(r.stdout + r.stderr).toMatch(/clean/);
    await m.remount();
    const after = await shOk(`cd ${q(d)}; lsattr f log; lsattr -d dir`);
    expect(after).toBe(before);
    expect(after).toContain('----i----------------- f');
    expect(after).toContain('-----a---------------- log');
    expect(after).toContain('-----adA-------------- dir');
    const refused = await shOk(`cd ${q(d)}; { echo x > f; } 2>&1 || true; rm log 2>&1 || true; echo x >> log && touch dir/new && rm dir/new 2>&1 || true`);
    expect(refused).toMatch(/f: Operation not permitted/);
    expect(refused).toMatch(/cannot remove 'log': Operation not permitted/);
    expect(refused).toMatch(/cannot remove 'dir\/new': Operation not permitted/);
    expect(await fsp.readFile(path.join(d, 'f'), 'utf8')).toBe('keep\n');
    expect(await fsp.readFile(path.join(d, 'log'), 'utf8')).toBe('log\nx\n');
    await shOk(`cd ${q(d)}; chattr -i f; chattr -a log; chattr -a -A -d dir`);
    await m.unmount();
    expectCleanLog(m);
    await m.remount();
  });
});
