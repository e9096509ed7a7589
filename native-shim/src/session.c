/*
 * session.c — mount, the read loop on the JS thread, unmount. events.c calls the
 * handler for each request; mounttab.c finds and detaches the mount.
 *
 * Contract (binding.ts `mount`/`unmount`):
 * - mount(mountpoint, argv, config, handler) creates the session from argv
 *   (argv[0] is a program name), registers only the ops in config.ops, mounts, and
 *   starts polling the /dev/fuse descriptor in Node's event loop. Failures throw an
 *   Error with .code/.errno. No libfuse signal handlers: Node owns signals.
 * - When the descriptor is readable, requests are read (non-blocking, up to
 *   PS_BATCH per wake-up) and processed by libfuse on the JS thread; its callbacks
 *   (ops.c) hand each one to handler(op, req, uid, gid, pid, umask, ...args) at once.
 *   One callback scope spans a batch, so promise continuations of the handlers run
 *   after it, as they would after any I/O callback. The active poll keeps Node's event
 *   loop alive while mounted. When the connection ends (ENODEV, a failed read, or the
 *   exit flag set by unmount) the poll stops and the handler gets EXIT(rc).
 * - unmount(session) sets libfuse's exit flag and detaches the mount; it runs once,
 *   never waits for JS, and the EXIT event follows. An idle mount is torn down at once
 *   (the descriptor turns readable and reads ENODEV). A busy one (open files, a cwd
 *   inside) outlives the detach: the loop then ends at the next request it reads, and
 *   whoever still uses the mount gets ENOTCONN once the daemon process has exited.
 *
 * Polling before the event loop sleeps (config.pollUs, chosen by the daemon; 0 = never):
 *   when the batch just served began within the budget of the previous batch's end, a
 *   process is probably waiting on one request at a time and will send the next in a
 *   few microseconds. Then, after the batch, the loop polls /dev/fuse and Node's own
 *   event descriptor (epoll: anything else the loop waits for through a descriptor)
 *   without sleeping, until either has something or the budget is spent, and returns to
 *   the event loop either way; libuv's next wait then finds the descriptor ready instead
 *   of sleeping and being woken, which on this kind of virtual machine costs more than a
 *   cached read. Nothing is read or run here while polling: a descriptor's event ends the
 *   poll at once, while timers and setImmediate work, which no descriptor shows, wait out
 *   the budget. After a batch that began late there is no polling at all.
 *
 * Why the JS thread reads the requests: with libfuse's worker threads every request
 * crossed threads twice (a worker woken by the kernel, then the JS thread woken through
 * a thread-safe function), and on this kind of virtual machine each wake-up costs more
 * than the work of a cached read. Here the kernel wakes the thread that answers. A
 * slow handler delays the reading of later requests exactly as it delayed their
 * handling before: JavaScript is one thread either way. Nothing on this thread may
 * block on the mount: the kernel could then wait for a request only this thread reads
 * (notify.c runs its calls on pool threads for that reason).
 *
 * The session is never destroyed (see ps_session in shim.h), and the /dev/fuse
 * descriptor is never closed: replies and notifications may still be written to it
 * after the loop ends, and closing it would let a later open() reuse the number, so
 * that such a write could land in an unrelated file (libfuse's fuse_session_unmount
 * closes it; that is why it is not used here). Once the kernel has torn the mount down
 * the descriptor is a dead connection, and those writes fail harmlessly.
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Marks Session objects made here, so that unmount/notify reject anything else. */
static const napi_type_tag session_tag = {0x70616765667321aaULL, 0x5e5510a0c0ffee01ULL};

/* ---- the read loop ---- */

/*
 * Requests read per wake-up before the event loop gets a turn (timers, other I/O) and
 * the handlers' promise continuations run. For one process waiting on one read at a
 * time it makes no difference (measured: 1 and 64 gave the same cold and warm 4 KiB
 * random-read rates); under a burst it saves a loop turn per request.
 */
#define PS_BATCH 64

static void post_exit(ps_session *s, int rc) {
  ps_event *e = ps_event_new(s, PS_OP_EXIT, NULL);
  if (e) {
    ps_event_num(e, rc);
    ps_event_post(e);
  }
}

