/*
 * shim.h — what the native-shim source files share.
 *
 * Contract: src/fuse/binding.ts (the `fuse` export) and src/sys/index.ts (the `sys`
 * export) are the only description of behaviour; this header only declares the
 * pieces the C files hand each other. The addon holds no filesystem policy
 * (docs STYLE.md point 4): it mounts, decodes, enqueues, replies and notifies.
 *
 * Threads: requests are read (session.c), decoded (ops.c) and handed to JS (events.c) on the JS thread;
 * only notify.c's libuv pool threads run elsewhere, and they only write to /dev/fuse.
 */
#ifndef PAGEFS_SHIM_H
#define PAGEFS_SHIM_H

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
#include <node_api.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <uv.h>

/*
 * A request handle crosses to JS as a double. On x86_64 user pointers are below
 * 2^47 (2^56 with 5-level paging, and then only for mappings placed above 2^47 on
 * request), so they fit the 53-bit mantissa exactly; ps_event_new still checks.
 */
_Static_assert(sizeof(uintptr_t) == 8, "pagefs native-shim assumes a 64-bit target");
#define PS_REQ_MAX_BITS 53

/* Op codes: must equal OP in src/fuse/binding.ts. */
enum ps_op {
  PS_OP_INIT = 1, PS_OP_DESTROY, PS_OP_EXIT, PS_OP_LOOKUP, PS_OP_FORGET,
  PS_OP_FORGET_MULTI, PS_OP_GETATTR, PS_OP_SETATTR, PS_OP_READLINK, PS_OP_MKNOD,
  PS_OP_MKDIR, PS_OP_UNLINK, PS_OP_RMDIR, PS_OP_SYMLINK, PS_OP_RENAME, PS_OP_LINK,
  PS_OP_OPEN, PS_OP_READ, PS_OP_WRITE, PS_OP_FLUSH, PS_OP_RELEASE, PS_OP_FSYNC,
  PS_OP_OPENDIR, PS_OP_READDIR, PS_OP_READDIRPLUS, PS_OP_RELEASEDIR, PS_OP_FSYNCDIR,
  PS_OP_STATFS, PS_OP_SETXATTR, PS_OP_GETXATTR, PS_OP_LISTXATTR, PS_OP_REMOVEXATTR,
  PS_OP_ACCESS, PS_OP_CREATE, PS_OP_FALLOCATE, PS_OP_COPY_FILE_RANGE, PS_OP_LSEEK,
  PS_OP_IOCTL, PS_OP_STATX,
  PS_OP_MAX = PS_OP_STATX
};

/* Attribute record indices: must equal A / ATTR_LEN in src/fuse/binding.ts. */
enum ps_attr {
  PS_A_INO, PS_A_MODE, PS_A_NLINK, PS_A_UID, PS_A_GID, PS_A_RDEV, PS_A_SIZE,
  PS_A_BLOCKS, PS_A_BLKSIZE, PS_A_ATIME_SEC, PS_A_ATIME_NSEC, PS_A_MTIME_SEC,
  PS_A_MTIME_NSEC, PS_A_CTIME_SEC, PS_A_CTIME_NSEC, PS_ATTR_LEN
};

/* openFlags bits of replyOpen/replyCreate. */
#define PS_OPEN_DIRECT_IO 1
#define PS_OPEN_KEEP_CACHE 2
#define PS_OPEN_NONSEEKABLE 4
#define PS_OPEN_CACHE_READDIR 8
#define PS_OPEN_NOFLUSH 16

/*
 * One mounted session. Never freed: replies from JavaScript keep pointing at `se`
 * after the loop has ended, and the addon cannot know when the last one is sent.
 * The daemon exits after unmount, so the leak is one struct per mount.
 *
 * Requests are read and decoded on the JS thread itself (session.c): the /dev/fuse
 * descriptor is polled by Node's event loop, so a request reaches JavaScript without a
 * hop between threads. Everything here is used on that thread only, except `se` and
 * `dev_fd`, which notify.c's pool threads write replies to.
 */
