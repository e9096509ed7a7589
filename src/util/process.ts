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
 * The supplementary groups of a process (or thread: FUSE names the calling thread) from
 * /proc/PID/status, or null when it is gone. A request carries only uid and gid; this is
 * how libfuse's fuse_req_getgroups learns the rest.
 */
export function supplementaryGroups(pid: number): number[] | null {
  let status: string;
  try {
    status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const line = /^Groups:(.*)$/m.exec(status);
  return line ? line[1].trim().split(/\s+/).filter(Boolean).map(Number) : [];
}
