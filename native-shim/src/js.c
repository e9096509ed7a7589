/*
 * js.c — decoding JS arguments and throwing errors, shared by every entry point.
 *
 * Contract: a decoder either fills its output and returns true, or throws (TypeError
 * for a wrong type, RangeError for a value that cannot be represented) and returns
 * false, so that the caller returns NULL at once. Reply functions decode *all* their
 * arguments before calling libfuse: a thrown TypeError leaves the request unanswered,
 * and the dispatcher can still answer it.
 *
 * Integers arrive as JS numbers or, where 64 bits matter (offsets), as BigInt.
 * Numbers beyond int64 saturate rather than wrap, and negative offsets pass through
 * unchanged so that the kernel, not the addon, decides they are EINVAL.
 */
#include "shim.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void throw_fmt(napi_env env, bool range, const char *fmt, va_list ap) {
  char msg[256];
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (range)
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  else
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
}

void ps_throw_type(napi_env env, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  throw_fmt(env, false, fmt, ap);
  va_end(ap);
}

void ps_throw_range(napi_env env, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  throw_fmt(env, true, fmt, ap);
  va_end(ap);
}

void ps_throw_errno(napi_env env, const char *syscall, int err) {
  const char *name = strerrorname_np(err);
  const char *desc = strerrordesc_np(err);
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", syscall, desc ? desc : "Unknown error");

  napi_value code, message, error, errno_v, syscall_v;
  if (napi_create_string_utf8(env, name ? name : "UNKNOWN", NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
      napi_create_error(env, code, message, &error) != napi_ok) {
    napi_throw_error(env, name, msg);
    return;
  }
  napi_create_int32(env, err, &errno_v);
  napi_set_named_property(env, error, "errno", errno_v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_v);
  napi_set_named_property(env, error, "syscall", syscall_v);
  napi_throw(env, error);
}

napi_value ps_undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

napi_value ps_number(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

bool ps_get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, napi_value *this_arg) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, this_arg, NULL) != napi_ok) {
    ps_throw_type(env, "cannot read arguments");
    return false;
  }
  return true;
}

static bool typeof_is(napi_env env, napi_value v, napi_valuetype t) {
  napi_valuetype got;
  return napi_typeof(env, v, &got) == napi_ok && got == t;
}

bool ps_arg_is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined);
}

bool ps_arg_number(napi_env env, napi_value v, const char *what, double *out) {
  if (!typeof_is(env, v, napi_number) || napi_get_value_double(env, v, out) != napi_ok) {
    ps_throw_type(env, "%s must be a number", what);
    return false;
  }
  return true;
}

static bool integral_number(napi_env env, napi_value v, const char *what, double *d) {
  if (!ps_arg_number(env, v, what, d))
    return false;
  if (!isfinite(*d) || trunc(*d) != *d) {
    ps_throw_range(env, "%s must be an integer, got %g", what, *d);
    return false;
  }
  return true;
}

bool ps_arg_int32(napi_env env, napi_value v, const char *what, int32_t *out) {
  double d;
  if (!integral_number(env, v, what, &d))
    return false;
  if (d < INT32_MIN || d > INT32_MAX) {
    ps_throw_range(env, "%s is out of the int32 range: %.0f", what, d);
    return false;
  }
  *out = (int32_t)d;
  return true;
}

bool ps_arg_uint32(napi_env env, napi_value v, const char *what, uint32_t *out) {
  double d;
  if (!integral_number(env, v, what, &d))
    return false;
  if (d < 0 || d > UINT32_MAX) {
    ps_throw_range(env, "%s is out of the uint32 range: %.0f", what, d);
    return false;
  }
  *out = (uint32_t)d;
  return true;
}

bool ps_arg_int64(napi_env env, napi_value v, const char *what, int64_t *out) {
  if (typeof_is(env, v, napi_bigint)) {
    bool lossless;
    if (napi_get_value_bigint_int64(env, v, out, &lossless) != napi_ok || !lossless) {
      ps_throw_range(env, "%s does not fit in int64", what);
      return false;
    }
    return true;
  }
  double d;
  if (!integral_number(env, v, what, &d))
    return false;
  /* 2^63 is the first double above INT64_MAX. */
  if (d >= 9223372036854775808.0)
    *out = INT64_MAX;
  else if (d <= -9223372036854775808.0)
    *out = INT64_MIN;
  else
    *out = (int64_t)d;
  return true;
}

bool ps_arg_uint64(napi_env env, napi_value v, const char *what, uint64_t *out) {
  if (typeof_is(env, v, napi_bigint)) {
    bool lossless;
    if (napi_get_value_bigint_uint64(env, v, out, &lossless) != napi_ok || !lossless) {
      ps_throw_range(env, "%s does not fit in uint64", what);
      return false;
    }
    return true;
  }
  double d;
  if (!integral_number(env, v, what, &d))
    return false;
  if (d < 0) {
    ps_throw_range(env, "%s must not be negative, got %.0f", what, d);
    return false;
  }
  *out = d >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)d;
  return true;
}

bool ps_arg_bool(napi_env env, napi_value v, const char *what, bool *out) {
  if (!typeof_is(env, v, napi_boolean) || napi_get_value_bool(env, v, out) != napi_ok) {
    ps_throw_type(env, "%s must be a boolean", what);
    return false;
  }
  return true;
}