typedef struct ps_session {
  struct fuse_session *se;
  char *mountpoint;   /* canonical path, resolved before mounting */
  dev_t mount_dev;    /* st_dev of our mount (from mountinfo), 0 if unknown */
  int dev_fd;         /* /dev/fuse descriptor; never closed, see session.c */

  /* Read by the init callback; written once before the first request is read. */
  unsigned want, unwant, max_write, max_readahead, time_gran;
  bool statx; /* config.ops lists STATX: statx.c answers it, not libfuse */
  bool killpriv_v2; /* config.killprivV2: answer INIT with FUSE_HANDLE_KILLPRIV_V2 (rawio.c) */
  unsigned poll_ns;  /* config.pollUs in ns: how long the read loop polls before the event loop may sleep */

  /* rawio.c, on the JS thread: what libfuse does not pass on. */
  bool killpriv_v2_on;  /* asked for and offered by the kernel: the INIT reply carries it */
  uint64_t init_unique; /* INIT's unique, to find its reply; 0 once patched */
  uint32_t raw_flags;   /* the request being decoded: WRITE's write_flags, OPEN/CREATE's open_flags */

  napi_env env;
  napi_ref handler;          /* the JS handler every event goes to */
  napi_async_context actx;   /* for the callback scope around each batch of requests */
  uv_poll_t poll;            /* readability of dev_fd, in Node's event loop */
  struct fuse_buf buf;       /* the current receive buffer (rbuf.c); a large WRITE takes it along to JS */
  bool reading;              /* poll is active: requests are being read */
  uv_loop_t *loop;           /* Node's event loop, whose backend descriptor the poll also watches */
  uint64_t idle_since;       /* CLOCK_MONOTONIC ns when the last batch was done */
  bool gone;                 /* the env is being torn down: JS will never answer */

  bool unmounted;            /* unmount runs once even if JS calls it twice */
} ps_session;

/* One argument of a request event, converted to a JS value by call_js. */
enum ps_arg_kind {
  PS_ARG_NUM,       /* num */
  PS_ARG_NULL,      /* null (no fuse_file_info) */
  PS_ARG_BYTES,     /* ptr/len copied into a Buffer, then freed */
  PS_ARG_EXTERNAL,  /* ptr/len handed to JS as an external Buffer, freed by its finalizer */
  PS_ARG_RECV,      /* ptr/len inside the receive buffer `base`, which JS takes over (rbuf.c) */
  PS_ARG_F64,       /* ptr/len (count of doubles) copied into a Float64Array, then freed */
};

typedef struct ps_arg {
  enum ps_arg_kind kind;
  double num;
  void *ptr;
  size_t len;
  void *base; /* PS_ARG_RECV: the receive buffer holding ptr */
} ps_arg;

#define PS_MAX_ARGS 8

/* A request or lifecycle event, decoded by a libfuse callback, on its way to the JS handler. */
typedef struct ps_event {
  int op;
  fuse_req_t req; /* NULL for INIT, DESTROY, EXIT and requests libfuse never saw */
  void *raw;      /* a request libfuse never saw (statx.c), or NULL */
  ps_session *session;
  double uid, gid, pid, umask;
  int argc;
  int fail; /* errno to answer with instead of reaching JS (a copy failed), or 0 */
  ps_arg argv[PS_MAX_ARGS];
} ps_event;

/* ops.c */
/* Fills ops with the callbacks for the listed op codes; returns the first unknown code, or 0. */
uint32_t ps_fill_ops(struct fuse_lowlevel_ops *ops, const uint32_t *codes, size_t n);
ps_event *ps_event_new(ps_session *s, int op, fuse_req_t req);
void ps_event_num(ps_event *e, double v);
void ps_event_free(ps_event *e);
/* Answers the request of an event that will never reach JS (JS gone, or out of memory). */
void ps_event_abandon(ps_event *e, int err);

/* rbuf.c: receive buffers, reused */
/* Bytes of a receive buffer: libfuse's largest request (se->bufsize starts there and only shrinks). */
#define PS_RBUF_SIZE ((size_t)256 * 4096 + 4096)
void *ps_rbuf_get(void);
void ps_rbuf_put(void *buf);
/* Payloads at least this long are handed to JS in their receive buffer instead of copied. */
#define PS_RECV_ADOPT_MIN ((size_t)16384)

/* events.c */
/* The session's current receive buffer: ops.c checks that a payload lies in it. */
bool ps_in_rbuf(ps_session *s, const void *p, size_t n);
/* Hands an event to the JS handler now (we are on the JS thread) and frees it. */
void ps_event_post(ps_event *e);

