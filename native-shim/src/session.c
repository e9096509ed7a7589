/*
 * session.c — mount, the libfuse loop thread, the thread-safe function, unmount.
 *
 * Contract (binding.ts `mount`/`unmount`):
 * - mount(mountpoint, argv, config, handler) creates the session from argv
 *   (argv[0] is a program name), registers only the ops in config.ops, mounts, and
 *   starts one pthread that runs fuse_session_loop_mt with at most config.maxThreads
 *   workers. Failures throw an Error with .code/.errno. No libfuse signal handlers:
 *   Node owns signals, and the loop threads block them all so that every signal is
 *   delivered to Node's threads.
 * - Each request reaches JS as handler(op, req, uid, gid, pid, umask, ...args) through
 *   one refed thread-safe function, which keeps Node's event loop alive while
 *   mounted. When the loop returns the loop thread posts EXIT(rc) and releases the
 *   TSFN, so Node can exit once JS lets go too.
 * - unmount(session) sets libfuse's exit flag and detaches the mount; it runs once,
 *   never waits for JS, and the EXIT event follows when the loop returns. An idle
 *   mount is torn down at once (every worker's read returns ENODEV). A busy one (open
 *   files, a cwd inside) outlives the detach: the loop then ends at the next request
 *   it reads, since libfuse checks the flag after each one, and whoever still uses the
 *   mount gets ENOTCONN once the daemon process has exited.
 *
 * The session is never destroyed (see ps_session in shim.h), and the /dev/fuse
 * descriptor is never closed: replies and notifications may still be written to it
 * from other threads after the loop ends, and closing it would let a later open()
 * reuse the number, so that such a write could land in an unrelated file (libfuse's
 * fuse_session_unmount closes it; that is why it is not used here). Once the kernel
 * has torn the mount down the descriptor is a dead connection, and those writes fail
 * harmlessly.
 */
#include "shim.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Marks Session objects made here, so that unmount/notify reject anything else. */
static const napi_type_tag session_tag = {0x70616765667321aaULL, 0x5e5510a0c0ffee01ULL};

/* ---- events to JS ---- */

static void finalize_free(napi_env env, void *data, void *hint) {
  free(data);
}

static bool arg_to_js(napi_env env, ps_arg *a, napi_value *out) {
  switch (a->kind) {
  case PS_ARG_NUM:
    return napi_create_double(env, a->num, out) == napi_ok;
  case PS_ARG_NULL:
    return napi_get_null(env, out) == napi_ok;
  case PS_ARG_BYTES:
    return napi_create_buffer_copy(env, a->len, a->ptr, NULL, out) == napi_ok;
  case PS_ARG_EXTERNAL: {
    /* WRITE data: the copy made on the libfuse thread becomes the Buffer's memory. */
    void *p = a->ptr;
    if (napi_create_external_buffer(env, a->len, p, finalize_free, NULL, out) == napi_ok) {
      a->ptr = NULL;
      return true;
    }
    /* Runtimes that forbid external buffers: one more copy, still correct. */
    return napi_create_buffer_copy(env, a->len, p, NULL, out) == napi_ok;
  }
  case PS_ARG_F64: {
    void *data;
    napi_value ab;
    if (napi_create_arraybuffer(env, a->len * sizeof(double), &data, &ab) != napi_ok)
      return false;
    if (a->len)
      memcpy(data, a->ptr, a->len * sizeof(double));
    return napi_create_typedarray(env, napi_float64_array, a->len, ab, 0, out) == napi_ok;
  }
  }
  return false;
}

