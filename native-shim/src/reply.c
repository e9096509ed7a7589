/*
 * reply.c — the reply* functions: decode JS arguments, call the matching fuse_reply_*.
 *
 * Contract (binding.ts FuseBinding.reply*): each call answers one request and
 * returns undefined (replyDir returns how many entries it packed). Arguments are all
 * decoded before libfuse is called, so a TypeError/RangeError leaves the request
 * unanswered and still owned by the caller. A negative return from libfuse (the
 * kernel connection is gone, or the request was interrupted) is ignored: the request
 * is consumed either way and there is nobody left to tell.
 *
 * Replies run on the JS thread, possibly long after the libfuse callback returned;
 * the low-level API allows a reply from any thread at any time before the request is
 * answered. Replying twice to one req is a use-after-free; the dispatcher prevents it.
 */
#include "shim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

/* Replies carry no meaningful result for JS; libfuse's errors are dropped on purpose. */
#define IGNORE(x) ((void)(x))

static void fill_open_flags(struct fuse_file_info *fi, uint32_t flags) {
  fi->direct_io = (flags & PS_OPEN_DIRECT_IO) != 0;
  fi->keep_cache = (flags & PS_OPEN_KEEP_CACHE) != 0;
  fi->nonseekable = (flags & PS_OPEN_NONSEEKABLE) != 0;
  fi->cache_readdir = (flags & PS_OPEN_CACHE_READDIR) != 0;
  fi->noflush = (flags & PS_OPEN_NOFLUSH) != 0;
}

/* (ino, generation, attr, attrTimeout, entryTimeout) starting at argv[0]. */
static bool get_entry(napi_env env, napi_value *argv, struct fuse_entry_param *e) {
  uint64_t ino, gen;
  memset(e, 0, sizeof *e);
  if (!ps_arg_uint64(env, argv[0], "ino", &ino) || !ps_arg_uint64(env, argv[1], "generation", &gen) ||
      !ps_arg_attr(env, argv[2], "attr", &e->attr) || !ps_arg_number(env, argv[3], "attrTimeout", &e->attr_timeout) ||
      !ps_arg_number(env, argv[4], "entryTimeout", &e->entry_timeout))
    return false;
  e->ino = ino; /* 0: a negative entry, cached for entryTimeout */
  e->generation = gen;
  return true;
}

static napi_value reply_err(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  fuse_req_t req;
  int32_t err;
  if (!ps_get_args(env, info, 2, argv, NULL) || !ps_arg_req(env, argv[0], &req) ||
      !ps_arg_int32(env, argv[1], "errno", &err))
    return NULL;
  /* errno 0 is the success ack of ops that answer with fuse_reply_err only. */
  IGNORE(fuse_reply_err(req, err));
  return ps_undefined(env);
}

static napi_value reply_none(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  fuse_req_t req;
  if (!ps_get_args(env, info, 1, argv, NULL) || !ps_arg_req(env, argv[0], &req))
    return NULL;
  fuse_reply_none(req);
  return ps_undefined(env);
}

static napi_value reply_entry(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  fuse_req_t req;
  struct fuse_entry_param e;
  if (!ps_get_args(env, info, 6, argv, NULL) || !ps_arg_req(env, argv[0], &req) || !get_entry(env, argv + 1, &e))
    return NULL;
  IGNORE(fuse_reply_entry(req, &e));
  return ps_undefined(env);
}

static napi_value reply_create(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  fuse_req_t req;
  struct fuse_entry_param e;
  struct fuse_file_info fi;
  uint64_t fh;
  uint32_t flags;
  if (!ps_get_args(env, info, 8, argv, NULL) || !ps_arg_req(env, argv[0], &req) || !get_entry(env, argv + 1, &e) ||
      !ps_arg_uint64(env, argv[6], "fh", &fh) || !ps_arg_uint32(env, argv[7], "openFlags", &flags))
    return NULL;
  memset(&fi, 0, sizeof fi);
  fi.fh = fh;
  fill_open_flags(&fi, flags);
  IGNORE(fuse_reply_create(req, &e, &fi));
  return ps_undefined(env);
}

static napi_value reply_attr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  fuse_req_t req;
  struct stat st;
  double timeout;
  if (!ps_get_args(env, info, 3, argv, NULL) || !ps_arg_req(env, argv[0], &req) ||
      !ps_arg_attr(env, argv[1], "attr", &st) || !ps_arg_number(env, argv[2], "attrTimeout", &timeout))
    return NULL;
  IGNORE(fuse_reply_attr(req, &st, timeout));
  return ps_undefined(env);
}

static napi_value reply_readlink(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  fuse_req_t req;
  void *data;
  size_t len;
  if (!ps_get_args(env, info, 2, argv, NULL) || !ps_arg_req(env, argv[0], &req) ||
      !ps_arg_bytes(env, argv[1], "target", &data, &len))
    return NULL;
  /* fuse_reply_readlink takes a C string. */
  char *target = malloc(len + 1);
  if (!target) {
    ps_throw_errno(env, "replyReadlink", ENOMEM);
    return NULL;
  }
  memcpy(target, data, len);
  target[len] = '\0';
  IGNORE(fuse_reply_readlink(req, target));
  free(target);
  return ps_undefined(env);
}

