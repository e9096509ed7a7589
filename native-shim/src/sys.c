/*
 * sys.c — the system calls Node lacks (src/sys/index.ts `Sys`), synchronous.
 *
 * Contract: each function makes its syscall with the arguments exactly as given
 * (negative offsets, 2^63-1, odd flags all reach the kernel, which decides what is
 * EINVAL) and throws Error("<syscall>: <strerror>") with .code (errno name) and
 * .errno (positive) on failure. They block the calling thread, so they are for
 * tests, stress tools and CLI commands in processes other than the daemon: called on
 * the daemon's own mount from the daemon's JS thread they would deadlock.
 *
 * Offsets and lengths accept numbers or BigInt; results come back as numbers.
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIRECT_ALIGN 4096

static napi_value js_fallocate(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd, mode;
  int64_t off, len;
  if (!ps_get_args(env, info, 4, argv, NULL) || !ps_arg_int32(env, argv[0], "fd", &fd) ||
      !ps_arg_int32(env, argv[1], "mode", &mode) || !ps_arg_int64(env, argv[2], "offset", &off) ||
      !ps_arg_int64(env, argv[3], "length", &len))
    return NULL;
  if (fallocate(fd, mode, off, len) != 0) {
    ps_throw_errno(env, "fallocate", errno);
    return NULL;
  }
  return ps_undefined(env);
}

/* null/undefined: let the kernel use and advance the file position. */
static bool arg_off_or_null(napi_env env, napi_value v, const char *what, loff_t *off, loff_t **p) {
  if (ps_arg_is_nullish(env, v)) {
    *p = NULL;
    return true;
  }
  int64_t o;
  if (!ps_arg_int64(env, v, what, &o))
    return false;
  *off = o;
  *p = off;
  return true;
}

static napi_value js_copy_file_range(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int32_t fd_in, fd_out;
  uint32_t flags;
  loff_t off_in, off_out, *p_in, *p_out;
  int64_t len;
  if (!ps_get_args(env, info, 6, argv, NULL) || !ps_arg_int32(env, argv[0], "fdIn", &fd_in) ||
      !arg_off_or_null(env, argv[1], "offIn", &off_in, &p_in) || !ps_arg_int32(env, argv[2], "fdOut", &fd_out) ||
      !arg_off_or_null(env, argv[3], "offOut", &off_out, &p_out) || !ps_arg_int64(env, argv[4], "length", &len) ||
      !ps_arg_uint32(env, argv[5], "flags", &flags))
    return NULL;
  ssize_t n = copy_file_range(fd_in, p_in, fd_out, p_out, (size_t)len, flags);
  if (n < 0) {
    ps_throw_errno(env, "copy_file_range", errno);
    return NULL;
  }
  return ps_number(env, (double)n);
}

static napi_value js_ficlone(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t dest, src;
  if (!ps_get_args(env, info, 2, argv, NULL) || !ps_arg_int32(env, argv[0], "destFd", &dest) ||
      !ps_arg_int32(env, argv[1], "srcFd", &src))
    return NULL;
  if (ioctl(dest, FICLONE, src) != 0) {
    ps_throw_errno(env, "ioctl(FICLONE)", errno);
    return NULL;
  }
  return ps_undefined(env);
}

static napi_value js_ficlone_range(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t dest, src;
  int64_t src_off, len, dest_off;
  if (!ps_get_args(env, info, 5, argv, NULL) || !ps_arg_int32(env, argv[0], "destFd", &dest) ||
      !ps_arg_int32(env, argv[1], "srcFd", &src) || !ps_arg_int64(env, argv[2], "srcOffset", &src_off) ||
      !ps_arg_int64(env, argv[3], "length", &len) || !ps_arg_int64(env, argv[4], "destOffset", &dest_off))
    return NULL;
  struct file_clone_range r = {
      .src_fd = src, .src_offset = (uint64_t)src_off, .src_length = (uint64_t)len, .dest_offset = (uint64_t)dest_off};
  if (ioctl(dest, FICLONERANGE, &r) != 0) {
    ps_throw_errno(env, "ioctl(FICLONERANGE)", errno);
    return NULL;
  }
  return ps_undefined(env);
}

