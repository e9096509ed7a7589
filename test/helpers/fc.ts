/**
 * fast-check settings shared by the property tests through the mount: a fixed seed
 * (PAGEFS_FC_SEED changes it) so a failure repeats, and a report that names the seed;
 * PAGEFS_FC_PATH replays one case.
 */
import fc from 'fast-check';

export const FC_SEED = Number(process.env.PAGEFS_FC_SEED ?? 0x5eed_fa11);

export function fcParams<T>(numRuns: number): fc.Parameters<T> {
  return {
    // No interruptAfterTimeLimit: for async properties it abandons the running sequence
    // in the background (still issuing syscalls) instead of stopping it. The test timeout
    // bounds the run and the shrinking instead.
    seed: FC_SEED, numRuns,
    // Replays one case of a failed run: the path fast-check printed (e.g. "50" or "50:0:1").
    ...(process.env.PAGEFS_FC_PATH ? { path: process.env.PAGEFS_FC_PATH, endOnFailure: true } : {}),
    reporter: (out) => {
      if (out.failed) {
        throw new Error(`${fc.defaultReportMessage(out)}\n(fast-check seed ${FC_SEED}; set PAGEFS_FC_SEED to change it)` +
          `\nError of the shrunk counterexample: ${(out.errorInstance as Error | undefined)?.message ?? out.errorInstance}`);
      }
    },
  };
}