static napi_value reply_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  fuse_req_t req;
  uint64_t fh;
  uint32_t flags;
  if (!ps_get_args(env, info, 3, argv, NULL) || !ps_arg_req(env, argv[0], &req) ||
      !ps_arg_uint64(env, argv[1], "fh", &fh) || !ps_arg_uint32(env, argv[2], "openFlags", &flags))
    return NULL;
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof fi);
  fi.fh = fh;
  fill_open_flags(&fi, flags);
  IGNORE(fuse_reply_open(req, &fi));
  return ps_undefined(env);
}

static napi_value reply_write(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  fuse_req_t req;
  uint64_t count;
  if (!ps_get_args(env, info, 2, argv, NULL) || !ps_arg_req(env, argv[0], &req) ||
      !ps_arg_uint64(env, argv[1], "count", &count))
    return NULL;
  IGNORE(fuse_reply_write(req, count));
  return ps_undefined(env);
}

static napi_value reply_buf(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  fuse_req_t req;
  void *data = NULL;
  size_t len = 0;
  if (!ps_get_args(env, info, 2, argv, NULL) || !ps_arg_req(env, argv[0], &req))
    return NULL;
  if (!ps_arg_is_nullish(env, argv[1]) && !ps_arg_bytes(env, argv[1], "data", &data, &len))
    return NULL;
  IGNORE(fuse_reply_buf(req, data, len));
  return ps_undefined(env);
}

static napi_value reply_iov(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  fuse_req_t req;
  bool is_array;
  uint32_t n;
  if (!ps_get_args(env, info, 2, argv, NULL) || !ps_arg_req(env, argv[0], &req))
    return NULL;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &n) != napi_ok) {
    ps_throw_type(env, "bufs must be an array of Buffers");
    return NULL;
  }
  /* libfuse adds one iovec for the header and writev takes at most IOV_MAX (1024):
     beyond that the reply would be lost and the request never answered. */
  if (n > 1023) {
    ps_throw_range(env, "bufs has %u entries, at most 1023 fit one reply", n);
    return NULL;
  }
  struct iovec iov[1023];
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok ||
        !ps_arg_bytes(env, v, "bufs[i]", &iov[i].iov_base, &iov[i].iov_len))
      return NULL;
  }
  IGNORE(fuse_reply_iov(req, iov, (int)n));
  return ps_undefined(env);
}

static napi_value reply_statfs(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  fuse_req_t req;
  uint64_t v[9];
  static const char *names[9] = {"bsize", "frsize", "blocks", "bfree", "bavail", "files", "ffree", "favail", "namemax"};
  if (!ps_get_args(env, info, 10, argv, NULL) || !ps_arg_req(env, argv[0], &req))
    return NULL;
  for (int i = 0; i < 9; i++)
    if (!ps_arg_uint64(env, argv[i + 1], names[i], &v[i]))
      return NULL;
  struct statvfs st;
  memset(&st, 0, sizeof st);
  st.f_bsize = v[0];
  st.f_frsize = v[1];
  st.f_blocks = v[2];
  st.f_bfree = v[3];
  st.f_bavail = v[4];
  st.f_files = v[5];
  st.f_ffree = v[6];
  st.f_favail = v[7];
  st.f_namemax = v[8];
  IGNORE(fuse_reply_statfs(req, &st));
  return ps_undefined(env);
}

static napi_value reply_xattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  fuse_req_t req;
  uint64_t size;
  if (!ps_get_args(env, info, 2, argv, NULL) || !ps_arg_req(env, argv[0], &req) ||
      !ps_arg_uint64(env, argv[1], "size", &size))
    return NULL;
  IGNORE(fuse_reply_xattr(req, size));
  return ps_undefined(env);
}

static napi_value reply_lseek(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  fuse_req_t req;
  int64_t off;
  if (!ps_get_args(env, info, 2, argv, NULL) || !ps_arg_req(env, argv[0], &req) ||
      !ps_arg_int64(env, argv[1], "off", &off))
    return NULL;
  IGNORE(fuse_reply_lseek(req, off));
  return ps_undefined(env);
}

static napi_value reply_ioctl(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  fuse_req_t req;
  int32_t result;
  void *data = NULL;
  size_t len = 0;
  if (!ps_get_args(env, info, 3, argv, NULL) || !ps_arg_req(env, argv[0], &req) ||
      !ps_arg_int32(env, argv[1], "result", &result))
    return NULL;
  if (!ps_arg_is_nullish(env, argv[2]) && !ps_arg_bytes(env, argv[2], "out", &data, &len))
    return NULL;
  IGNORE(fuse_reply_ioctl(req, result, data, len));
  return ps_undefined(env);
}

