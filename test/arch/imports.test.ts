/** The domain knows nothing of FUSE (STYLE.md §1): store, cache and vfs never import the addon or src/fuse. */
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/mount.js';

const LAYERS: Record<string, string[]> = {
  store: ['fuse', 'vfs', 'cache', 'cli'],
  cache: ['fuse', 'vfs', 'cli'],
  vfs: ['fuse', 'cli'],
  fuse: ['cli'],
};

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []);
}

describe('layer boundaries', () => {
  for (const [layer, forbidden] of Object.entries(LAYERS)) {
    it(`src/${layer} imports none of ${forbidden.join(', ')}`, () => {
      const bad: string[] = [];
      for (const f of files(path.join(ROOT, 'src', layer))) {
        for (const m of fs.readFileSync(f, 'utf8').matchAll(/from '(\.\.?\/[^']+)'/g)) {
          const target = path.relative(path.join(ROOT, 'src'), path.resolve(path.dirname(f), m[1]));
          if (forbidden.includes(target.split(path.sep)[0]) || /native-shim|binding/.test(target) && layer !== 'fuse') bad.push(`${path.relative(ROOT, f)} -> ${m[1]}`);
        }
      }
      expect(bad).toEqual([]);
    });
  }
});
