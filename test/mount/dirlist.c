/*
 * Directory listing checks for test/mount/readdir.test.ts, run the same way on pagefs
 * and on ext4. Compiled by the test with cc. Every mode prints one summary line and
 * exits 0, or prints "FAIL: ..." lines and exits 1.
 *
 *   dirlist create DIR PREFIX N        makes N fifos DIR/PREFIX000000.. (two FUSE ops each)
 *   dirlist count DIR BUFSIZE          lists with getdents64(BUFSIZE): entries, duplicates,
 *                                      and the inode numbers given for "." and ".."
 *   dirlist churn DIR STABLE BUFSIZE   lists with getdents64(BUFSIZE) while a child process
 *                                      adds, removes and renames entries between reads;
 *                                      then lseeks back to remembered offsets
 *   dirlist seek DIR STABLE            the same through opendir/readdir/telldir/seekdir
 *
 * The exactly-once rule checked: an entry that exists for the whole listing (the STABLE
 * names s000000.., some of which are replaced by rename(2) meanwhile, so the name stays)
 * appears exactly once; no name appears twice; "." and ".." once each. Names added
 * during the listing (c...) may or may not appear, but never twice.
 *
 * The mutator works between reads until STABLE entries have been listed, then rests:
 * where new names are listed last (pagefs, like tmpfs) a listing that meets one new
 * name per read would never reach the end; ext4 places them by hash.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CHURN 1000000
#define MAX_MARKS 64

struct linux_dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

static int failures;
static void fail(const char *fmt, const char *name, long a) {
  printf("FAIL: ");
  printf(fmt, name, a);
  printf("\n");
  if (++failures > 20) exit(1);
}

static void die(const char *what) {
  printf("FAIL: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* What a listing saw: counts per stable index and per churn index, dots. */
struct seen {
  int stable;
  unsigned char *s;
  unsigned char *c;
  int dot, dotdot, other, total;
  uint64_t dot_ino, dotdot_ino;
};

static void seen_init(struct seen *v, int stable) {
  memset(v, 0, sizeof *v);
  v->stable = stable;
  v->s = calloc(stable ? stable : 1, 1);
  v->c = calloc(MAX_CHURN, 1);
}

static long index_of(const char *name, char prefix) {
  if (name[0] != prefix || strlen(name) != 7) return -1;
  char *end;
  long i = strtol(name + 1, &end, 10);
  return *end ? -1 : i;
}

static void see(struct seen *v, const char *name, uint64_t ino) {
  long i;
  v->total++;
  if (!strcmp(name, ".")) { v->dot++; v->dot_ino = ino; }
  else if (!strcmp(name, "..")) { v->dotdot++; v->dotdot_ino = ino; }
  else if ((i = index_of(name, 's')) >= 0 && i < v->stable) { if (++v->s[i] == 2) fail("%s listed twice", name, 0); }
  else if ((i = index_of(name, 'c')) >= 0 && i < MAX_CHURN) { if (++v->c[i] == 2) fail("%s listed twice", name, 0); }
  else v->other++;
}

static void check_complete(struct seen *v) {
  char name[16];
  for (int i = 0; i < v->stable; i++) {
    if (v->s[i] == 0) { snprintf(name, sizeof name, "s%06d", i); fail("%s present throughout but not listed", name, 0); }
  }
  if (v->dot != 1) fail("%s listed %ld times", ".", v->dot);
  if (v->dotdot != 1) fail("%s listed %ld times", "..", v->dotdot);
  if (v->other) fail("%s: %ld unexpected names", "listing", v->other);
}

static void make_fifos(const char *dir, char prefix, int n) {
  char p[4096];
  for (int i = 0; i < n; i++) {
    snprintf(p, sizeof p, "%s/%c%06d", dir, prefix, i);
    if (mknod(p, S_IFIFO | 0644, 0) != 0 && errno != EEXIST) die(p);
  }
}

/* ---- the mutator: a child process that changes the directory when told to ---- */

struct mutator { pid_t pid; int cmd, ack; };