/*
 * replyDir(req, maxSize, plus, names, nums, attrs, attrTimeout, entryTimeout): packs
 * entries in order until one does not fit (fuse_add_direntry* report the size they
 * would need without writing), so the kernel's next READDIR starts at the nextOff of
 * the last entry sent. A READDIRPLUS entry with ino != 0 counts as a lookup in the kernel; the
 * count returned tells the dispatcher which ones were sent.
 */
static napi_value reply_dir(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  fuse_req_t req;
  uint64_t max_size;
  bool plus, is_array;
  uint32_t n;
  double *nums, *attrs = NULL, attr_timeout, entry_timeout;
  size_t nums_len, attrs_len = 0;
  if (!ps_get_args(env, info, 8, argv, NULL) || !ps_arg_req(env, argv[0], &req) ||
      !ps_arg_uint64(env, argv[1], "maxSize", &max_size) || !ps_arg_bool(env, argv[2], "plus", &plus))
    return NULL;
  if (napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[3], &n) != napi_ok) {
    ps_throw_type(env, "names must be an array of Buffers");
    return NULL;
  }
  if (!ps_arg_f64(env, argv[4], "nums", &nums, &nums_len) ||
      !ps_arg_f64(env, argv[5], "attrs", &attrs, &attrs_len) ||
      !ps_arg_number(env, argv[6], "attrTimeout", &attr_timeout) ||
      !ps_arg_number(env, argv[7], "entryTimeout", &entry_timeout))
    return NULL;
  if (nums_len < (size_t)n * 4) {
    ps_throw_range(env, "nums holds %zu doubles, %u entries need %zu", nums_len, n, (size_t)n * 4);
    return NULL;
  }
  if (plus && attrs_len < (size_t)n * PS_ATTR_LEN) {
    ps_throw_range(env, "attrs holds %zu doubles, %u entries need %zu", attrs_len, n, (size_t)n * PS_ATTR_LEN);
    return NULL;
  }
  /* The kernel never asks for more than a few pages; this bounds a bad maxSize. */
  if (max_size > (64u << 20)) {
    ps_throw_range(env, "maxSize %llu is too large", (unsigned long long)max_size);
    return NULL;
  }

  /* Validate every name first, so that a TypeError never follows a partial pack. */
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    void *p;
    size_t len;
    if (napi_get_element(env, argv[3], i, &v) != napi_ok || !ps_arg_bytes(env, v, "names[i]", &p, &len))
      return NULL;
  }

  char *buf = malloc(max_size ? max_size : 1);
  char *name = NULL;
  size_t name_cap = 0;
  if (!buf) {
    ps_throw_errno(env, "replyDir", ENOMEM);
    return NULL;
  }
  size_t used = 0;
  uint32_t packed = 0;
  for (; packed < n; packed++) {
    napi_value v;
    void *p;
    size_t len;
    napi_get_element(env, argv[3], packed, &v);
    napi_get_buffer_info(env, v, &p, &len);
    /* fuse_add_direntry* take a C string. */
    if (len + 1 > name_cap) {
      char *grown = realloc(name, len + 1);
      if (!grown)
        break;
      name = grown;
      name_cap = len + 1;
    }
    memcpy(name, p, len);
    name[len] = '\0';

    const double *num = nums + (size_t)packed * 4;
    off_t next_off = ps_d2i64(num[2]);
    size_t need;
    if (plus) {
      struct fuse_entry_param e;
      memset(&e, 0, sizeof e);
      ps_attr_to_stat(attrs + (size_t)packed * PS_ATTR_LEN, &e.attr);
      e.ino = ps_d2u64(num[0]);
      e.generation = ps_d2u64(num[1]);
      /* The dirent's d_ino is taken from attr.st_ino. */
      if (e.attr.st_ino == 0)
        e.attr.st_ino = e.ino;
      e.attr_timeout = attr_timeout;
      e.entry_timeout = entry_timeout;
      need = fuse_add_direntry_plus(req, buf + used, max_size - used, name, &e, next_off);
    } else {
      struct stat st;
      memset(&st, 0, sizeof st);
      st.st_ino = ps_d2u64(num[0]);
      st.st_mode = (mode_t)ps_d2u64(num[3]);
      need = fuse_add_direntry(req, buf + used, max_size - used, name, &st, next_off);
    }
    if (need > max_size - used)
      break;
    used += need;
  }
  free(name);
  IGNORE(fuse_reply_buf(req, buf, used));
  free(buf);
  return ps_number(env, packed);
}

napi_status ps_define_replies(napi_env env, napi_value target) {
  napi_property_descriptor props[] = {
      {"replyErr", NULL, reply_err, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyNone", NULL, reply_none, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyEntry", NULL, reply_entry, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyCreate", NULL, reply_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyAttr", NULL, reply_attr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyReadlink", NULL, reply_readlink, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyOpen", NULL, reply_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyWrite", NULL, reply_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyBuf", NULL, reply_buf, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyIov", NULL, reply_iov, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyStatfs", NULL, reply_statfs, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyXattr", NULL, reply_xattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyLseek", NULL, reply_lseek, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyIoctl", NULL, reply_ioctl, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyDir", NULL, reply_dir, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, target, sizeof props / sizeof props[0], props);
}