/* Runs on the JS thread, once per event, in the order libfuse posted them. */
static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  ps_event *e = data;
  if (env == NULL || js_cb == NULL) {
    /* The TSFN is being torn down with events still queued: JS will never answer. */
    ps_event_abandon(e, EIO);
    return;
  }

  napi_value argv[6 + PS_MAX_ARGS];
  size_t argc = 0;
  bool ok = napi_create_int32(env, e->op, &argv[argc++]) == napi_ok &&
            napi_create_double(env, (double)(e->req ? (uintptr_t)e->req : (uintptr_t)e->raw), &argv[argc++]) == napi_ok &&
            napi_create_double(env, e->uid, &argv[argc++]) == napi_ok &&
            napi_create_double(env, e->gid, &argv[argc++]) == napi_ok &&
            napi_create_double(env, e->pid, &argv[argc++]) == napi_ok &&
            napi_create_double(env, e->umask, &argv[argc++]) == napi_ok;
  for (int i = 0; ok && i < e->argc; i++)
    ok = arg_to_js(env, &e->argv[i], &argv[argc++]);
  if (!ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
    }
    ps_event_abandon(e, ENOMEM);
    return;
  }
  ps_event_free(e);

  napi_value recv;
  napi_get_undefined(env, &recv);
  if (napi_call_function(env, recv, js_cb, argc, argv, NULL) != napi_ok) {
    /* Node would only print a warning for an exception left in a TSFN callback;
       a throwing dispatcher is a bug, so make it an uncaught exception. */
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);
    }
  }
}

/* ---- the loop thread ---- */

static void *loop_main(void *arg) {
  ps_session *s = arg;
  /* Workers inherit this mask: signals must reach Node's threads, not ours (glibc
     keeps its cancellation signal deliverable, which fuse_loop_mt relies on). */
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);

  int rc = fuse_session_loop_mt(s->se, s->loop_cfg);
  /* The loop clears the exited flag on return; set it again so that late replies to a
     dead connection fail quietly instead of printing "fuse: writing device". */
  fuse_session_exit(s->se);

  ps_event *e = ps_event_new(s, PS_OP_EXIT, NULL);
  if (e) {
    ps_event_num(e, rc);
    ps_event_post(e);
  }
  /* All workers have been joined, so nothing calls the TSFN after this. */
  pthread_rwlock_rdlock(&s->tsfn_lock);
  if (!s->tsfn_gone)
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
  pthread_rwlock_unlock(&s->tsfn_lock);
  return NULL;
}

/*
 * Environment teardown (a worker_thread terminated while mounted) frees the TSFN
 * while the loop may still run: from here on requests are answered EIO by the libfuse
 * threads instead. process.exit() and fatal exceptions do not run this hook, and do
 * not free the TSFN either.
 */
static void env_cleanup(void *arg) {
  ps_session *s = arg;
  pthread_rwlock_wrlock(&s->tsfn_lock);
  s->tsfn_gone = true;
  pthread_rwlock_unlock(&s->tsfn_lock);
}

