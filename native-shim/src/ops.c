/*
 * ops.c — the libfuse low-level callbacks: copy the request, hand it to JS, return.
 *
 * Contract: every callback runs on the JS thread, inside session.c's read loop, copies
 * everything it needs (names, values and write data are only valid during the
 * callback; so is the fuse_file_info, of which only fh is kept), hands one ps_event to
 * the JS handler (ps_event_post) and returns. The handler may answer at once or later;
 * the callback never waits for the answer. The per-op argument lists are those of OP
 * in binding.ts.
 *
 * Failure: if a copy fails or JavaScript is gone (its env torn down), the request is
 * answered here, ENOMEM or EIO (FORGETs with no reply), so the kernel never waits for
 * an answer that cannot come. Those are the only errno choices the addon makes.
 */
#include "shim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

ps_event *ps_event_new(ps_session *s, int op, fuse_req_t req) {
  ps_event *e = calloc(1, sizeof *e);
  if (!e) {
    if (req)
      fuse_reply_err(req, ENOMEM);
    return NULL;
  }
  e->op = op;
  e->req = req;
  e->session = s;
  if (req) {
    /* Cannot happen with the x86_64 default address-space layout; JS could not name this req. */
    if ((uintptr_t)req >> PS_REQ_MAX_BITS)
      e->fail = EIO;
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    e->uid = ctx->uid;
    e->gid = ctx->gid;
    e->pid = ctx->pid;
    e->umask = ctx->umask;
  }
  return e;
}

static ps_arg *next_arg(ps_event *e) {
  /* PS_MAX_ARGS covers the longest list in binding.ts (COPY_FILE_RANGE, 8). */
  return &e->argv[e->argc++];
}

void ps_event_num(ps_event *e, double v) {
  ps_arg *a = next_arg(e);
  a->kind = PS_ARG_NUM;
  a->num = v;
}

static void ev_fh(ps_event *e, const struct fuse_file_info *fi) {
  if (fi) {
    ps_event_num(e, (double)fi->fh);
  } else {
    next_arg(e)->kind = PS_ARG_NULL;
  }
}

static void ev_bytes(ps_event *e, const void *p, size_t n) {
  ps_arg *a = next_arg(e);
  a->kind = PS_ARG_BYTES;
  a->len = n;
  if (n == 0)
    return;
  a->ptr = malloc(n);
  if (!a->ptr) {
    e->fail = ENOMEM;
    return;
  }
  memcpy(a->ptr, p, n);
}

static void ev_name(ps_event *e, const char *name) {
  /* Bytes exactly as the kernel sent them: names need not be UTF-8. */
  ev_bytes(e, name, strlen(name));
}

/*
 * A payload JS owns afterwards. One that lies in the session's receive buffer and is
 * long enough is not copied: JS gets the receive buffer itself (PS_ARG_RECV, see
 * rbuf.c); anything else is copied once here and the copy becomes the Buffer's memory.
 */
static void ev_take(ps_event *e, const void *p, size_t n) {
  if (n == 0) {
    ev_bytes(e, NULL, 0);
    return;
  }
  ps_arg *a = next_arg(e);
  a->len = n;
  if (n >= PS_RECV_ADOPT_MIN && ps_in_rbuf(e->session, p, n)) {
    a->kind = PS_ARG_RECV;
    a->ptr = (void *)p;
    a->base = e->session->buf.mem;
    return;
  }
  a->kind = PS_ARG_EXTERNAL;
  a->ptr = malloc(n);
  if (!a->ptr) {
    e->fail = ENOMEM;
    return;
  }
  memcpy(a->ptr, p, n);
}

static double *ev_f64(ps_event *e, size_t count) {
  ps_arg *a = next_arg(e);
  a->kind = PS_ARG_F64;
  a->len = count;
  a->ptr = malloc(count ? count * sizeof(double) : 1);
  if (!a->ptr)
    e->fail = ENOMEM;
  return a->ptr;
}

void ps_event_free(ps_event *e) {
  for (int i = 0; i < e->argc; i++) {
    /* A PS_ARG_RECV payload points into the receive buffer, which stays the session's
       unless arg_to_js handed it to JS. */
    if (e->argv[i].kind != PS_ARG_RECV)
      free(e->argv[i].ptr);
  }
  free(e);
}