static napi_value js_lseek(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd, whence;
  int64_t off;
  if (!ps_get_args(env, info, 3, argv, NULL) || !ps_arg_int32(env, argv[0], "fd", &fd) ||
      !ps_arg_int64(env, argv[1], "offset", &off) || !ps_arg_int32(env, argv[2], "whence", &whence))
    return NULL;
  off_t r = lseek(fd, off, whence);
  if (r < 0) {
    ps_throw_errno(env, "lseek", errno);
    return NULL;
  }
  return ps_number(env, (double)r);
}

static napi_value js_ioctl(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  int64_t cmd;
  void *arg = NULL;
  size_t len;
  if (!ps_get_args(env, info, 3, argv, NULL) || !ps_arg_int32(env, argv[0], "fd", &fd) ||
      !ps_arg_int64(env, argv[1], "cmd", &cmd))
    return NULL;
  if (!ps_arg_is_nullish(env, argv[2]) && !ps_arg_bytes(env, argv[2], "arg", &arg, &len))
    return NULL;
  /* Commands are 32-bit; JS bit arithmetic turns _IOR codes (top bit set) negative. */
  if (cmd > UINT32_MAX || cmd < INT32_MIN) {
    ps_throw_range(env, "cmd does not fit in 32 bits");
    return NULL;
  }
  unsigned long request = (uint32_t)cmd;
  int r = ioctl(fd, request, arg);
  if (r < 0) {
    ps_throw_errno(env, "ioctl", errno);
    return NULL;
  }
  return ps_number(env, r);
}

static napi_value js_open_direct(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t flags;
  uint32_t mode = 0666;
  char *path;
  if (!ps_get_args(env, info, 3, argv, NULL) || !(path = ps_arg_string(env, argv[0], "path")))
    return NULL;
  if (!ps_arg_int32(env, argv[1], "flags", &flags) ||
      (!ps_arg_is_nullish(env, argv[2]) && !ps_arg_uint32(env, argv[2], "mode", &mode))) {
    free(path);
    return NULL;
  }
  /* O_CLOEXEC as libuv does for every fd Node opens. */
  int fd = open(path, flags | O_DIRECT | O_CLOEXEC, (mode_t)mode);
  int err = errno;
  free(path);
  if (fd < 0) {
    ps_throw_errno(env, "open", err);
    return NULL;
  }
  return ps_number(env, fd);
}

/* O_DIRECT needs an aligned user buffer; JS Buffers are not, so go through one. */
static void *bounce_alloc(size_t len) {
  void *p = NULL;
  size_t size = (len + DIRECT_ALIGN - 1) / DIRECT_ALIGN * DIRECT_ALIGN;
  if (posix_memalign(&p, DIRECT_ALIGN, size ? size : DIRECT_ALIGN) != 0)
    return NULL;
  return p;
}

/* A zero-length malloc may return NULL; a buffer of one byte is as good. */
static void *plain_alloc(size_t len) { return malloc(len ? len : 1); }

/*
 * pread(fd, length, offset) into a new Buffer; `alloc` gives the buffer (aligned for
 * O_DIRECT). Any offset goes to the kernel as given; the length must fit an allocation.
 */
