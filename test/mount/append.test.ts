/** O_APPEND under concurrency, and explicit offsets on descriptors without it (design.md §5). */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { mountFresh, run, expectCleanLog, type Mounted } from '../helpers/mount.js';

let m: Mounted;
beforeAll(async () => { m = await mountFresh({ capacity: '256M' }); });
afterAll(async () => { await m?.cleanup(); });

const APPENDER = `
import os, sys
path, who, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
for i in range(n):
    rec = ('%02d:%06d:' % (who, i)).encode() + bytes([65 + who]) * 89 + b'\\n'
    assert len(rec) == 100
    os.write(fd, rec)
os.close(fd)
`;

describe('O_APPEND', () => {
  it('eight processes appending at once never overwrite one another', async () => {
    const file = path.join(m.mp, 'log');
    const script = path.join(m.dir, 'appender.py');
    fs.writeFileSync(script, APPENDER);
    const n = 500;
    const results = await Promise.all(Array.from({ length: 8 }, (_, who) => run('/usr/bin/python3', [script, file, String(who), String(n)], { timeoutMs: 120_000 })));
    for (const r of results) expect(r.stderr).toBe('');
    const data = await fs.promises.readFile(file);
    expect(data.length).toBe(8 * n * 100);
    const seen = new Map<string, number>();
    for (let off = 0; off < data.length; off += 100) {
      const rec = data.subarray(off, off + 100).toString('latin1');
      const m2 = /^(\d\d):(\d{6}):([A-Z]{89})\n$/.exec(rec);
      expect(m2, `record at ${off}: ${JSON.stringify(rec.slice(0, 20))}`).not.toBeNull();
      const who = Number(m2![1]);
      expect(m2![3]).toBe(String.fromCharCode(65 + who).repeat(89));
      // Each process's records appear in the order it wrote them.
      expect(Number(m2![2])).toBe(seen.get(m2![1]) ?? 0);
      seen.set(m2![1], Number(m2![2]) + 1);
    }
    expect([...seen.values()]).toEqual(Array(8).fill(n));
  });

  it('a write at an explicit offset without O_APPEND lands at that offset', async () => {
    const file = path.join(m.mp, 'plain');
    await fs.promises.writeFile(file, Buffer.alloc(10000, 0x61));
    const fh = await fs.promises.open(file, 'r+');
    await fh.write(Buffer.from('XYZ'), 0, 3, 4096);
    await fh.close();
    const data = await fs.promises.readFile(file);
    expect(data.length).toBe(10000);
    expect(data.subarray(4096, 4099).toString()).toBe('XYZ');
    expect(data.subarray(4090, 4096).toString()).toBe('aaaaaa');
    // With O_APPEND, pwrite's offset is ignored on Linux: the data goes to the end.
    const fa = await fs.promises.open(file, 'a');
    await fa.write(Buffer.from('END'), 0, 3, 0);
    await fa.close();
    const after = await fs.promises.readFile(file);
    expect(after.length).toBe(10003);
    expect(after.subarray(10000).toString()).toBe('END');
    expect(after.subarray(0, 3).toString()).toBe('aaa');
    expectCleanLog(m);
  });
});
