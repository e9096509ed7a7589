/*
 * addon.c — module init: module.exports = { fuse: {...}, sys: {...} }.
 *
 * Contract: the export shape is the one loadNative() in src/fuse/binding.ts expects;
 * `fuse` matches FuseBinding and `sys` matches Sys in src/sys/index.ts. The addon is
 * context-aware (per-env instance data), so worker threads may load it too, though a
 * session's handler always runs on the env that mounted it.
 */
#include "shim.h"

#include <stdlib.h>

static void free_instance(napi_env env, void *data, void *hint) {
  ps_instance *inst = data;
  if (inst->mapping_ctor)
    napi_delete_reference(env, inst->mapping_ctor);
  free(inst);
}

static napi_value init(napi_env env, napi_value exports) {
  ps_instance *inst = calloc(1, sizeof *inst);
  if (!inst || napi_set_instance_data(env, inst, free_instance, NULL) != napi_ok) {
    free(inst);
    napi_throw_error(env, NULL, "pagefs_native: cannot allocate instance data");
    return NULL;
  }

  napi_value fuse, sys;
  napi_property_descriptor fuse_props[] = {
      {"mount", NULL, ps_mount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unmount", NULL, ps_unmount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"notifyInvalInode", NULL, ps_notify_inval_inode, NULL, NULL, NULL, napi_enumerable, NULL},
      {"notifyInvalEntry", NULL, ps_notify_inval_entry, NULL, NULL, NULL, napi_enumerable, NULL},
      {"notifyStore", NULL, ps_notify_store, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_create_object(env, &fuse) != napi_ok ||
      napi_define_properties(env, fuse, sizeof fuse_props / sizeof fuse_props[0], fuse_props) != napi_ok ||
      ps_define_replies(env, fuse) != napi_ok || ps_define_raw_replies(env, fuse) != napi_ok ||
      napi_create_object(env, &sys) != napi_ok ||
      ps_define_sys(env, sys) != napi_ok || ps_mapping_init(env) != napi_ok ||
      napi_set_named_property(env, exports, "fuse", fuse) != napi_ok ||
      napi_set_named_property(env, exports, "sys", sys) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending)
      napi_throw_error(env, NULL, "pagefs_native: cannot build exports");
    return NULL;
  }
  return exports;
}

NAPI_MODULE_INIT() {
  return init(env, exports);
}