void ps_event_abandon(ps_event *e, int err) {
  if (e->req) {
    if (e->op == PS_OP_FORGET || e->op == PS_OP_FORGET_MULTI)
      fuse_reply_none(e->req);
    else
      fuse_reply_err(e->req, err);
  } else if (e->raw) {
    ps_raw_abandon(e->raw, err);
  }
  ps_event_free(e);
}

#define SESSION(req) ((ps_session *)fuse_req_userdata(req))
#define NEW(op, req)                                         \
  ps_event *e = ps_event_new(SESSION(req), (op), (req));     \
  if (!e)                                                    \
  return

/* ---- lifecycle ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn) {
  ps_session *s = userdata;
  /* libfuse rejects the mount (EPROTO) if want has a bit capable lacks. */
  conn->want |= s->want & conn->capable;
  conn->want &= ~s->unwant;
  /* conn->max_write arrives as libfuse's receive-buffer limit and is not clamped
     again after init: asking for more would make the kernel send writes our read
     buffer cannot hold. max_readahead arrives as the kernel's offer. */
  if (s->max_write < conn->max_write)
    conn->max_write = s->max_write;
  if (s->max_readahead < conn->max_readahead)
    conn->max_readahead = s->max_readahead;
  conn->time_gran = s->time_gran;

  ps_event *e = ps_event_new(s, PS_OP_INIT, NULL);
  if (!e)
    return;
  ps_event_num(e, conn->capable);
  ps_event_num(e, conn->want);
  ps_event_num(e, conn->proto_major);
  ps_event_num(e, conn->proto_minor);
  ps_event_num(e, conn->max_write);
  ps_event_num(e, conn->max_readahead);
  ps_event_num(e, s->killpriv_v2_on);
  ps_event_post(e);
}

/* Called only for FUSE_DESTROY (sent by the kernel for fuseblk mounts): the addon never
   calls fuse_session_destroy, which would be the other caller. */
static void op_destroy(void *userdata) {
  ps_event *e = ps_event_new(userdata, PS_OP_DESTROY, NULL);
  if (e)
    ps_event_post(e);
}

