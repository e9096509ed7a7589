/**
 * One error class for the whole filesystem: an FsError carries a positive errno and its
 * name. Domain code throws it by name (`fsErr('ENOENT')`); src/fuse/ maps it to the
 * reply with one function (errnoOf), and anything that is not an FsError becomes EIO
 * with its stack logged, never a crashed daemon.
 */
import os from 'node:os';

const ERRNO = os.constants.errno as Record<string, number>;

export type ErrnoName = keyof typeof os.constants.errno;

export class FsError extends Error {
  readonly errno: number;
  readonly code: string;
  constructor(code: ErrnoName, message?: string) {
    // An errno is an answer, not a fault: no stack (capturing one costs more than the
    // request; the kernel asks getxattr("security.capability") before every write).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message ?? code);
    Error.stackTraceLimit = limit;
    this.code = code;
    this.errno = ERRNO[code];
  }
}

export function fsErr(code: ErrnoName, message?: string): FsError {
  return new FsError(code, message);
}

export function errnoNumber(code: ErrnoName): number {
  return ERRNO[code];
}

const NAMES = new Map<number, string>();
for (const [name, num] of Object.entries(ERRNO)) if (!NAMES.has(num)) NAMES.set(num, name);
/** The errno name for a number (EWOULDBLOCK and EAGAIN share one: the first wins). */
export function errnoName(errno: number): string {
  return NAMES.get(errno) ?? `E${errno}`;
}

/** A bad store or bad command-line input: reported as one line, no stack, non-zero exit. */
export class UserError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}
