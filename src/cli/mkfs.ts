/** pagefs mkfs STORE [--block-size BYTES] [--capacity SIZE] */
import path from 'node:path';
import { createStoreFile } from '../store/open.js';
import { parseSize, formatSize } from '../util/size.js';
import { UserError } from '../util/errors.js';

export function mkfsCommand(store: string, opts: { blockSize: string; capacity: string }): void {
  const bs = Number(opts.blockSize);
  if (!/^\d+$/.test(opts.blockSize)) throw new UserError(`pagefs mkfs: --block-size '${opts.blockSize}' is not a number of bytes`);
  const cap = parseSize(opts.capacity, 'pagefs mkfs: --capacity');
  const sb = createStoreFile(path.resolve(store), bs, cap);
  process.stdout.write(`pagefs: created ${store}: ${formatSize(sb.capacityBlocks * sb.blockSize)} in ${sb.capacityBlocks} blocks of ${sb.blockSize} bytes, uuid ${sb.uuid}\n`);
}