/* ---- entries ---- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  NEW(PS_OP_LOOKUP, req);
  ps_event_num(e, parent);
  ev_name(e, name);
  ps_event_post(e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  NEW(PS_OP_FORGET, req);
  ps_event_num(e, ino);
  ps_event_num(e, (double)nlookup);
  ps_event_post(e);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
  NEW(PS_OP_FORGET_MULTI, req);
  double *pairs = ev_f64(e, 2 * count);
  if (pairs) {
    for (size_t i = 0; i < count; i++) {
      pairs[2 * i] = (double)forgets[i].ino;
      pairs[2 * i + 1] = (double)forgets[i].nlookup;
    }
  }
  ps_event_post(e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW(PS_OP_GETATTR, req);
  ps_event_num(e, ino);
  ev_fh(e, fi);
  ps_event_post(e);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  NEW(PS_OP_SETATTR, req);
  ps_event_num(e, ino);
  ps_event_num(e, to_set);
  double *a = ev_f64(e, PS_ATTR_LEN);
  if (a)
    ps_stat_to_attr(attr, a);
  ev_fh(e, fi);
  ps_event_post(e);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  NEW(PS_OP_READLINK, req);
  ps_event_num(e, ino);
  ps_event_post(e);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  NEW(PS_OP_MKNOD, req);
  ps_event_num(e, parent);
  ev_name(e, name);
  ps_event_num(e, mode);
  ps_event_num(e, (double)rdev);
  ps_event_post(e);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  NEW(PS_OP_MKDIR, req);
  ps_event_num(e, parent);
  ev_name(e, name);
  ps_event_num(e, mode);
  ps_event_post(e);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
  NEW(PS_OP_UNLINK, req);
  ps_event_num(e, parent);
  ev_name(e, name);
  ps_event_post(e);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
  NEW(PS_OP_RMDIR, req);
  ps_event_num(e, parent);
  ev_name(e, name);
  ps_event_post(e);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  NEW(PS_OP_SYMLINK, req);
  ev_name(e, link);
  ps_event_num(e, parent);
  ev_name(e, name);
  ps_event_post(e);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags) {
  NEW(PS_OP_RENAME, req);
  ps_event_num(e, parent);
  ev_name(e, name);
  ps_event_num(e, newparent);
  ev_name(e, newname);
  ps_event_num(e, flags);
  ps_event_post(e);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  NEW(PS_OP_LINK, req);
  ps_event_num(e, ino);
  ps_event_num(e, newparent);
  ev_name(e, newname);
  ps_event_post(e);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  NEW(PS_OP_CREATE, req);
  ps_event_num(e, parent);
  ev_name(e, name);
  ps_event_num(e, mode);
  ps_event_num(e, fi->flags);
  ps_event_post(e);
}

/* ---- files ---- */

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW(PS_OP_OPEN, req);
  ps_event_num(e, ino);
  ps_event_num(e, fi->flags);
  ps_event_num(e, SESSION(req)->raw_flags);
  ps_event_post(e);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  NEW(PS_OP_READ, req);
  ps_event_num(e, ino);
  ps_event_num(e, (double)size);
  ps_event_num(e, (double)off);
  ev_fh(e, fi);
  ps_event_post(e);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi) {
  NEW(PS_OP_WRITE, req);
  ps_event_num(e, ino);
  ev_take(e, buf, size);
  ps_event_num(e, (double)off);
  ev_fh(e, fi);
  ps_event_num(e, fi->writepage);
  ps_event_num(e, fi->flags);
  ps_event_num(e, SESSION(req)->raw_flags);
  ps_event_post(e);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW(PS_OP_FLUSH, req);
  ps_event_num(e, ino);
  ev_fh(e, fi);
  /* A hash from the kernel: above 2^53 it loses low bits (binding.ts passes numbers). */
  ps_event_num(e, (double)fi->lock_owner);
  ps_event_post(e);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW(PS_OP_RELEASE, req);
  ps_event_num(e, ino);
  ev_fh(e, fi);
  ps_event_num(e, fi->flags);
  ps_event_post(e);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  NEW(PS_OP_FSYNC, req);
  ps_event_num(e, ino);
  ps_event_num(e, datasync ? 1 : 0);
  ev_fh(e, fi);
  ps_event_post(e);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                         struct fuse_file_info *fi) {
  NEW(PS_OP_FALLOCATE, req);
  ps_event_num(e, ino);
  ps_event_num(e, mode);
  ps_event_num(e, (double)offset);
  ps_event_num(e, (double)length);
  ev_fh(e, fi);
  ps_event_post(e);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, struct fuse_file_info *fi_in,
                               fuse_ino_t ino_out, off_t off_out, struct fuse_file_info *fi_out, size_t len,
                               int flags) {
  NEW(PS_OP_COPY_FILE_RANGE, req);
  ps_event_num(e, ino_in);
  ps_event_num(e, (double)off_in);
  ev_fh(e, fi_in);
  ps_event_num(e, ino_out);
  ps_event_num(e, (double)off_out);
  ev_fh(e, fi_out);
  ps_event_num(e, (double)len);
  ps_event_num(e, flags);
  ps_event_post(e);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi) {
  NEW(PS_OP_LSEEK, req);
  ps_event_num(e, ino);
  ps_event_num(e, (double)off);
  ps_event_num(e, whence);
  ev_fh(e, fi);
  ps_event_post(e);
}

static void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg, struct fuse_file_info *fi,
                     unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz) {
  NEW(PS_OP_IOCTL, req);
  ps_event_num(e, ino);
  ps_event_num(e, cmd);
  ev_fh(e, fi);
  ps_event_num(e, flags);
  if (in_bufsz)
    ev_bytes(e, in_buf, in_bufsz);
  else
    next_arg(e)->kind = PS_ARG_NULL;
  ps_event_num(e, (double)out_bufsz);
  ps_event_post(e);
}

/* ---- directories ---- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW(PS_OP_OPENDIR, req);
  ps_event_num(e, ino);
  ps_event_num(e, fi->flags);
  ps_event_post(e);
}

static void post_readdir(int op, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                         struct fuse_file_info *fi) {
  NEW(op, req);
  ps_event_num(e, ino);
  ps_event_num(e, (double)size);
  ps_event_num(e, (double)off);
  ev_fh(e, fi);
  ps_event_post(e);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  post_readdir(PS_OP_READDIR, req, ino, size, off, fi);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  post_readdir(PS_OP_READDIRPLUS, req, ino, size, off, fi);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  NEW(PS_OP_RELEASEDIR, req);
  ps_event_num(e, ino);
  ev_fh(e, fi);
  ps_event_post(e);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  NEW(PS_OP_FSYNCDIR, req);
  ps_event_num(e, ino);
  ps_event_num(e, datasync ? 1 : 0);
  ev_fh(e, fi);
  ps_event_post(e);
}

/* ---- filesystem, xattrs, access ---- */

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  NEW(PS_OP_STATFS, req);
  ps_event_num(e, ino);
  ps_event_post(e);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                        int flags) {
  NEW(PS_OP_SETXATTR, req);
  ps_event_num(e, ino);
  ev_name(e, name);
  ev_bytes(e, value, size);
  ps_event_num(e, flags);
  ps_event_post(e);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  NEW(PS_OP_GETXATTR, req);
  ps_event_num(e, ino);
  ev_name(e, name);
  ps_event_num(e, (double)size);
  ps_event_post(e);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  NEW(PS_OP_LISTXATTR, req);
  ps_event_num(e, ino);
  ps_event_num(e, (double)size);
  ps_event_post(e);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) {
  NEW(PS_OP_REMOVEXATTR, req);
  ps_event_num(e, ino);
  ev_name(e, name);
  ps_event_post(e);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  NEW(PS_OP_ACCESS, req);
  ps_event_num(e, ino);
  ps_event_num(e, mask);
  ps_event_post(e);
}

