/*
 * rawio.c — what passes between /dev/fuse and libfuse, seen before libfuse sees it.
 *
 * libfuse 3.14 lets a session read requests and write replies through our own
 * functions (fuse_session_custom_io, installed after fuse_session_mount on the same
 * descriptor). They pass everything through, and look at three things libfuse 3.14
 * does not know or does not pass on:
 *
 * - FUSE_STATX goes to statx.c instead of libfuse (see there).
 * - FUSE_HANDLE_KILLPRIV_V2 (protocol 7.33): when config.killprivV2 asks for it and the
 *   kernel offers it in INIT, the INIT reply libfuse writes gets the flag added. With
 *   it the kernel sets SB_NOSEC, so a write or fallocate no longer costs a GETXATTR of
 *   security.capability round trip once the kernel has seen that the file has neither
 *   that attribute nor a set-ID bit; the daemon clears the set-ID bits itself instead.
 * - The kernel's verdict for that clearing: WRITE's write_flags and OPEN's and CREATE's
 *   open_flags (FUSE_WRITE_KILL_SUIDGID, FUSE_OPEN_KILL_SUIDGID: the caller lacks
 *   CAP_FSETID), which libfuse drops. They are kept in s->raw_flags for the op callback
 *   of the same request: libfuse decodes a request right after it is read, on this
 *   thread, before the next read (session.c).
 *
 * No policy here: whether to ask is the daemon's choice, what to clear is the daemon's.
 */
#include "shim.h"

#include <linux/fuse.h>
#include <stddef.h>
#include <sys/uio.h>
#include <unistd.h>

#define PS_FUSE_STATX 52

/* The fields read here exist from protocol 7.9 on (fuse_write_in) and 7.6 (init). */
static void note_request(ps_session *s, const struct fuse_in_header *in, size_t n) {
  const void *arg = in + 1;
  size_t len = n - sizeof *in;
  s->raw_flags = 0;
  switch (in->opcode) {
  case FUSE_INIT:
    if (len >= offsetof(struct fuse_init_in, flags) + sizeof(uint32_t)) {
      const struct fuse_init_in *i = arg;
      s->init_unique = in->unique;
      s->killpriv_v2_on = s->killpriv_v2 && i->major == 7 && i->minor >= 33 && (i->flags & FUSE_HANDLE_KILLPRIV_V2);
    }
    break;
  case FUSE_WRITE:
    if (len >= sizeof(struct fuse_write_in))
      s->raw_flags = ((const struct fuse_write_in *)arg)->write_flags;
    break;
  case FUSE_OPEN:
    if (len >= sizeof(struct fuse_open_in))
      s->raw_flags = ((const struct fuse_open_in *)arg)->open_flags;
    break;
  case FUSE_CREATE:
    if (len >= sizeof(struct fuse_create_in))
      s->raw_flags = ((const struct fuse_create_in *)arg)->open_flags;
    break;
  }
}

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata) {
  ps_session *s = userdata;
  for (;;) {
    ssize_t n = read(fd, buf, len);
    if (n < (ssize_t)sizeof(struct fuse_in_header))
      return n;
    const struct fuse_in_header *in = buf;
    if (in->opcode == PS_FUSE_STATX && s->statx) {
      ps_statx_post(s, fd, in, (size_t)n);
      continue;
    }
    note_request(s, in, (size_t)n);
    return n;
  }
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata) {
  ps_session *s = userdata;
  /* libfuse writes a reply as the header, then its argument (fuse_send_reply_iov_nofree). */
  if (s->killpriv_v2_on && s->init_unique && count >= 2 && iov[0].iov_len == sizeof(struct fuse_out_header) &&
      iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + sizeof(uint32_t)) {
    const struct fuse_out_header *out = iov[0].iov_base;
    if (out->unique == s->init_unique && out->error == 0) {
      ((struct fuse_init_out *)iov[1].iov_base)->flags |= FUSE_HANDLE_KILLPRIV_V2;
      s->init_unique = 0;
    }
  }
  return writev(fd, iov, count);
}

int ps_rawio_install(ps_session *s) {
  struct fuse_custom_io io = {.writev = io_writev, .read = io_read};
  return fuse_session_custom_io(s->se, &io, s->dev_fd);
}
