/**
 * POSIX ACLs through the real mount, step by step the same on pagefs and on a loop-mounted
 * ext4 image (mounted with acl, its default): getfacl output, stat modes, and what a
 * non-root user (nobody, through setpriv) may then read, write and create. The pagefs
 * mount has -o allow_other (nobody must reach it at all) and default_permissions (always
 * on: the kernel checks modes and ACLs).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { mountFresh, run, sh, pagefs, expectCleanLog, type Mounted } from '../helpers/mount.js';
import { mountExt4, type Ext4 } from '../helpers/ext4.js';
import { asUser, NOBODY, type User } from '../helpers/asuser.js';
import { q } from './lib.js';

type Where = 'pagefs' | 'ext4';
const ADM = 1234;
const NOBODY_IN_ADM: User = { ...NOBODY, groups: [ADM] };

let m: Mounted;
let ext: Ext4;

beforeAll(async () => {
  m = await mountFresh({ mountArgs: ['-o', 'allow_other'] });
  fs.chmodSync(m.dir, 0o755); // nobody must be stopped by ACLs, not by mkdtemp's 0700
  const extOpts = { prefix: 'pagefs-acl-ext4-' };
  ext = await mountExt4(extOpts);
}, 120_000);

afterAll(async () => {
  await m?.cleanup();
  await ext?.cleanup();
}, 120_000);

/** Runs `fn` in a fresh 0755 directory `name` on pagefs and on ext4; returns both answers. */
async function onBoth<T>(name: string, fn: (dir: string, where: Where) => Promise<T>): Promise<Record<Where, T>> {
  const out = {} as Record<Where, T>;
  for (const [where, root] of [['pagefs', m.mp], ['ext4', ext.mp]] as [Where, string][]) {
    const dir = path.join(root, name);
    await fsp.mkdir(dir);
    await fsp.chmod(dir, 0o755);
    out[where] = await fn(dir, where);
  }
  return out;
}

/** A shell line as root; its stdout, or 'exit N: stderr' (the path names stripped, they differ). */
async function shell(script: string, cwd: string): Promise<string> {
  const r = await sh(script, { cwd, timeoutMs: 30_000 });
  return r.code === 0 ? r.stdout : `exit ${r.code}: ${r.stderr.replaceAll(cwd, '.')}`;
}

/** getfacl without the header (numeric ids) and the octal mode, for each relative path. */
async function acls(dir: string, ...names: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const n of names) out.push(`${n}: ${await shell(`stat -c %a ${q(n)} && getfacl -cn ${q(n)}`, dir)}`);
  return out;
}

