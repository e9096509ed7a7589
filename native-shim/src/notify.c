/*
 * notify.c — kernel cache invalidation, off the JS thread.
 *
 * Contract (binding.ts notifyInvalInode / notifyInvalEntry / notifyStore): run
 * fuse_lowlevel_notify_inval_inode / _inval_entry / _store on a libuv pool thread and return a
 * Promise of libfuse's result (0 or a negative errno: -ENOSYS before INIT, -ENOENT
 * when the kernel holds no such inode or entry or the mount is gone). Never rejects
 * for a kernel answer.
 *
 * Why a pool thread: both calls write to /dev/fuse and the kernel may make the write
 * wait: inval_inode writes back dirty pages first (a FUSE_WRITE to this very daemon,
 * under writeback_cache), inval_entry takes the parent's inode lock, which a request
 * in flight to us may hold. On the JS thread either would deadlock, since only the JS
 * thread answers requests. The caller still must not hold a lock those requests need.
 */
#include "shim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef enum { NOTIFY_INODE, NOTIFY_ENTRY, NOTIFY_STORE } notify_kind;

typedef struct notify_job {
  napi_async_work work;
  napi_deferred deferred;
  ps_session *session;
  notify_kind kind;
  uint64_t ino; /* the inode, or the parent for an entry */
  int64_t off, len;
  char *name; /* NUL-terminated: libfuse sends namelen + 1 bytes; NOTIFY_STORE: the data */
  size_t namelen;
  int rc;
} notify_job;

static void execute(napi_env env, void *data) {
  notify_job *j = data;
  if (j->kind == NOTIFY_ENTRY) {
    j->rc = fuse_lowlevel_notify_inval_entry(j->session->se, j->ino, j->name, j->namelen);
  } else if (j->kind == NOTIFY_STORE) {
    struct fuse_bufvec bufv = FUSE_BUFVEC_INIT(j->namelen);
    bufv.buf[0].mem = j->name;
    j->rc = fuse_lowlevel_notify_store(j->session->se, j->ino, j->off, &bufv, 0);
  } else {
    j->rc = fuse_lowlevel_notify_inval_inode(j->session->se, j->ino, j->off, j->len);
  }
}

static void complete(napi_env env, napi_status status, void *data) {
  notify_job *j = data;
  napi_value rc;
  napi_create_int32(env, status == napi_cancelled ? -ECANCELED : j->rc, &rc);
  napi_resolve_deferred(env, j->deferred, rc);
  napi_delete_async_work(env, j->work);
  free(j->name);
  free(j);
}

static napi_value queue(napi_env env, notify_job *j) {
  napi_value promise, name;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    free(j->name);
    free(j);
    return NULL;
  }
  napi_create_string_utf8(env, j->kind == NOTIFY_ENTRY ? "pagefs-notify-inval-entry"
                          : j->kind == NOTIFY_STORE ? "pagefs-notify-store" : "pagefs-notify-inval-inode",
                          NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, execute, complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    napi_value err;
    napi_value msg;
    napi_create_string_utf8(env, "notify: cannot queue async work", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, j->deferred, err);
    free(j->name);
    free(j);
  }
  return promise;
}

napi_value ps_notify_inval_inode(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  ps_session *s;
  uint64_t ino;
  int64_t off, len;
  if (!ps_get_args(env, info, 4, argv, NULL) || !(s = ps_session_from(env, argv[0])) ||
      !ps_arg_uint64(env, argv[1], "ino", &ino) || !ps_arg_int64(env, argv[2], "off", &off) ||
      !ps_arg_int64(env, argv[3], "len", &len))
    return NULL;
  notify_job *j = calloc(1, sizeof *j);
  if (!j) {
    ps_throw_errno(env, "notifyInvalInode", ENOMEM);
    return NULL;
  }
  j->session = s;
  j->ino = ino;
  j->off = off; /* negative: attributes only, no page invalidation (kernel) */
  j->len = len; /* <= 0: to the end of the file */
  return queue(env, j);
}

napi_value ps_notify_inval_entry(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  ps_session *s;
  uint64_t parent;
  void *name;
  size_t namelen;
  if (!ps_get_args(env, info, 3, argv, NULL) || !(s = ps_session_from(env, argv[0])) ||
      !ps_arg_uint64(env, argv[1], "parent", &parent) || !ps_arg_bytes(env, argv[2], "name", &name, &namelen))
    return NULL;
  notify_job *j = calloc(1, sizeof *j);
  if (!j || !(j->name = malloc(namelen + 1))) {
    free(j);
    ps_throw_errno(env, "notifyInvalEntry", ENOMEM);
    return NULL;
  }
  /* Copied: the Buffer may be changed or collected before the pool thread runs. */
  memcpy(j->name, name, namelen);
  j->name[namelen] = '\0';
  j->namelen = namelen;
  j->kind = NOTIFY_ENTRY;
  j->session = s;
  j->ino = parent;
  return queue(env, j);
}

/*
 * notifyStore(session, ino, off, data): the kernel puts `data` into its page cache at
 * `off` and raises its i_size to off + length when that is larger and data is not empty
 * (fuse_write_update_attr ignores a zero-length store).
 */
napi_value ps_notify_store(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  ps_session *s;
  uint64_t ino;
  int64_t off;
  void *data;
  size_t len;
  if (!ps_get_args(env, info, 4, argv, NULL) || !(s = ps_session_from(env, argv[0])) ||
      !ps_arg_uint64(env, argv[1], "ino", &ino) || !ps_arg_int64(env, argv[2], "off", &off) ||
      !ps_arg_bytes(env, argv[3], "data", &data, &len))
    return NULL;
  notify_job *j = calloc(1, sizeof *j);
  if (!j || !(j->name = malloc(len + 1))) {
    free(j);
    ps_throw_errno(env, "notifyStore", ENOMEM);
    return NULL;
  }
  memcpy(j->name, data, len);
  j->namelen = len;
  j->kind = NOTIFY_STORE;
  j->session = s;
  j->ino = ino;
  j->off = off;
  return queue(env, j);
}
