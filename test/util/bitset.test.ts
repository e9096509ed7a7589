/** SparseBitset against a Set of numbers, with indexes near chunk edges and near 2^51. */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { SparseBitset } from '../../src/util/bitset.js';

const BASES = [0, 4096 * 3, 2 ** 51 - 8192];
const index = fc.tuple(fc.constantFrom(...BASES), fc.integer({ min: 0, max: 3 * 4096 })).map(([b, o]) => b + o);
const op = fc.oneof(
  fc.record({ add: index }),
  fc.record({ del: fc.tuple(index, fc.integer({ min: 0, max: 2 * 4096 })) }),
  fc.record({ delToEnd: index }),
);

describe('SparseBitset', () => {
  it('has() answers as a Set does after any adds and range deletes', () => {
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), fc.array(index, { maxLength: 40 }), (ops, probes) => {
      const bits = new SparseBitset();
      const model = new Set<number>();
      for (const o of ops) {
        if ('add' in o) {
          bits.add(o.add);
          model.add(o.add);
        } else {
          const [first, last] = 'del' in o ? [o.del[0], o.del[0] + o.del[1]] : [o.delToEnd, Number.MAX_SAFE_INTEGER];
          bits.deleteRange(first, last);
          for (const i of [...model]) if (i >= first && i <= last) model.delete(i);
        }
      }
      for (const i of [...probes, ...model]) expect(bits.has(i), `index ${i}`).toBe(model.has(i));
      expect(bits.empty).toBe(model.size === 0);
    }), { numRuns: 300 });
  });
});
