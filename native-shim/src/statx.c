/*
 * statx.c — FUSE_STATX, the only request that carries a birth time, which libfuse
 * 3.14 does not know: its op table ends before opcode 52, so fuse_session_process_buf
 * would answer ENOSYS and the kernel would stop asking for the life of the mount
 * (fc->no_statx, fs/fuse/dir.c fuse_update_get_attr).
 *
 * rawio.c reads requests before libfuse does and hands FUSE_STATX here instead: it is
 * posted to JS like any request, with a ps_raw_req as its handle, and answered
 * by replyStatx/replyRawErr, which write the reply to /dev/fuse themselves (one
 * writev: the kernel takes a reply whole). libfuse never sees these requests; an
 * INTERRUPT for one finds nothing to interrupt, as for a request already answered.
 *
 * The wire structs are those of protocol 7.39 (include/uapi/linux/fuse.h); Debian's
 * kernel headers predate them, so they are spelled out here with their sizes checked.
 */
#include "shim.h"

#include <errno.h>
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

struct ps_sx_time {
  int64_t tv_sec;
  uint32_t tv_nsec;
  int32_t reserved;
};

struct ps_fuse_statx {
  uint32_t mask, blksize;
  uint64_t attributes;
  uint32_t nlink, uid, gid;
  uint16_t mode, spare0;
  uint64_t ino, size, blocks, attributes_mask;
  struct ps_sx_time atime, btime, ctime, mtime;
  uint32_t rdev_major, rdev_minor, dev_major, dev_minor;
  uint64_t spare2[14];
};

struct ps_statx_in {
  uint32_t getattr_flags, reserved;
  uint64_t fh;
  uint32_t sx_flags, sx_mask;
};

struct ps_statx_out {
  uint64_t attr_valid;
  uint32_t attr_valid_nsec, flags;
  uint64_t spare[2];
  struct ps_fuse_statx stat;
};

_Static_assert(sizeof(struct ps_fuse_statx) == 256, "struct fuse_statx is 256 bytes");
_Static_assert(sizeof(struct ps_statx_in) == 24, "struct fuse_statx_in is 24 bytes");
_Static_assert(sizeof(struct ps_statx_out) == 288, "struct fuse_statx_out is 288 bytes");

/* STATX_* bits (linux/stat.h): what a GETATTR can fill, and the birth time. */
#define PS_STATX_BASIC_STATS 0x7ffU
#define PS_STATX_BTIME 0x800U

/* The handle of a request libfuse never saw; freed by the reply that answers it. */
typedef struct ps_raw_req {
  int fd;
  uint64_t unique;
} ps_raw_req;

static void raw_send(int fd, uint64_t unique, int err, const void *body, size_t len) {
  struct fuse_out_header out = {.len = (uint32_t)(sizeof out + len), .error = -err, .unique = unique};
  struct iovec iov[2] = {{&out, sizeof out}, {(void *)body, len}};
  /* ENOENT: the request was interrupted; ENODEV: unmounted. Nobody is left to tell. */
  (void)!writev(fd, iov, len ? 2 : 1);
}

void ps_raw_abandon(void *raw, int err) {
  ps_raw_req *r = raw;
  raw_send(r->fd, r->unique, err, NULL, 0);
  free(r);
}

void ps_statx_post(ps_session *s, int fd, const struct fuse_in_header *in, size_t n) {
  if (n < sizeof *in + sizeof(struct ps_statx_in)) {
    raw_send(fd, in->unique, EINVAL, NULL, 0);
    return;
  }
  const struct ps_statx_in *arg = (const void *)(in + 1);
  ps_raw_req *r = malloc(sizeof *r);
  ps_event *e = r ? ps_event_new(s, PS_OP_STATX, NULL) : NULL;
  if (!e) {
    free(r);
    raw_send(fd, in->unique, ENOMEM, NULL, 0);
    return;
  }
  r->fd = fd;
  r->unique = in->unique;
  e->raw = r;
  e->uid = in->uid;
  e->gid = in->gid;
  e->pid = in->pid;
  ps_event_num(e, (double)in->nodeid);
  ps_event_num(e, arg->sx_mask);
  ps_event_post(e);
}

static bool arg_raw(napi_env env, napi_value v, ps_raw_req **out) {
  fuse_req_t req;
  if (!ps_arg_req(env, v, &req))
    return false;
  *out = (ps_raw_req *)req;
  return true;
}

/* replyStatx(req, attr, btimeSec, btimeNsec, attrTimeout) */
static napi_value reply_statx(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  ps_raw_req *r;
  struct stat st;
  double bsec, bnsec, timeout;
  if (!ps_get_args(env, info, 5, argv, NULL) || !arg_raw(env, argv[0], &r) || !ps_arg_attr(env, argv[1], "attr", &st) ||
      !ps_arg_number(env, argv[2], "btimeSec", &bsec) || !ps_arg_number(env, argv[3], "btimeNsec", &bnsec) ||
      !ps_arg_number(env, argv[4], "attrTimeout", &timeout))
    return NULL;
  struct ps_statx_out o;
  memset(&o, 0, sizeof o);
  o.attr_valid = (uint64_t)timeout;
  o.attr_valid_nsec = (uint32_t)((timeout - (double)o.attr_valid) * 1e9);
  struct ps_fuse_statx *x = &o.stat;
  x->mask = PS_STATX_BASIC_STATS | PS_STATX_BTIME;
  x->blksize = (uint32_t)st.st_blksize;
  x->nlink = (uint32_t)st.st_nlink;
  x->uid = st.st_uid;
  x->gid = st.st_gid;
  x->mode = (uint16_t)st.st_mode;
  x->ino = st.st_ino;
  x->size = (uint64_t)st.st_size;
  x->blocks = (uint64_t)st.st_blocks;
  x->atime = (struct ps_sx_time){st.st_atim.tv_sec, (uint32_t)st.st_atim.tv_nsec, 0};
  x->mtime = (struct ps_sx_time){st.st_mtim.tv_sec, (uint32_t)st.st_mtim.tv_nsec, 0};
  x->ctime = (struct ps_sx_time){st.st_ctim.tv_sec, (uint32_t)st.st_ctim.tv_nsec, 0};
  x->btime = (struct ps_sx_time){(int64_t)bsec, (uint32_t)bnsec, 0};
  x->rdev_major = major(st.st_rdev);
  x->rdev_minor = minor(st.st_rdev);
  raw_send(r->fd, r->unique, 0, &o, sizeof o);
  free(r);
  return ps_undefined(env);
}

/* replyRawErr(req, errno) */
static napi_value reply_raw_err(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  ps_raw_req *r;
  int32_t err;
  if (!ps_get_args(env, info, 2, argv, NULL) || !arg_raw(env, argv[0], &r) || !ps_arg_int32(env, argv[1], "errno", &err))
    return NULL;
  ps_raw_abandon(r, err);
  return ps_undefined(env);
}

napi_status ps_define_raw_replies(napi_env env, napi_value target) {
  napi_property_descriptor props[] = {
      {"replyStatx", NULL, reply_statx, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyRawErr", NULL, reply_raw_err, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, target, sizeof props / sizeof props[0], props);
}
