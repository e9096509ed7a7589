/*
 * mounttab.c — finding and detaching our mount without touching it: nothing here may
 * stat or open a path on the mount, since only this process's JS thread answers it.
 */
#include "shim.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Undoes the octal escapes (\040 for space, ...) of /proc/self/mountinfo paths. */
static void unescape_mountinfo(char *s) {
  char *w = s;
  for (char *r = s; *r; r++) {
    if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
      *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
      r += 3;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
}

/*
 * The device of the topmost mount at path, read from mountinfo rather than stat():
 * a stat of our own mount point from this process would wait for a GETATTR that only
 * this process's JS thread can answer.
 */
bool ps_find_mount_dev(const char *path, dev_t *dev) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f)
    return false;
  char *line = NULL;
  size_t cap = 0;
  bool found = false;
  while (getline(&line, &cap, f) > 0) {
    unsigned maj, min;
    char mp[PATH_MAX * 4 + 1];
    if (sscanf(line, "%*u %*u %u:%u %*s %16384s", &maj, &min, mp) != 3)
      continue;
    unescape_mountinfo(mp);
    if (strcmp(mp, path) == 0) {
      *dev = makedev(maj, min);
      found = true; /* keep going: a later line is mounted on top */
    }
  }
  free(line);
  fclose(f);
  return found;
}

static int spawn_fusermount(const char *mountpoint) {
  /* Same fallback as libfuse's fuse_kern_unmount for unprivileged mounts. */
  char *argv[] = {"fusermount3", "-u", "-q", "-z", "--", (char *)mountpoint, NULL};
  pid_t pid;
  int err = posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ);
  if (err)
    return -err;
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return -errno;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/*
 * Detaches the mount; the kernel then tears the connection down, the descriptor
 * turns readable, the next read returns ENODEV and the loop ends. MNT_DETACH because a busy mount must
 * not make us wait, and the final teardown of an idle mount runs in this thread as it
 * leaves the syscall: it sends nothing that needs JS as long as the kernel holds no
 * dirty pages for us (write-through, no writeback_cache). With writeback_cache the
 * teardown could write back to us while JS is blocked here; then this must move to a
 * helper thread.
 */
int ps_detach_mount(ps_session *s) {
  if (s->mount_dev) {
    dev_t now;
    /* Gone already (fusermount3 -u from outside): the path may now be someone else's mount. */
    if (!ps_find_mount_dev(s->mountpoint, &now) || now != s->mount_dev)
      return 0;
  } else {
    struct pollfd p = {.fd = s->dev_fd, .events = 0};
    if (poll(&p, 1, 0) == 1 && (p.revents & POLLERR))
      return 0;
  }
  if (umount2(s->mountpoint, MNT_DETACH) == 0)
    return 0;
  int err = errno;
  if (err == EINVAL || err == ENOENT)
    return 0;
  if (err == EPERM && geteuid() != 0)
    return spawn_fusermount(s->mountpoint);
  return -err;
}