/* ---- mount table ---- */

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
static bool find_mount_dev(const char *path, dev_t *dev) {
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
 * Detaches the mount; the kernel then tears the connection down, every blocked
 * worker read returns ENODEV and the loop ends. MNT_DETACH because a busy mount must
 * not make us wait, and the final teardown of an idle mount runs in this thread as it
 * leaves the syscall: it sends nothing that needs JS as long as the kernel holds no
 * dirty pages for us (write-through, no writeback_cache). With writeback_cache the
 * teardown could write back to us while JS is blocked here; then this must move to a
 * helper thread.
 */
static int detach_mount(ps_session *s) {
  if (s->mount_dev) {
    dev_t now;
    /* Gone already (fusermount3 -u from outside): the path may now be someone else's mount. */
    if (!find_mount_dev(s->mountpoint, &now) || now != s->mount_dev)
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

/* ---- JS entry points ---- */

static bool get_u32_prop(napi_env env, napi_value obj, const char *name, unsigned *out) {
  napi_value v;
  char what[64];
  snprintf(what, sizeof what, "config.%s", name);
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) {
    ps_throw_type(env, "%s is missing", what);
    return false;
  }
  uint32_t u;
  if (!ps_arg_uint32(env, v, what, &u))
    return false;
  *out = u;
  return true;
}

static bool read_config(napi_env env, napi_value cfg, ps_session *s, struct fuse_lowlevel_ops *ops) {
  napi_valuetype t;
  if (napi_typeof(env, cfg, &t) != napi_ok || t != napi_object) {
    ps_throw_type(env, "config must be an object");
    return false;
  }
  if (!get_u32_prop(env, cfg, "want", &s->want) || !get_u32_prop(env, cfg, "unwant", &s->unwant) ||
      !get_u32_prop(env, cfg, "maxWrite", &s->max_write) ||
      !get_u32_prop(env, cfg, "maxReadahead", &s->max_readahead) ||
      !get_u32_prop(env, cfg, "maxThreads", &s->max_threads) ||
      !get_u32_prop(env, cfg, "timeGran", &s->time_gran))
    return false;

  napi_value list;
  bool is_array;
  uint32_t n;
  if (napi_get_named_property(env, cfg, "ops", &list) != napi_ok ||
      napi_is_array(env, list, &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, list, &n) != napi_ok) {
    ps_throw_type(env, "config.ops must be an array of op codes");
    return false;
  }
  uint32_t codes[PS_OP_MAX * 2 + 1];
  if (n > sizeof codes / sizeof codes[0]) {
    ps_throw_range(env, "config.ops has %u entries", n);
    return false;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    if (napi_get_element(env, list, i, &v) != napi_ok || !ps_arg_uint32(env, v, "config.ops[i]", &codes[i]))
      return false;
  }
  uint32_t bad = ps_fill_ops(ops, codes, n);
  if (bad) {
    ps_throw_range(env, "config.ops: unknown op code %u", bad);
    return false;
  }
  for (uint32_t i = 0; i < n; i++)
    s->statx |= codes[i] == PS_OP_STATX;
  return true;
}

static bool read_argv(napi_env env, napi_value list, struct fuse_args *args) {
  bool is_array;
  uint32_t n;
  if (napi_is_array(env, list, &is_array) != napi_ok || !is_array || napi_get_array_length(env, list, &n) != napi_ok) {
    ps_throw_type(env, "argv must be an array of strings");
    return false;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    char *s;
    if (napi_get_element(env, list, i, &v) != napi_ok || !(s = ps_arg_string(env, v, "argv[i]")))
      return false;
    int rc = fuse_opt_add_arg(args, s);
    free(s);
    if (rc != 0) {
      ps_throw_errno(env, "fuse_opt_add_arg", ENOMEM);
      return false;
    }
  }
  return true;
}

napi_value ps_mount(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!ps_get_args(env, info, 4, argv, NULL))
    return NULL;

  struct fuse_args fargs = FUSE_ARGS_INIT(0, NULL);
  struct fuse_lowlevel_ops ops;
  ps_session *s = calloc(1, sizeof *s);
  char *given = NULL;
  napi_value result = NULL;
  napi_valuetype t;
  if (!s) {
    ps_throw_errno(env, "mount", ENOMEM);
    return NULL;
  }
  pthread_mutex_init(&s->unmount_lock, NULL);
  pthread_rwlock_init(&s->tsfn_lock, NULL);

  if (!(given = ps_arg_string(env, argv[0], "mountpoint")) || !read_argv(env, argv[1], &fargs) ||
      !read_config(env, argv[2], s, &ops))
    goto fail;
  if (napi_typeof(env, argv[3], &t) != napi_ok || t != napi_function) {
    ps_throw_type(env, "handler must be a function");
    goto fail;
  }

  /* Canonical now, before the mount exists: mountinfo lists canonical paths, and
     resolving the path after mounting would stat our own root. /dev/fd/N (a
     descriptor passed in by a parent that mounted for us) is kept as given. */
  if (strncmp(given, "/dev/fd/", 8) == 0) {
    s->mountpoint = strdup(given);
  } else if (!(s->mountpoint = realpath(given, NULL))) {
    ps_throw_errno(env, "mount", errno);
    goto fail;
  }

  s->se = fuse_session_new(&fargs, &ops, sizeof ops, s);
  if (!s->se) {
    /* libfuse has printed why (unknown option, bad argv). */
    ps_throw_errno(env, "fuse_session_new", EINVAL);
    goto fail;
  }
  errno = 0;
  if (fuse_session_mount(s->se, s->mountpoint) != 0) {
    int err = errno ? errno : EIO;
    fuse_session_destroy(s->se);
    s->se = NULL;
    ps_throw_errno(env, "mount", err);
    goto fail;
  }
  s->dev_fd = fuse_session_fd(s->se);
  if (s->statx) {
    int err = ps_statx_install(s);
    if (err) {
      ps_throw_errno(env, "fuse_session_custom_io", -err);
      goto fail_mounted;
    }
  }
  if (!find_mount_dev(s->mountpoint, &s->mount_dev))
    s->mount_dev = 0;

  napi_value name;
  napi_create_string_utf8(env, "pagefs-fuse", NAPI_AUTO_LENGTH, &name);
  /* max_queue_size 0: unbounded, so posting never blocks a libfuse thread. */
  if (napi_create_threadsafe_function(env, argv[3], NULL, name, 0, 1, NULL, NULL, s, call_js, &s->tsfn) != napi_ok) {
    ps_throw_errno(env, "napi_create_threadsafe_function", ENOMEM);
    goto fail_mounted;
  }

  /* Cleanup hooks run newest first: this one runs before the TSFN's own frees it. */
  napi_add_env_cleanup_hook(env, env_cleanup, s);

  s->loop_cfg = fuse_loop_cfg_create();
  if (!s->loop_cfg) {
    ps_throw_errno(env, "fuse_loop_cfg_create", ENOMEM);
    goto fail_tsfn;
  }
  fuse_loop_cfg_set_clone_fd(s->loop_cfg, 0);
  fuse_loop_cfg_set_max_threads(s->loop_cfg, s->max_threads);

  pthread_attr_t attr;
  pthread_t thread;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int err = pthread_create(&thread, &attr, loop_main, s);
  pthread_attr_destroy(&attr);
  if (err) {
    ps_throw_errno(env, "pthread_create", err);
    goto fail_tsfn;
  }

  if (napi_create_object(env, &result) != napi_ok || napi_wrap(env, result, s, NULL, NULL, NULL) != napi_ok ||
      napi_type_tag_object(env, result, &session_tag) != napi_ok) {
    /* The loop runs; without a Session JS cannot unmount, so do it here. */
    pthread_mutex_lock(&s->unmount_lock);
    s->unmounted = true;
    fuse_session_exit(s->se);
    detach_mount(s);
    pthread_mutex_unlock(&s->unmount_lock);
    ps_throw_errno(env, "mount", ENOMEM);
    result = NULL;
  }
  free(given);
  fuse_opt_free_args(&fargs);
  return result;

fail_tsfn:
  napi_remove_env_cleanup_hook(env, env_cleanup, s);
  napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
  if (s->loop_cfg)
    fuse_loop_cfg_destroy(s->loop_cfg);
fail_mounted:
  {
    /* No loop thread exists: nothing else uses the session, so libfuse may close its fd. */
    bool pending;
    napi_value exc = NULL;
    napi_is_exception_pending(env, &pending);
    if (pending)
      napi_get_and_clear_last_exception(env, &exc);
    fuse_session_unmount(s->se);
    fuse_session_destroy(s->se);
    if (exc)
      napi_throw(env, exc);
  }
  /* The TSFN, if any, still points at s in its context: leak s (failure path only). */
  free(given);
  fuse_opt_free_args(&fargs);
  return NULL;

fail:
  free(given);
  fuse_opt_free_args(&fargs);
  free(s->mountpoint);
  pthread_mutex_destroy(&s->unmount_lock);
  pthread_rwlock_destroy(&s->tsfn_lock);
  free(s);
  return NULL;
}

ps_session *ps_session_from(napi_env env, napi_value v) {
  bool tagged = false;
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_object || napi_check_object_type_tag(env, v, &session_tag, &tagged) != napi_ok ||
      !tagged || napi_unwrap(env, v, &p) != napi_ok || !p) {
    ps_throw_type(env, "session must be a Session returned by mount()");
    return NULL;
  }
  return p;
}

napi_value ps_unmount(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!ps_get_args(env, info, 1, argv, NULL))
    return NULL;
  ps_session *s = ps_session_from(env, argv[0]);
  if (!s)
    return NULL;

  int rc = 0;
  pthread_mutex_lock(&s->unmount_lock);
  if (!s->unmounted) {
    fuse_session_exit(s->se);
    rc = detach_mount(s);
    s->unmounted = rc == 0;
  }
  pthread_mutex_unlock(&s->unmount_lock);
  if (rc < 0) {
    ps_throw_errno(env, "umount", -rc);
    return NULL;
  }
  return ps_undefined(env);
}
