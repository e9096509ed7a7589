/** The stress tools' seeded random source (pure-rand's xoroshiro128+): the same seed, the same run. */
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';

export class Rng {
  private readonly g;
  constructor(seed: number) {
    this.g = xoroshiro128plus(seed | 0);
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : uniformInt(this.g, 0, n - 1);
  }
  /** A float in [0, 1). */
  next(): number {
    return uniformFloat64(this.g);
  }
}