/* mounttab.c */
/* The device of the topmost mount at path, from /proc/self/mountinfo. */
bool ps_find_mount_dev(const char *path, dev_t *dev);
/* Detaches the session's mount unless it is gone already; 0 or a negative errno. */
int ps_detach_mount(ps_session *s);

/* session.c */
napi_value ps_mount(napi_env env, napi_callback_info info);
napi_value ps_unmount(napi_env env, napi_callback_info info);
/* Returns the session behind a Session object, or throws a TypeError and returns NULL. */
ps_session *ps_session_from(napi_env env, napi_value v);

/* reply.c */
napi_status ps_define_replies(napi_env env, napi_value target);

/* rawio.c */
/* Reads requests and writes replies through rawio.c (fuse_session_custom_io); 0 or a negative errno. */
int ps_rawio_install(ps_session *s);

/* statx.c */
struct fuse_in_header; /* linux/fuse.h, included by the .c files that read the wire */
/* Posts a FUSE_STATX request (read by rawio.c) to JS, or answers it with an errno. */
void ps_statx_post(ps_session *s, int fd, const struct fuse_in_header *in, size_t n);
/* Answers a request libfuse never saw with an errno and frees its handle. */
void ps_raw_abandon(void *raw, int err);
napi_status ps_define_raw_replies(napi_env env, napi_value target);

/* notify.c */
napi_value ps_notify_inval_inode(napi_env env, napi_callback_info info);
napi_value ps_notify_inval_entry(napi_env env, napi_callback_info info);
napi_value ps_notify_store(napi_env env, napi_callback_info info);

/* sys.c, mapping.c */
napi_status ps_define_sys(napi_env env, napi_value target);
napi_value ps_sys_mmap(napi_env env, napi_callback_info info);
napi_status ps_mapping_init(napi_env env);

/* js.c: argument decoding. Each returns false after throwing a TypeError or RangeError. */
typedef struct ps_instance {
  napi_ref mapping_ctor;
} ps_instance;

void ps_throw_type(napi_env env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ps_throw_range(napi_env env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Throws Error("<syscall>: <strerror>") with .code = errno name, .errno = err (> 0). */
void ps_throw_errno(napi_env env, const char *syscall, int err);
napi_value ps_undefined(napi_env env);
napi_value ps_number(napi_env env, double v);

bool ps_get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, napi_value *this_arg);
bool ps_arg_number(napi_env env, napi_value v, const char *what, double *out);
bool ps_arg_int32(napi_env env, napi_value v, const char *what, int32_t *out);
bool ps_arg_uint32(napi_env env, napi_value v, const char *what, uint32_t *out);
/* An integer number or a BigInt; numbers beyond the int64 range saturate. */
bool ps_arg_int64(napi_env env, napi_value v, const char *what, int64_t *out);
/* A non-negative integer number or BigInt. */
bool ps_arg_uint64(napi_env env, napi_value v, const char *what, uint64_t *out);
bool ps_arg_bool(napi_env env, napi_value v, const char *what, bool *out);
bool ps_arg_is_nullish(napi_env env, napi_value v);
/* Any ArrayBufferView (Buffer, Uint8Array, ...): its bytes, not copied. */
bool ps_arg_bytes(napi_env env, napi_value v, const char *what, void **data, size_t *len);
bool ps_arg_f64(napi_env env, napi_value v, const char *what, double **data, size_t *count);
/* A Float64Array of at least ATTR_LEN doubles in the A layout, decoded into a struct stat. */
bool ps_arg_attr(napi_env env, napi_value v, const char *what, struct stat *st);
/* Float64Array fields to integers: NaN becomes 0, out-of-range saturates (a plain cast would be UB). */
int64_t ps_d2i64(double d);
uint64_t ps_d2u64(double d);
void ps_attr_to_stat(const double *a, struct stat *st);
void ps_stat_to_attr(const struct stat *st, double *a);
bool ps_arg_req(napi_env env, napi_value v, fuse_req_t *req);
/* A malloc'd NUL-terminated copy of a JS string; NULL after throwing. */
char *ps_arg_string(napi_env env, napi_value v, const char *what);

#endif
