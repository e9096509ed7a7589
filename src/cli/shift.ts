/** pagefs collapse|insert FILE OFFSET LENGTH: fallocate's COLLAPSE_RANGE / INSERT_RANGE through pagefs's ioctls. */
import fs from 'node:fs';
import { sys } from '../sys/index.js';
import { PAGEFS_IOC_COLLAPSE_RANGE, PAGEFS_IOC_INSERT_RANGE, encodeRange } from '../vfs/shift.js';
import { parseSize } from '../util/size.js';
import { UserError } from '../util/errors.js';

function parseOffset(text: string, what: string): number {
  return text === '0' ? 0 : parseSize(text, what);
}

export function shiftCommand(kind: 'collapse' | 'insert') {
  return (file: string, offsetText: string, lengthText: string): void => {
    const cmd = `pagefs ${kind}`;
    const offset = parseOffset(offsetText, `${cmd}: OFFSET`);
    const length = parseSize(lengthText, `${cmd}: LENGTH`);
    let fd: number;
    try {
      fd = fs.openSync(file, 'r+');
    } catch (e) {
      throw new UserError(`${cmd}: ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try {
      sys().ioctl(fd, kind === 'collapse' ? PAGEFS_IOC_COLLAPSE_RANGE : PAGEFS_IOC_INSERT_RANGE, encodeRange(offset, length));
      // The daemon cannot lower the kernel's cached size; this stat refreshes it for every opener.
      fs.fstatSync(fd);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const hint = code === 'ENOTTY' ? ' (not a file on a pagefs mount)' : code === 'EINVAL' ? ` (offset and length must be multiples of the block size${kind === 'collapse' ? ', and the range must end before EOF' : ', and the offset before EOF'})` : '';
      throw new UserError(`${cmd}: ${file}: ${code}${hint}`);
    } finally {
      fs.closeSync(fd);
    }
  };
}
