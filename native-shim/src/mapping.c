/*
 * mapping.c — sys.mmap and the Mapping object it returns (src/sys/index.ts `Mapping`).
 *
 * Contract: mmap(fd, offset, length, prot, flags) maps with the arguments as given;
 * read/write copy between the mapping and Buffers (bounds-checked against the
 * mapping, RangeError otherwise); msync rounds the start down to a page, as msync(2)
 * requires, and covers the rest of the requested range; munmap is idempotent, and a
 * mapping collected by the GC is unmapped by its finalizer.
 *
 * Methods find their mapping through `this` (napi_unwrap), not through closures, so a
 * method detached from its object cannot reach freed memory.
 *
 * Known gap: touching a page beyond the end of the file raises SIGBUS, which kills the
 * process; callers keep their accesses inside the file size (as with any mmap).
 */
#include "shim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct mapping {
  char *addr;
  size_t len;
  bool live;
} mapping;

static void finalize_mapping(napi_env env, void *data, void *hint) {
  mapping *m = data;
  if (m->live)
    munmap(m->addr, m->len);
  free(m);
}

static mapping *this_mapping(napi_env env, napi_callback_info info, size_t n, napi_value *argv) {
  napi_value self;
  void *p = NULL;
  if (!ps_get_args(env, info, n, argv, &self))
    return NULL;
  if (napi_unwrap(env, self, &p) != napi_ok || !p) {
    ps_throw_type(env, "this is not a Mapping");
    return NULL;
  }
  mapping *m = p;
  if (!m->live) {
    napi_throw_error(env, "ERR_MAPPING_CLOSED", "the mapping has been unmapped");
    return NULL;
  }
  return m;
}

static bool range_ok(napi_env env, mapping *m, uint64_t off, uint64_t len) {
  if (off > m->len || len > m->len - off) {
    ps_throw_range(env, "range [%llu, +%llu) is outside the mapping of %zu bytes", (unsigned long long)off,
                   (unsigned long long)len, m->len);
    return false;
  }
  return true;
}

static napi_value mapping_read(napi_env env, napi_callback_info info) {
  napi_value argv[2], out;
  uint64_t off, len;
  mapping *m = this_mapping(env, info, 2, argv);
  if (!m || !ps_arg_uint64(env, argv[0], "offset", &off) || !ps_arg_uint64(env, argv[1], "length", &len) ||
      !range_ok(env, m, off, len))
    return NULL;
  if (napi_create_buffer_copy(env, len, m->addr + off, NULL, &out) != napi_ok)
    return NULL;
  return out;
}

static napi_value mapping_write(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint64_t off;
  void *data;
  size_t len;
  mapping *m = this_mapping(env, info, 2, argv);
  if (!m || !ps_arg_uint64(env, argv[0], "offset", &off) || !ps_arg_bytes(env, argv[1], "data", &data, &len) ||
      !range_ok(env, m, off, len))
    return NULL;
  memcpy(m->addr + off, data, len);
  return ps_undefined(env);
}

static napi_value mapping_msync(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint64_t off, len;
  int32_t flags;
  mapping *m = this_mapping(env, info, 3, argv);
  if (!m || !ps_arg_uint64(env, argv[0], "offset", &off) || !ps_arg_uint64(env, argv[1], "length", &len) ||
      !ps_arg_int32(env, argv[2], "flags", &flags) || !range_ok(env, m, off, len))
    return NULL;
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t start = (uintptr_t)(m->addr + off);
  uintptr_t aligned = start & ~(page - 1);
  if (msync((void *)aligned, len + (start - aligned), flags) != 0) {
    ps_throw_errno(env, "msync", errno);
    return NULL;
  }
  return ps_undefined(env);
}

static napi_value mapping_munmap(napi_env env, napi_callback_info info) {
  napi_value self;
  void *p = NULL;
  if (!ps_get_args(env, info, 0, NULL, &self))
    return NULL;
  if (napi_unwrap(env, self, &p) != napi_ok || !p) {
    ps_throw_type(env, "this is not a Mapping");
    return NULL;
  }
  mapping *m = p;
  if (m->live) {
    if (munmap(m->addr, m->len) != 0) {
      ps_throw_errno(env, "munmap", errno);
      return NULL;
    }
    m->live = false;
  }
  return ps_undefined(env);
}

static napi_value mapping_ctor(napi_env env, napi_callback_info info) {
  napi_value self;
  napi_get_cb_info(env, info, NULL, NULL, &self, NULL);
  return self;
}

napi_status ps_mapping_init(napi_env env) {
  napi_property_descriptor methods[] = {
      {"read", NULL, mapping_read, NULL, NULL, NULL, napi_default, NULL},
      {"write", NULL, mapping_write, NULL, NULL, NULL, napi_default, NULL},
      {"msync", NULL, mapping_msync, NULL, NULL, NULL, napi_default, NULL},
      {"munmap", NULL, mapping_munmap, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value ctor;
  napi_status st = napi_define_class(env, "Mapping", NAPI_AUTO_LENGTH, mapping_ctor, NULL,
                                     sizeof methods / sizeof methods[0], methods, &ctor);
  if (st != napi_ok)
    return st;
  ps_instance *inst;
  if ((st = napi_get_instance_data(env, (void **)&inst)) != napi_ok || !inst)
    return napi_generic_failure;
  return napi_create_reference(env, ctor, 1, &inst->mapping_ctor);
}

napi_value ps_sys_mmap(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int32_t fd, prot, flags;
  int64_t off;
  uint64_t len;
  if (!ps_get_args(env, info, 5, argv, NULL) || !ps_arg_int32(env, argv[0], "fd", &fd) ||
      !ps_arg_int64(env, argv[1], "offset", &off) || !ps_arg_uint64(env, argv[2], "length", &len) ||
      !ps_arg_int32(env, argv[3], "prot", &prot) || !ps_arg_int32(env, argv[4], "flags", &flags))
    return NULL;

  void *addr = mmap(NULL, len, prot, flags, fd, off);
  if (addr == MAP_FAILED) {
    ps_throw_errno(env, "mmap", errno);
    return NULL;
  }
  mapping *m = malloc(sizeof *m);
  ps_instance *inst = NULL;
  napi_value ctor, obj, length;
  if (!m) {
    munmap(addr, len);
    ps_throw_errno(env, "mmap", ENOMEM);
    return NULL;
  }
  m->addr = addr;
  m->len = len;
  m->live = true;
  if (napi_get_instance_data(env, (void **)&inst) != napi_ok || !inst ||
      napi_get_reference_value(env, inst->mapping_ctor, &ctor) != napi_ok ||
      napi_new_instance(env, ctor, 0, NULL, &obj) != napi_ok ||
      napi_wrap(env, obj, m, finalize_mapping, NULL, NULL) != napi_ok) {
    munmap(addr, len);
    free(m);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending)
      ps_throw_errno(env, "mmap", ENOMEM);
    return NULL;
  }
  /* From here the finalizer owns m. */
  napi_create_double(env, (double)len, &length);
  napi_property_descriptor prop = {"length", NULL, NULL, NULL, NULL, length, napi_enumerable, NULL};
  napi_define_properties(env, obj, 1, &prop);
  return obj;
}