bool ps_arg_bytes(napi_env env, napi_value v, const char *what, void **data, size_t *len) {
  bool is;
  /* Node's napi_is_buffer accepts any ArrayBufferView, and so do we. */
  if (napi_is_buffer(env, v, &is) != napi_ok || !is || napi_get_buffer_info(env, v, data, len) != napi_ok) {
    ps_throw_type(env, "%s must be a Buffer", what);
    return false;
  }
  return true;
}

bool ps_arg_f64(napi_env env, napi_value v, const char *what, double **data, size_t *count) {
  bool is;
  napi_typedarray_type type;
  void *p;
  napi_value ab;
  size_t off;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, count, &p, &ab, &off) != napi_ok || type != napi_float64_array) {
    ps_throw_type(env, "%s must be a Float64Array", what);
    return false;
  }
  *data = p;
  return true;
}

/* Float64Array fields are whatever JS wrote; NaN or out-of-range must not reach an integer cast (UB). */
int64_t ps_d2i64(double d) {
  if (!(d == d))
    return 0;
  if (d >= 9223372036854775808.0)
    return INT64_MAX;
  if (d <= -9223372036854775808.0)
    return INT64_MIN;
  return (int64_t)d;
}

uint64_t ps_d2u64(double d) {
  if (!(d > 0))
    return 0;
  if (d >= 18446744073709551616.0)
    return UINT64_MAX;
  return (uint64_t)d;
}

void ps_attr_to_stat(const double *a, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = ps_d2u64(a[PS_A_INO]);
  st->st_mode = (mode_t)ps_d2u64(a[PS_A_MODE]);
  st->st_nlink = ps_d2u64(a[PS_A_NLINK]);
  st->st_uid = (uid_t)ps_d2u64(a[PS_A_UID]);
  st->st_gid = (gid_t)ps_d2u64(a[PS_A_GID]);
  st->st_rdev = ps_d2u64(a[PS_A_RDEV]);
  st->st_size = ps_d2i64(a[PS_A_SIZE]);
  st->st_blocks = ps_d2i64(a[PS_A_BLOCKS]);
  st->st_blksize = ps_d2i64(a[PS_A_BLKSIZE]);
  st->st_atim.tv_sec = ps_d2i64(a[PS_A_ATIME_SEC]);
  st->st_atim.tv_nsec = ps_d2i64(a[PS_A_ATIME_NSEC]);
  st->st_mtim.tv_sec = ps_d2i64(a[PS_A_MTIME_SEC]);
  st->st_mtim.tv_nsec = ps_d2i64(a[PS_A_MTIME_NSEC]);
  st->st_ctim.tv_sec = ps_d2i64(a[PS_A_CTIME_SEC]);
  st->st_ctim.tv_nsec = ps_d2i64(a[PS_A_CTIME_NSEC]);
}

void ps_stat_to_attr(const struct stat *st, double *a) {
  a[PS_A_INO] = (double)st->st_ino;
  a[PS_A_MODE] = st->st_mode;
  a[PS_A_NLINK] = (double)st->st_nlink;
  a[PS_A_UID] = st->st_uid;
  a[PS_A_GID] = st->st_gid;
  a[PS_A_RDEV] = (double)st->st_rdev;
  a[PS_A_SIZE] = (double)st->st_size;
  a[PS_A_BLOCKS] = (double)st->st_blocks;
  a[PS_A_BLKSIZE] = (double)st->st_blksize;
  a[PS_A_ATIME_SEC] = (double)st->st_atim.tv_sec;
  a[PS_A_ATIME_NSEC] = (double)st->st_atim.tv_nsec;
  a[PS_A_MTIME_SEC] = (double)st->st_mtim.tv_sec;
  a[PS_A_MTIME_NSEC] = (double)st->st_mtim.tv_nsec;
  a[PS_A_CTIME_SEC] = (double)st->st_ctim.tv_sec;
  a[PS_A_CTIME_NSEC] = (double)st->st_ctim.tv_nsec;
}

bool ps_arg_attr(napi_env env, napi_value v, const char *what, struct stat *st) {
  double *a;
  size_t n;
  if (!ps_arg_f64(env, v, what, &a, &n))
    return false;
  if (n < PS_ATTR_LEN) {
    ps_throw_range(env, "%s must hold %d doubles, got %zu", what, PS_ATTR_LEN, n);
    return false;
  }
  ps_attr_to_stat(a, st);
  return true;
}

bool ps_arg_req(napi_env env, napi_value v, fuse_req_t *req) {
  double d;
  if (!ps_arg_number(env, v, "req", &d))
    return false;
  /* Zero is the req of INIT/DESTROY/EXIT, which take no reply; anything else not integral is not a handle. */
  if (!(d > 0) || trunc(d) != d || d >= 9007199254740992.0) {
    ps_throw_range(env, "req is not a request handle: %g", d);
    return false;
  }
  *req = (fuse_req_t)(uintptr_t)d;
  return true;
}

char *ps_arg_string(napi_env env, napi_value v, const char *what) {
  size_t len;
  if (!typeof_is(env, v, napi_string) || napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    ps_throw_type(env, "%s must be a string", what);
    return NULL;
  }
  char *s = malloc(len + 1);
  if (!s) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}
