/**
 * Progress for long work: a cli-progress bar on a terminal, one line every few seconds
 * otherwise (logs, CI), always on stderr so stdout stays the result.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  update(value: number, info: string): void;
  stop(): void;
}

export function progress(label: string, total: number, unit: string): Progress {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar({
      format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {info}`,
      stream: process.stderr, hideCursor: true, clearOnComplete: true,
    }, cliProgress.Presets.shades_classic);
    bar.start(total, 0, { info: '' });
    return { update: (v, info) => bar.update(Math.min(v, total), { info }), stop: () => bar.stop() };
  }
  let last = 0;
  return {
    update(v, info) {
      const now = Date.now();
      if (now - last < 5000) return;
      last = now;
      process.stderr.write(`${label}: ${Math.min(v, total)}/${total} ${unit}, ${info}\n`);
    },
    stop() {},
  };
}