static napi_value pread_with(napi_env env, napi_callback_info info, void *(*alloc)(size_t)) {
  napi_value argv[3];
  int32_t fd;
  int64_t len, off;
  if (!ps_get_args(env, info, 3, argv, NULL) || !ps_arg_int32(env, argv[0], "fd", &fd) ||
      !ps_arg_int64(env, argv[1], "length", &len) || !ps_arg_int64(env, argv[2], "offset", &off))
    return NULL;
  if (len < 0 || len > (1LL << 31)) {
    ps_throw_range(env, "length %lld is out of range (0 to 2^31)", (long long)len);
    return NULL;
  }
  void *buf = alloc((size_t)len);
  if (!buf) {
    ps_throw_errno(env, "malloc", ENOMEM);
    return NULL;
  }
  ssize_t n = pread(fd, buf, (size_t)len, off);
  if (n < 0) {
    int err = errno;
    free(buf);
    ps_throw_errno(env, "pread", err);
    return NULL;
  }
  napi_value out;
  napi_status st = napi_create_buffer_copy(env, (size_t)n, buf, NULL, &out);
  free(buf);
  return st == napi_ok ? out : NULL;
}

/* pwrite(fd, data, offset) of the whole buffer, copied into one from `alloc` when given. */
static napi_value pwrite_with(napi_env env, napi_callback_info info, void *(*alloc)(size_t)) {
  napi_value argv[3];
  int32_t fd;
  void *data;
  size_t len;
  int64_t off;
  if (!ps_get_args(env, info, 3, argv, NULL) || !ps_arg_int32(env, argv[0], "fd", &fd) ||
      !ps_arg_bytes(env, argv[1], "data", &data, &len) || !ps_arg_int64(env, argv[2], "offset", &off))
    return NULL;
  void *buf = data;
  if (alloc) {
    if (!(buf = alloc(len))) {
      ps_throw_errno(env, "posix_memalign", ENOMEM);
      return NULL;
    }
    memcpy(buf, data, len);
  }
  ssize_t n = pwrite(fd, buf, len, off);
  int err = errno;
  if (alloc)
    free(buf);
  if (n < 0) {
    ps_throw_errno(env, "pwrite", err);
    return NULL;
  }
  return ps_number(env, (double)n);
}

static napi_value js_pread_direct(napi_env env, napi_callback_info info) { return pread_with(env, info, bounce_alloc); }
static napi_value js_pwrite_direct(napi_env env, napi_callback_info info) { return pwrite_with(env, info, bounce_alloc); }

/*
 * Plain pread/pwrite/ftruncate/truncate, for probing offsets and lengths Node's fs
 * refuses before the syscall (negative, beyond 2^53, 2^63-1).
 */
static napi_value js_pread(napi_env env, napi_callback_info info) { return pread_with(env, info, plain_alloc); }
static napi_value js_pwrite(napi_env env, napi_callback_info info) { return pwrite_with(env, info, NULL); }

static napi_value js_ftruncate(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  int64_t len;
  if (!ps_get_args(env, info, 2, argv, NULL) || !ps_arg_int32(env, argv[0], "fd", &fd) ||
      !ps_arg_int64(env, argv[1], "length", &len))
    return NULL;
  if (ftruncate(fd, len) != 0) {
    ps_throw_errno(env, "ftruncate", errno);
    return NULL;
  }
  return ps_undefined(env);
}

static napi_value js_truncate(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t len;
  char *path;
  if (!ps_get_args(env, info, 2, argv, NULL) || !(path = ps_arg_string(env, argv[0], "path")))
    return NULL;
  if (!ps_arg_int64(env, argv[1], "length", &len)) {
    free(path);
    return NULL;
  }
  int r = truncate(path, len);
  int err = errno;
  free(path);
  if (r != 0) {
    ps_throw_errno(env, "truncate", err);
    return NULL;
  }
  return ps_undefined(env);
}

/*
 * stat(2) itself, for measuring it: node's fs.stat is statx(2) asking for the birth time
 * too, which on FUSE is a request of its own (FUSE_STATX) after every LOOKUP, where
 * stat(2) asks for the basic fields the LOOKUP reply already carried.
 */