/** Raw xattr calls through python3 os.*xattr (follow_symlinks False): one 'OK[:hex]' or errno name per step. */
const XATTR = String.raw`
import errno, json, os, sys
out = []
for op, p, name, val in json.loads(sys.argv[1]):
    try:
        if op == 'set': os.setxattr(p, name, bytes.fromhex(val), follow_symlinks=False); out.append('OK')
        elif op == 'get': out.append('OK:' + os.getxattr(p, name, follow_symlinks=False).hex())
        elif op == 'remove': os.removexattr(p, name, follow_symlinks=False); out.append('OK')
        elif op == 'list': out.append('OK:' + ','.join(sorted(os.listxattr(p, follow_symlinks=False))))
    except OSError as e:
        out.append('EOPNOTSUPP' if e.errno == errno.EOPNOTSUPP else errno.errorcode.get(e.errno, str(e.errno)))
print(json.dumps(out))
`;
async function xattrs(steps: [string, string, string, string][]): Promise<string[]> {
  const r = await run('python3', ['-c', XATTR, JSON.stringify(steps)], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`xattr probe: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** An ACL blob: version, then [tag, perm, id] entries (id -1 for the unnamed tags). */
function blob(entries: [number, number, number?][], version = 2): string {
  const b = Buffer.alloc(4 + entries.length * 8);
  b.writeUInt32LE(version, 0);
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + i * 8);
    b.writeUInt16LE(perm, 6 + i * 8);
    b.writeUInt32LE(id ?? 0xffffffff, 8 + i * 8);
  });
  return b.toString('hex');
}

describe('POSIX ACLs: pagefs and ext4 side by side', () => {
  it('a named-user entry lets nobody read and write root\'s 0600 file; the mask limits it', async () => {
    const res = await onBoth('named-user', async (d) => {
      const f = path.join(d, 'secret');
      await fsp.writeFile(f, 'hello');
      await fsp.chmod(f, 0o600);
      const before = await asUser(NOBODY, [['read', f], ['write', f]]);
      await shell('setfacl -m u:65534:rw secret', d);
      const granted = [...await acls(d, 'secret'), ...await asUser(NOBODY, [['read', f], ['write', f]])];
      await shell('setfacl -m m::r secret', d);
      const masked = [...await acls(d, 'secret'), ...await asUser(NOBODY, [['read', f], ['write', f]])];
      return { before, granted, masked };
    });
    expect(res.pagefs.before).toEqual(['EACCES', 'EACCES']);
    expect(res.pagefs.granted.slice(-2)).toEqual(['OK:5', 'OK']);
    expect(res.pagefs.masked.slice(-2)).toEqual(['OK:5', 'EACCES']);
    expect(res.pagefs).toEqual(res.ext4);
  });

  it('a named-group entry admits a member of the group and nobody else', async () => {
    const res = await onBoth('named-group', async (d) => {
      const f = path.join(d, 'g');
      await fsp.writeFile(f, 'abc');
      await fsp.chmod(f, 0o640);
      await shell(`setfacl -m g:${ADM}:rw g`, d);
      return [...await acls(d, 'g'), ...await asUser(NOBODY_IN_ADM, [['read', f], ['write', f]]),
        ...await asUser(NOBODY, [['read', f], ['write', f]])];
    });
    expect(res.pagefs.slice(-4)).toEqual(['OK:3', 'OK', 'EACCES', 'EACCES']);
    expect(res.pagefs).toEqual(res.ext4);
  });

  it('a default ACL is inherited by files, fifos and nested directories, and the umask is not applied', async () => {
    const res = await onBoth('inherit', async (d) => {
      await shell(`mkdir shared && setfacl -d -m u:65534:rwx,g:${ADM}:rx,o::- shared`, d);
      const made = await shell('umask 077 && mkdir shared/sub && mkdir shared/sub/deeper && touch shared/f shared/sub/deeper/f && mkfifo shared/fifo'
        + ' && install -m 0750 /dev/null shared/x', d);
      const out = [made, ...await acls(d, 'shared', 'shared/sub', 'shared/sub/deeper', 'shared/f', 'shared/sub/deeper/f', 'shared/fifo', 'shared/x')];
      const f = path.join(d, 'shared/sub/deeper/f');
      out.push(...await asUser(NOBODY, [['write', f], ['read', f], ['create', path.join(d, 'shared/sub/byNobody')], ['stat', path.join(d, 'shared/sub/byNobody')]]));
      out.push(...await acls(d, 'shared/sub/byNobody'));
      return out;
    });
    expect(res.pagefs).toEqual(res.ext4);
    expect(res.pagefs.join('\n')).toContain('user:65534:rwx'); // inherited at all
  });

  it('without a default ACL the umask applies (the filesystem applies it now, FUSE_DONT_MASK)', async () => {
    const res = await onBoth('umask', async (d) => {
      const made = await shell('umask 027 && mkdir dir && touch file && mkfifo fifo && ln -s file link && umask 0 && mkdir open', d);
      return [made, ...await acls(d, 'dir', 'file', 'fifo', 'open'), await shell('stat -c %a link', d)];
    });
    expect(res.pagefs).toEqual(res.ext4);
    expect(res.pagefs.slice(1, 3).map((l) => l.split('\n')[0])).toEqual(['dir: 750', 'file: 640']);
  });

  it('chmod after setfacl rewrites the mask and other entries, and access follows', async () => {
    const res = await onBoth('chmod', async (d) => {
      const f = path.join(d, 'f');
      await fsp.writeFile(f, 'data');
      await shell('chmod 600 f && setfacl -m u:65534:rw f', d);
      const out = [...await acls(d, 'f'), ...await asUser(NOBODY, [['write', f]])];
      await shell('chmod 604 f', d);
      out.push(...await acls(d, 'f'), ...await asUser(NOBODY, [['read', f], ['write', f]]));
      await shell('chmod 675 f', d);
      out.push(...await acls(d, 'f'), ...await asUser(NOBODY, [['write', f]]));
      await shell('chmod g+s,o-rwx f', d);
      out.push(...await acls(d, 'f'));
      return out;
    });
    expect(res.pagefs).toEqual(res.ext4);
  });

  it('setfacl to an ACL the mode bits express stores no ACL, only the mode', async () => {
    const res = await onBoth('equivalent', async (d) => {
      const f = path.join(d, 'f');
      await fsp.writeFile(f, 'x');
      await shell('chmod 644 f && setfacl --set u::rwx,g::r,o::- f', d);
      return [...await acls(d, 'f'), ...await xattrs([['list', f, '', ''], ['get', f, 'system.posix_acl_access', '']])];
    });
    expect(res.pagefs).toEqual(res.ext4);
    expect(res.pagefs[0].split('\n')[0]).toBe('f: 740');
  });

  it('setfacl -k drops the default ACL, setfacl -b the access ACL too; the mode stays', async () => {
    const res = await onBoth('strip', async (d) => {
      await shell('mkdir d && setfacl -m u:65534:rwx d && setfacl -d -m g:0:rwx d', d);
      const out = await acls(d, 'd');
      await shell('setfacl -k d', d);
      out.push(...await acls(d, 'd'));
      await shell('setfacl -b d', d);
      out.push(...await acls(d, 'd'), ...await xattrs([['list', path.join(d, 'd'), '', '']]));
      return out;
    });
    expect(res.pagefs).toEqual(res.ext4);
  });

  it('a default ACL on a file: EACCES; removing an ACL that is not there succeeds', async () => {
    const res = await onBoth('dflt-file', async (d) => {
      const f = path.join(d, 'f');
      await fsp.writeFile(f, 'x');
      const acl = blob([[1, 6], [4, 4], [0x20, 4]]);
      return [await shell('setfacl -d -m u::rwx f', d), ...await xattrs([
        ['set', f, 'system.posix_acl_default', acl], ['remove', f, 'system.posix_acl_default', ''],
        ['remove', f, 'system.posix_acl_access', ''], ['remove', d, 'system.posix_acl_default', ''],
      ])];
    });
    expect(res.pagefs.slice(1)).toEqual(['EACCES', 'OK', 'OK', 'OK']);
    expect(res.pagefs[0]).toMatch(/^exit 1: /);
    expect(res.pagefs).toEqual(res.ext4);
  });

  it('invalid ACL blobs through raw setxattr: the errno ext4 gives, and nothing changes', async () => {
    const cases: Record<string, string> = {
      short: '0200',
      version1: blob([[1, 6], [4, 4], [0x20, 4]], 1),
      partialEntry: blob([[1, 6], [4, 4], [0x20, 4]]) + '0000',
      unknownTag: blob([[1, 6], [4, 4], [0x40, 4]]),
      permBeyondRwx: blob([[1, 8], [4, 4], [0x20, 4]]),
      namedWithoutMask: blob([[1, 6], [2, 6, 1000], [4, 4], [0x20, 4]]),
      outOfOrder: blob([[4, 4], [1, 6], [0x20, 4]]),
      noOther: blob([[1, 6], [4, 4]]),
      namedIdMinus1: blob([[1, 6], [2, 6, 0xffffffff], [4, 4], [0x10, 6], [0x20, 4]]),
      headerOnly: blob([]),
    };
    const res = await onBoth('invalid', async (d) => {
      const f = path.join(d, 'f');
      await fsp.writeFile(f, 'x');
      await fsp.chmod(f, 0o640);
      const steps: [string, string, string, string][] = [];
      for (const v of Object.values(cases)) {
        steps.push(['set', f, 'system.posix_acl_access', v], ['set', d, 'system.posix_acl_default', v]);
      }
      return [...await xattrs(steps), ...await acls(d, '.', 'f')];
    });
    expect(res.pagefs.slice(0, 4)).toEqual(['EINVAL', 'EINVAL', 'EOPNOTSUPP', 'EOPNOTSUPP']);
    expect(res.pagefs).toEqual(res.ext4);
  });

  it('ACLs on symlinks: EOPNOTSUPP for the link itself; getfacl follows it', async () => {
    const res = await onBoth('symlink', async (d) => {
      await fsp.writeFile(path.join(d, 'target'), 'x');
      await fsp.symlink('target', path.join(d, 'link'));
      const l = path.join(d, 'link');
      const acl = blob([[1, 6], [2, 4, 65534], [4, 4], [0x10, 4], [0x20, 4]]);
      return [...await xattrs([['set', l, 'system.posix_acl_access', acl], ['get', l, 'system.posix_acl_access', ''],
        ['remove', l, 'system.posix_acl_access', ''], ['list', l, '', '']]),
      await shell('setfacl -m u:65534:r link', d), ...await acls(d, 'link', 'target')];
    });
    expect(res.pagefs.slice(0, 3)).toEqual(['EOPNOTSUPP', 'EOPNOTSUPP', 'EOPNOTSUPP']);
    expect(res.pagefs).toEqual(res.ext4);
  });

  it('only the owner (or root) may set an ACL', async () => {
    const res = await onBoth('owner', async (d) => {
      const f = path.join(d, 'f');
      await fsp.writeFile(f, 'x');
      await fsp.chmod(f, 0o666);
      const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'setfacl', '-m', 'u:65534:rwx', f], { timeoutMs: 30_000 });
      return [r.code, ...await acls(d, 'f')];
    });
    expect(res.pagefs[0]).not.toBe(0);
    expect(res.pagefs).toEqual(res.ext4);
  });

  it('setfacl (and chmod) by an owner outside the file\'s group drops set-group-ID; a member (supplementary group) keeps it', async () => {
    const setfaclAs = (groups: string, f: string) =>
      run('setpriv', ['--reuid=65534', '--regid=65534', groups, 'setfacl', '-m', 'u:65534:rwx', f], { timeoutMs: 30_000 });
    const res = await onBoth('sgid', async (d) => {
      await shell(`touch out in && chown 65534:${ADM} out in && chmod 2770 out in`, d);
      const codes = [(await setfaclAs('--clear-groups', path.join(d, 'out'))).code, (await setfaclAs(`--groups=${ADM}`, path.join(d, 'in'))).code];
      const after = await acls(d, 'out', 'in');
      // chmod's own rule, checked by the same group test: a supplementary member keeps the bit.
      await shell('chmod 0770 out', d);
      const chmod = await asUser(NOBODY_IN_ADM, [['chmod', path.join(d, 'out'), '2770'], ['stat', path.join(d, 'out')]]);
      return [...codes, ...after, ...chmod];
    });
    expect(res.pagefs.slice(0, 2)).toEqual([0, 0]);
    expect((res.pagefs[2] as string).split('\n')[0]).toBe('out: 770');
    expect((res.pagefs[3] as string).split('\n')[0]).toBe('in: 2770');
    expect(res.pagefs.slice(4)).toEqual(['OK', 'OK:2770:65534:1234']);
    expect(res.pagefs).toEqual(res.ext4);
  });

  it('cp -a keeps ACLs', async () => {
    const res = await onBoth('cp', async (d) => {
      await shell('mkdir src && setfacl -d -m u:65534:rx src && touch src/f && setfacl -m g:0:rw src/f && cp -a src dst', d);
      return acls(d, 'dst', 'dst/f');
    });
    expect(res.pagefs).toEqual(res.ext4);
    expect(res.pagefs.join('\n')).toContain('default:user:65534:r-x');
  });
});

describe('POSIX ACLs on pagefs: persistence and store checks', () => {
  it('ACLs and the modes they set survive a remount and the kernel forgetting its cache', async () => {
    const d = path.join(m.mp, 'persist');
    await fsp.mkdir(d);
    await fsp.chmod(d, 0o755);
    await fsp.writeFile(path.join(d, 'f'), 'persist');
    await fsp.chmod(path.join(d, 'f'), 0o600);
    await shell(`setfacl -m u:65534:r f && setfacl -d -m g:${ADM}:rwx . && mkdir sub`, d);
    const before = await acls(d, '.', 'f', 'sub');
    await m.unmount();
    await m.remount();
    expect(await acls(d, '.', 'f', 'sub')).toEqual(before);
    expect(await asUser(NOBODY, [['read', path.join(d, 'f')], ['write', path.join(d, 'f')]])).toEqual(['OK:7', 'EACCES']);
  });

  it('unmounts cleanly, with a clean daemon log and a clean fsck', async () => {
    await m.unmount();
    expectCleanLog(m);
    const r = await pagefs(['fsck', m.store]);
    expect(r.stdout + r.stderr).toMatch(/clean/);
    expect(r.code).toBe(0);
  });

  it('fsck names a corrupt ACL row, a default ACL on a file and an ACL the mode expresses', async () => {
    const db = new Database(m.store);
    const ino = (name: string) => db.prepare('SELECT ino FROM dentries WHERE name = ?').pluck().get(Buffer.from(name)) as number;
    const set = db.prepare('INSERT OR REPLACE INTO xattrs (ino, name, value) VALUES (?, ?, ?)');
    const f = ino('f');
    set.run(f, Buffer.from('system.posix_acl_access'), Buffer.from(blob([[1, 6], [2, 4, 7], [4, 4], [0x20, 4]]), 'hex'));
    set.run(f, Buffer.from('system.posix_acl_default'), Buffer.from(blob([[1, 6], [4, 4], [0x20, 4]]), 'hex'));
    set.run(ino('sub'), Buffer.from('system.posix_acl_access'), Buffer.from(blob([[1, 7], [4, 7], [0x20, 0]]), 'hex'));
    db.close();
    const r = await pagefs(['fsck', m.store]);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain(`inode ${f}: system.posix_acl_access: invalid ACL: named entries without a MASK`);
    expect(r.stdout + r.stderr).toContain(`inode ${f}: system.posix_acl_default: a default ACL on a non-directory`);
    expect(r.stdout + r.stderr).toMatch(/inode \d+: system.posix_acl_access: an access ACL the mode alone expresses/);
  });
});