static void mutate_loop(const char *dir, int stable, int cmd, int ack) {
  char a[4096], b[4096], t;
  int next = 0, oldest = 0, round = 0;
  /*
   * Each round: add two names, remove the oldest, replace a stable name by rename(2),
   * and every other round move one to a fresh name. Few enough new names per read that
   * a listing that puts new names last (pagefs, tmpfs) still reaches the end.
   */
  while (read(cmd, &t, 1) == 1) {
    for (int k = 0; k < 2; k++) {
      snprintf(a, sizeof a, "%s/c%06d", dir, next++);
      if (mknod(a, S_IFIFO | 0644, 0) != 0) die(a);
    }
    snprintf(a, sizeof a, "%s/c%06d", dir, oldest++);
    if (unlink(a) != 0 && errno != ENOENT) die(a); /* renamed away earlier */
    snprintf(a, sizeof a, "%s/c%06d", dir, next - 1);
    snprintf(b, sizeof b, "%s/s%06d", dir, (round * 7919) % stable);
    if (rename(a, b) != 0) die("rename over a stable name");
    if (round % 2) {
      snprintf(a, sizeof a, "%s/c%06d", dir, next - 2);
      snprintf(b, sizeof b, "%s/c%06d", dir, next++);
      if (rename(a, b) != 0) die("rename to a fresh name");
    }
    round++;
    if (next >= MAX_CHURN - 10) exit(2);
    if (write(ack, "k", 1) != 1) exit(1);
  }
  exit(0);
}

static struct mutator mutator_start(const char *dir, int stable) {
  int c[2], k[2];
  if (pipe(c) || pipe(k)) die("pipe");
  struct mutator m = { fork(), c[1], k[0] };
  if (m.pid < 0) die("fork");
  if (m.pid == 0) {
    close(c[1]);
    close(k[0]);
    mutate_loop(dir, stable, c[0], k[1]);
  }
  close(c[0]);
  close(k[1]);
  return m;
}

static void mutate(struct mutator *m) {
  char t;
  if (write(m->cmd, "m", 1) != 1 || read(m->ack, &t, 1) != 1) { printf("FAIL: the mutator died\n"); exit(1); }
}

static void mutator_stop(struct mutator *m) {
  int st;
  close(m->cmd);
  waitpid(m->pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { printf("FAIL: mutator exit status %d\n", st); exit(1); }
}

/* ---- modes ---- */

static int do_count(const char *dir, int bufsize) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0) die(dir);
  char *buf = malloc(bufsize);
  struct seen v;
  seen_init(&v, 0);
  long calls = 0, n;
  /* Names are whatever the test made: count duplicates with a sorted copy. */
  size_t cap = 1 << 16, used = 0;
  char **names = malloc(cap * sizeof *names);
  while ((n = syscall(SYS_getdents64, fd, buf, bufsize)) > 0) {
    calls++;
    for (long off = 0; off < n;) {
      struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
      if (!strcmp(d->d_name, ".")) { v.dot++; v.dot_ino = d->d_ino; }
      else if (!strcmp(d->d_name, "..")) { v.dotdot++; v.dotdot_ino = d->d_ino; }
      else {
        if (used == cap) names = realloc(names, (cap *= 2) * sizeof *names);
        names[used++] = strdup(d->d_name);
      }
      off += d->d_reclen;
    }
  }
  if (n < 0) die("getdents64");
  qsort(names, used, sizeof *names, (int (*)(const void *, const void *))strcmp);
  long dups = 0;
  for (size_t i = 1; i < used; i++) if (!strcmp(names[i], names[i - 1])) dups++;
  printf("entries=%zu dups=%ld dot=%d dotdot=%d dot_ino=%llu dotdot_ino=%llu calls=%ld\n", used, dups, v.dot, v.dotdot,
         (unsigned long long)v.dot_ino, (unsigned long long)v.dotdot_ino, calls);
  return 0;
}

