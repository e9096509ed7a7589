import fs from "node:fs";

/** Whether a process exists (signal 0 reaches it). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The fields of /proc/PID/stat after the command name, or null when the process is gone:
 * [0] is field 3 of proc(5) (state), [11] and [12] fields 14 and 15 (utime, stime, in
 * clock ticks), [19] field 22 (starttime). The command name is cut at the last ")",
 * since it may itself hold spaces and parentheses.
 */
export function procStat(pid: number): string[] | null {
  const stat = procFile(pid, 'stat');
  return stat === null ? null : stat.slice(stat.lastIndexOf(')') + 2).trim().split(' ');
}

/**
 * A live process's start time in clock ticks after boot (field 22 of proc(5)), or null
 * when it is gone or a zombie: a killed process not yet reaped holds nothing.
 */
export function processStartTicks(pid: number): string | null {
  const f = procStat(pid);
  if (!f || f[0] === 'Z' || f[0] === 'X') return null;
  return f[19];
}

/** /proc/stat's ticks are USER_HZ, 100 on every Linux ABI Node runs on. */
const USER_HZ = 100;

/**
 * When a live process started, in milliseconds since the epoch, to within about a
 * second (the boot time's precision in /proc/stat); null as processStartTicks.
 */
export function processStartedMs(pid: number): number | null {
  const ticks = processStartTicks(pid);
  const btime = /^btime (\d+)$/m.exec(procRead('/proc/stat') ?? '');
  if (ticks === null || !btime) return null;
  return Number(btime[1]) * 1000 + (Number(ticks) * 1000) / USER_HZ;
}

/** /proc/PID/NAME, or null when the process is gone. */
function procFile(pid: number, name: string): string | null {
  return procRead(`/proc/${pid}/${name}`);
}

function procRead(p: string): string | null {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return null;
  }
}

/**
 * The supplementary groups of a process (or thread: FUSE names the calling thread) from
 * /proc/PID/status, or null when it is gone. A request carries only uid and gid; this is
 * how libfuse's fuse_req_getgroups learns the rest.
 */
export function supplementaryGroups(pid: number): number[] | null {
  const status = procFile(pid, 'status');
  if (status === null) return null;
  const line = /^Groups:(.*)$/m.exec(status);
  return line ? line[1].trim().split(/\s+/).filter(Boolean).map(Number) : [];
}