uint32_t ps_fill_ops(struct fuse_lowlevel_ops *ops, const uint32_t *codes, size_t n) {
  memset(ops, 0, sizeof *ops);
  /* init applies the mount config and destroy is not a kernel op that could answer
     ENOSYS, so both are always present; everything else only when listed. */
  ops->init = op_init;
  ops->destroy = op_destroy;
  for (size_t i = 0; i < n; i++) {
    switch (codes[i]) {
    case PS_OP_INIT: case PS_OP_DESTROY: case PS_OP_EXIT: break;
    case PS_OP_LOOKUP: ops->lookup = op_lookup; break;
    case PS_OP_FORGET: ops->forget = op_forget; break;
    case PS_OP_FORGET_MULTI: ops->forget_multi = op_forget_multi; break;
    case PS_OP_GETATTR: ops->getattr = op_getattr; break;
    case PS_OP_SETATTR: ops->setattr = op_setattr; break;
    case PS_OP_READLINK: ops->readlink = op_readlink; break;
    case PS_OP_MKNOD: ops->mknod = op_mknod; break;
    case PS_OP_MKDIR: ops->mkdir = op_mkdir; break;
    case PS_OP_UNLINK: ops->unlink = op_unlink; break;
    case PS_OP_RMDIR: ops->rmdir = op_rmdir; break;
    case PS_OP_SYMLINK: ops->symlink = op_symlink; break;
    case PS_OP_RENAME: ops->rename = op_rename; break;
    case PS_OP_LINK: ops->link = op_link; break;
    case PS_OP_OPEN: ops->open = op_open; break;
    case PS_OP_READ: ops->read = op_read; break;
    case PS_OP_WRITE: ops->write = op_write; break;
    case PS_OP_FLUSH: ops->flush = op_flush; break;
    case PS_OP_RELEASE: ops->release = op_release; break;
    case PS_OP_FSYNC: ops->fsync = op_fsync; break;
    case PS_OP_OPENDIR: ops->opendir = op_opendir; break;
    case PS_OP_READDIR: ops->readdir = op_readdir; break;
    case PS_OP_READDIRPLUS: ops->readdirplus = op_readdirplus; break;
    case PS_OP_RELEASEDIR: ops->releasedir = op_releasedir; break;
    case PS_OP_FSYNCDIR: ops->fsyncdir = op_fsyncdir; break;
    case PS_OP_STATFS: ops->statfs = op_statfs; break;
    case PS_OP_SETXATTR: ops->setxattr = op_setxattr; break;
    case PS_OP_GETXATTR: ops->getxattr = op_getxattr; break;
    case PS_OP_LISTXATTR: ops->listxattr = op_listxattr; break;
    case PS_OP_REMOVEXATTR: ops->removexattr = op_removexattr; break;
    case PS_OP_ACCESS: ops->access = op_access; break;
    case PS_OP_CREATE: ops->create = op_create; break;
    case PS_OP_FALLOCATE: ops->fallocate = op_fallocate; break;
    case PS_OP_COPY_FILE_RANGE: ops->copy_file_range = op_copy_file_range; break;
    case PS_OP_LSEEK: ops->lseek = op_lseek; break;
    case PS_OP_IOCTL: ops->ioctl = op_ioctl; break;
    case PS_OP_STATX: break; /* not a libfuse op: statx.c reads it before libfuse */
    default: return codes[i] ? codes[i] : UINT32_MAX;
    }
  }
  return 0;
}