static napi_value js_stat(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  char *path;
  if (!ps_get_args(env, info, 1, argv, NULL) || !(path = ps_arg_string(env, argv[0], "path")))
    return NULL;
  struct stat st;
  int r = stat(path, &st);
  int err = errno;
  free(path);
  if (r != 0) {
    ps_throw_errno(env, "stat", err);
    return NULL;
  }
  if (napi_create_object(env, &out) != napi_ok)
    return NULL;
  const struct {
    const char *name;
    double v;
  } f[] = {{"ino", (double)st.st_ino},   {"mode", st.st_mode},           {"nlink", (double)st.st_nlink},
           {"size", (double)st.st_size}, {"blocks", (double)st.st_blocks}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    if (napi_set_named_property(env, out, f[i].name, ps_number(env, f[i].v)) != napi_ok)
      return NULL;
  return out;
}

/* malloc_trim(0): glibc keeps memory freed in the middle of its arenas (page-cache
   Buffers, request copies, SQLite pages freed by other threads) resident until the
   process exits; this gives every whole free page back to the kernel. Touches no file,
   so unlike the rest of this file it is safe in the daemon. Returns 1 if memory was
   released. */
static napi_value js_malloc_trim(napi_env env, napi_callback_info info) {
  return ps_number(env, (double)malloc_trim(0));
}

#define SLAB_ALIGN (2UL << 20)

static void slab_free(napi_env env, void *data, void *hint) {
  munmap(data, (size_t)(uintptr_t)hint);
}

/* slab(bytes): anonymous memory, aligned to and advised for transparent huge pages
   (MADV_HUGEPAGE), as a Buffer that unmaps it when collected. Touches no file (safe in
   the daemon). bytes is rounded up to 2 MiB. */
static napi_value js_slab(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  uint32_t want;
  if (!ps_get_args(env, info, 1, argv, NULL) || !ps_arg_uint32(env, argv[0], "bytes", &want))
    return NULL;
  if (want == 0) {
    ps_throw_range(env, "bytes must be positive");
    return NULL;
  }
  size_t len = ((size_t)want + SLAB_ALIGN - 1) & ~(SLAB_ALIGN - 1);
  /* Map one alignment unit more, then cut the ends so the start is aligned. */
  char *raw = mmap(NULL, len + SLAB_ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    ps_throw_errno(env, "mmap", errno);
    return NULL;
  }
  char *p = (char *)(((uintptr_t)raw + SLAB_ALIGN - 1) & ~(SLAB_ALIGN - 1));
  if (p > raw)
    munmap(raw, (size_t)(p - raw));
  munmap(p + len, (size_t)(raw + SLAB_ALIGN - p));
  /* Only advice: without THP the pages fault in one by one, as any memory does. */
  (void)madvise(p, len, MADV_HUGEPAGE);
  if (napi_create_external_buffer(env, len, p, slab_free, (void *)(uintptr_t)len, &out) != napi_ok) {
    munmap(p, len);
    ps_throw_errno(env, "slab", ENOMEM);
    return NULL;
  }
  return out;
}

napi_status ps_define_sys(napi_env env, napi_value target) {
  napi_property_descriptor props[] = {
      {"fallocate", NULL, js_fallocate, NULL, NULL, NULL, napi_enumerable, NULL},
      {"copyFileRange", NULL, js_copy_file_range, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ficlone", NULL, js_ficlone, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ficloneRange", NULL, js_ficlone_range, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lseek", NULL, js_lseek, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioctl", NULL, js_ioctl, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mmap", NULL, ps_sys_mmap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openDirect", NULL, js_open_direct, NULL, NULL, NULL, napi_enumerable, NULL},
      {"preadDirect", NULL, js_pread_direct, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pwriteDirect", NULL, js_pwrite_direct, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pread", NULL, js_pread, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pwrite", NULL, js_pwrite, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ftruncate", NULL, js_ftruncate, NULL, NULL, NULL, napi_enumerable, NULL},
      {"truncate", NULL, js_truncate, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stat", NULL, js_stat, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mallocTrim", NULL, js_malloc_trim, NULL, NULL, NULL, napi_enumerable, NULL},
      {"slab", NULL, js_slab, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, target, sizeof props / sizeof props[0], props);
}