/* Stops reading for good: the connection is over, or JS asked for it. */
static void stop_reading(ps_session *s) {
  if (!s->reading)
    return;
  s->reading = false;
  /* Late replies to a dead connection then fail quietly instead of printing
     "fuse: writing device". */
  fuse_session_exit(s->se);
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, NULL);
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Polls without sleeping until /dev/fuse or the event loop has something, for at most poll_ns. */
static void poll_briefly(ps_session *s, uint64_t from) {
  struct pollfd p[2] = {{.fd = s->dev_fd, .events = POLLIN}, {.fd = uv_backend_fd(s->loop), .events = POLLIN}};
  int n = p[1].fd >= 0 ? 2 : 1;
  while (poll(p, n, 0) == 0)
    if (now_ns() - from >= s->poll_ns)
      return;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  ps_session *s = h->data;
  bool soon = s->poll_ns && now_ns() - s->idle_since <= s->poll_ns;
  napi_env env = s->env;
  napi_handle_scope hs;
  napi_value resource;
  napi_callback_scope cs;
  if (napi_open_handle_scope(env, &hs) != napi_ok)
    return;
  bool scoped = napi_create_object(env, &resource) == napi_ok &&
                napi_open_callback_scope(env, resource, s->actx, &cs) == napi_ok;
  int rc = status < 0 ? status : 0;
  bool over = status < 0;
  for (int i = 0; !over && i < PS_BATCH; i++) {
    if (fuse_session_exited(s->se)) {
      over = true;
      break;
    }
    /* The last WRITE may have taken the buffer with it (PS_ARG_RECV). */
    if (!s->buf.mem && !(s->buf.mem = ps_rbuf_get())) {
      rc = -ENOMEM;
      over = true;
      break;
    }
    int res = fuse_session_receive_buf(s->se, &s->buf);
    if (res == -EAGAIN)
      break;
    if (res == -EINTR)
      continue;
    if (res <= 0) {
      /* 0: ENODEV (unmounted, or the connection aborted) or the exit flag. */
      rc = res;
      over = true;
      break;
    }
    fuse_session_process_buf(s->se, &s->buf);
  }
  if (over) {
    stop_reading(s);
    post_exit(s, rc);
  }
  if (scoped)
    napi_close_callback_scope(env, cs);
  napi_close_handle_scope(env, hs);
  /* After the scope: the promise continuations it ran may have replied already. */
  if (s->poll_ns) {
    uint64_t done = now_ns();
    if (soon && s->reading)
      poll_briefly(s, done);
    s->idle_since = done;
  }
}

/*
 * Environment teardown (a worker_thread terminated while mounted): nothing will ever
 * answer again, so stop reading and detach the mount rather than leave its users
 * waiting. process.exit() and fatal exceptions do not run this hook; the kernel ends
 * the connection when the process is gone.
 */
static void env_cleanup(void *arg) {
  ps_session *s = arg;
  s->gone = true;
  stop_reading(s);
  if (!s->unmounted) {
    s->unmounted = true;
    ps_detach_mount(s);
  }
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
      !get_u32_prop(env, cfg, "timeGran", &s->time_gran) || !get_u32_prop(env, cfg, "pollUs", &s->poll_ns))
    return false;
  if (s->poll_ns > 10000) {
    ps_throw_range(env, "config.pollUs is %u; at most 10000", s->poll_ns);
    return false;
  }
  s->poll_ns *= 1000;
  napi_value kp;
  if (napi_get_named_property(env, cfg, "killprivV2", &kp) != napi_ok || napi_get_value_bool(env, kp, &s->killpriv_v2) != napi_ok) {
    ps_throw_type(env, "config.killprivV2 must be a boolean");
    return false;
  }

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
  int io_err = ps_rawio_install(s);
  if (io_err) {
    ps_throw_errno(env, "fuse_session_custom_io", -io_err);
    goto fail_mounted;
  }
  if (!ps_find_mount_dev(s->mountpoint, &s->mount_dev))
    s->mount_dev = 0;

  /* Non-blocking: the read loop reads until EAGAIN, and must never sleep in read(). */
  int fl = fcntl(s->dev_fd, F_GETFL);
  if (fl < 0 || fcntl(s->dev_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    ps_throw_errno(env, "fcntl", errno);
    goto fail_mounted;
  }
  uv_loop_t *loop;
  napi_value name;
  s->env = env;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || napi_create_reference(env, argv[3], 1, &s->handler) != napi_ok ||
      napi_create_string_utf8(env, "pagefs-fuse", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &s->actx) != napi_ok) {
    ps_throw_errno(env, "mount", ENOMEM);
    goto fail_mounted;
  }
  s->loop = loop;
  int err = uv_poll_init(loop, &s->poll, s->dev_fd);
  if (err == 0) {
    s->poll.data = s;
    err = uv_poll_start(&s->poll, UV_READABLE, on_readable);
    if (err)
      uv_close((uv_handle_t *)&s->poll, NULL);
  }
  if (err) {
    ps_throw_errno(env, "uv_poll_start", -err);
    goto fail_mounted;
  }
  s->reading = true;
  napi_add_env_cleanup_hook(env, env_cleanup, s);

  if (napi_create_object(env, &result) != napi_ok || napi_wrap(env, result, s, NULL, NULL, NULL) != napi_ok ||
      napi_type_tag_object(env, result, &session_tag) != napi_ok) {
    /* Without a Session JS cannot unmount, so do it here; EXIT follows. */
    s->unmounted = true;
    fuse_session_exit(s->se);
    ps_detach_mount(s);
    ps_throw_errno(env, "mount", ENOMEM);
    result = NULL;
  }
  free(given);
  fuse_opt_free_args(&fargs);
  return result;

fail_mounted:
  {
    /* Nothing reads or replies on the session yet, so libfuse may close its fd. */
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
  /* The handler reference may point at s's fields: leak s (failure path only). */
  free(given);
  fuse_opt_free_args(&fargs);
  return NULL;

fail:
  free(given);
  fuse_opt_free_args(&fargs);
  free(s->mountpoint);
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
  if (!s->unmounted) {
    fuse_session_exit(s->se);
    rc = ps_detach_mount(s);
    s->unmounted = rc == 0;
  }
  if (rc < 0) {
    ps_throw_errno(env, "umount", -rc);
    return NULL;
  }
  return ps_undefined(env);
}