static int do_churn(const char *dir, int stable, int bufsize) {
  make_fifos(dir, 's', stable);
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0) die(dir);
  struct mutator m = mutator_start(dir, stable);
  char *buf = malloc(bufsize);
  struct seen v;
  seen_init(&v, stable);
  /* Marks: the offset after some batch, and the stable name that came next. */
  int64_t mark_off[MAX_MARKS];
  char mark_name[MAX_MARKS][16];
  int marks = 0, want_mark = 0;
  int64_t last_off = 0;
  long calls = 0, n;
  while ((n = syscall(SYS_getdents64, fd, buf, bufsize)) > 0) {
    calls++;
    for (long off = 0; off < n;) {
      struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
      if (want_mark && d->d_name[0] == 's') {
        mark_off[marks] = last_off;
        snprintf(mark_name[marks++], 16, "%.15s", d->d_name);
      }
      want_mark = 0;
      see(&v, d->d_name, d->d_ino);
      last_off = d->d_off;
      off += d->d_reclen;
    }
    if (calls % 13 == 0 && marks < MAX_MARKS) want_mark = 1;
    if (v.total < stable) mutate(&m);
  }
  if (n < 0) die("getdents64");
  check_complete(&v);
  /* lseek back to each mark: the listing resumes with the entry that followed it. */
  for (int i = 0; i < marks; i++) {
    mutate(&m);
    if (lseek(fd, mark_off[i], SEEK_SET) != mark_off[i]) die("lseek");
    n = syscall(SYS_getdents64, fd, buf, bufsize);
    if (n <= 0) { fail("seek to the mark before %s: nothing listed (%ld)", mark_name[i], n); continue; }
    struct linux_dirent64 *d = (struct linux_dirent64 *)buf;
    if (strcmp(d->d_name, mark_name[i])) fail("seek to the mark before %s resumed elsewhere (%ld)", mark_name[i], (long)mark_off[i]);
  }
  mutator_stop(&m);
  if (failures) return 1;
  printf("ok stable=%d listed=%d calls=%ld marks=%d\n", stable, v.total, calls, marks);
  return 0;
}

static int do_seek(const char *dir, int stable) {
  make_fifos(dir, 's', stable);
  DIR *dp = opendir(dir);
  if (!dp) die(dir);
  struct mutator m = mutator_start(dir, stable);
  struct seen v;
  seen_init(&v, stable);
  long mark_pos[MAX_MARKS];
  char mark_name[MAX_MARKS][16];
  int marks = 0;
  long reads = 0;
  struct dirent *e;
  for (;;) {
    long pos = telldir(dp);
    errno = 0;
    if (!(e = readdir(dp))) break;
    reads++;
    if (reads % 37 == 0 && e->d_name[0] == 's' && marks < MAX_MARKS) {
      mark_pos[marks] = pos;
      snprintf(mark_name[marks++], 16, "%.15s", e->d_name);
    }
    see(&v, e->d_name, e->d_ino);
    if (reads % 7 == 0 && reads < stable) mutate(&m);
  }
  if (errno) die("readdir");
  check_complete(&v);
  /* seekdir back to each telldir position: readdir resumes with the same entry. */
  for (int i = marks - 1; i >= 0; i--) {
    mutate(&m);
    seekdir(dp, mark_pos[i]);
    e = readdir(dp);
    if (!e) fail("seekdir to %s: end of directory (%ld)", mark_name[i], mark_pos[i]);
    else if (strcmp(e->d_name, mark_name[i])) fail("seekdir to %s resumed elsewhere (%ld)", mark_name[i], mark_pos[i]);
  }
  mutator_stop(&m);
  closedir(dp);
  if (failures) return 1;
  printf("ok stable=%d listed=%d marks=%d\n", stable, v.total, marks);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 5 && !strcmp(argv[1], "create")) {
    make_fifos(argv[2], argv[3][0], atoi(argv[4]));
    return 0;
  }
  if (argc == 4 && !strcmp(argv[1], "count")) return do_count(argv[2], atoi(argv[3]));
  if (argc == 5 && !strcmp(argv[1], "churn")) return do_churn(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (argc == 4 && !strcmp(argv[1], "seek")) return do_seek(argv[2], atoi(argv[3]));
  fprintf(stderr, "usage: dirlist create DIR PREFIX N | count DIR BUFSIZE | churn DIR STABLE BUFSIZE | seek DIR STABLE\n");
  return 2;
}
