/**
 * The fsx checker's worker thread (fsx.ts starts it): runs the engine's operations
 * synchronously and reports to the parent. Between operations, when asked to, it closes
 * its files and lets the parent unmount and mount again (or do anything else to the
 * filesystem: the tests corrupt the store then), then reopens and checks every file.
 *
 * Messages to the parent: probe, progress, remount (the parent answers 'remounted',
 * with an error text if it failed), done (the result), crash (a bug of the checker).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { FsxEngine, type EngineConfig } from './fsx-engine.js';

export interface WorkerConfig extends EngineConfig {
  /** Pause for the parent's remount after every this many operations (0: never). */
  remountEvery: number;
}

export type FromWorker =
  | { type: 'probe'; blockSize: number; supported: string[]; skipped: string[]; shiftVia: string | null; workDir: string }
  | { type: 'progress'; ops: number; bytesChecked: number }
  | { type: 'remount'; op: number; index: number }
  | { type: 'done'; state: ReturnType<FsxEngine['state']>; workDir?: string; dumpDir?: string }
  | { type: 'crash'; message: string; stack?: string };

export type ToWorker = { type: 'remounted'; error?: string };

const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);

function reply(): Promise<ToWorker> {
  return new Promise((resolve) => port.once('message', (m: ToWorker) => resolve(m)));
}

async function main(c: WorkerConfig): Promise<void> {
  const eng = new FsxEngine(c);
  let opened = false;
  try {
    const probe = eng.probe();
    post({ type: 'probe', ...probe, workDir: eng.work });
    eng.setup();
    opened = true;
    let last = Date.now();
    while (eng.op < c.ops && eng.step()) {
      if (Date.now() - last >= 200) {
        last = Date.now();
        post({ type: 'progress', ops: eng.op, bytesChecked: eng.bytesChecked });
      }
      if (c.remountEvery > 0 && eng.op % c.remountEvery === 0 && eng.op < c.ops) {
        eng.closeAll();
        opened = false;
        post({ type: 'remount', op: eng.op, index: eng.remounts + 1 });
        const r = await reply();
        if (r.error !== undefined) {
          eng.failOutside(`remount after op #${eng.op} failed: ${r.error}`);
          break;
        }
        eng.remounts++;
        eng.openAll();
        opened = true;
        if (!eng.verifyAll(`verify after remount ${eng.remounts}`)) break;
      }
    }
    if (!eng.failure) eng.verifyAll('final verify');
    post({ type: 'progress', ops: eng.op, bytesChecked: eng.bytesChecked });
    let dumpDir: string | undefined;
    if (eng.failure) {
      dumpDir = fs.mkdtempSync(path.join(os.tmpdir(), `pagefs-fsx-${c.seed}-`));
      eng.dump(dumpDir);
    }
    if (opened) eng.finish();
    else if (!eng.failure) fs.rmSync(eng.work, { recursive: true, force: true });
    post({ type: 'done', state: eng.state(), workDir: eng.failure ? eng.work : undefined, dumpDir });
  } catch (e) {
    post({ type: 'crash', message: `${(e as NodeJS.ErrnoException).code ?? ''} ${(e as Error).message}`.trim(), stack: (e as Error).stack });
  }
}

void main(workerData as WorkerConfig);
