/*
 * events.c — a request event (ops.c builds it) turned into one call of the JS handler:
 * handler(op, req, uid, gid, pid, umask, ...args), on the JS thread, at once.
 */
#include "shim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void finalize_free(napi_env env, void *data, void *hint) {
  free(data);
}

static void finalize_rbuf(napi_env env, void *data, void *hint) {
  ps_rbuf_put(hint);
}

bool ps_in_rbuf(ps_session *s, const void *p, size_t n) {
  const char *b = s->buf.mem;
  return b && (const char *)p >= b && (const char *)p + n <= b + PS_RBUF_SIZE;
}

static bool arg_to_js(napi_env env, ps_session *s, ps_arg *a, napi_value *out) {
  switch (a->kind) {
  case PS_ARG_NUM:
    return napi_create_double(env, a->num, out) == napi_ok;
  case PS_ARG_NULL:
    return napi_get_null(env, out) == napi_ok;
  case PS_ARG_BYTES:
    return napi_create_buffer_copy(env, a->len, a->ptr, NULL, out) == napi_ok;
  case PS_ARG_EXTERNAL: {
    /* A payload ops.c copied: the copy becomes the Buffer's memory. */
    void *p = a->ptr;
    if (napi_create_external_buffer(env, a->len, p, finalize_free, NULL, out) == napi_ok) {
      a->ptr = NULL;
      return true;
    }
    /* Runtimes that forbid external buffers: one more copy, still correct. */
    return napi_create_buffer_copy(env, a->len, p, NULL, out) == napi_ok;
  }
  case PS_ARG_RECV: {
    /* The receive buffer becomes the Buffer's memory; the session reads the next request
       into another one (rbuf.c), and the finalizer gives this one back. */
    if (a->base == s->buf.mem && napi_create_external_buffer(env, a->len, a->ptr, finalize_rbuf, a->base, out) == napi_ok) {
      s->buf.mem = NULL;
      return true;
    }
    return napi_create_buffer_copy(env, a->len, a->ptr, NULL, out) == napi_ok;
  }
  case PS_ARG_F64: {
    void *data;
    napi_value ab;
    if (napi_create_arraybuffer(env, a->len * sizeof(double), &data, &ab) != napi_ok)
      return false;
    if (a->len)
      memcpy(data, a->ptr, a->len * sizeof(double));
    return napi_create_typedarray(env, napi_float64_array, a->len, ab, 0, out) == napi_ok;
  }
  }
  return false;
}

/* Clears a pending JS exception; returns whether there was one (in *exc). */
static bool take_exception(napi_env env, napi_value *exc) {
  bool pending = false;
  return napi_is_exception_pending(env, &pending) == napi_ok && pending &&
         napi_get_and_clear_last_exception(env, exc) == napi_ok;
}

/* Calls the handler with the event's arguments, in the order ops.c posted them, and frees the event. */
static void call_js(napi_env env, napi_value js_cb, ps_event *e) {
  napi_value argv[6 + PS_MAX_ARGS];
  size_t argc = 0;
  bool ok = napi_create_int32(env, e->op, &argv[argc++]) == napi_ok &&
            napi_create_double(env, (double)(e->req ? (uintptr_t)e->req : (uintptr_t)e->raw), &argv[argc++]) == napi_ok &&
            napi_create_double(env, e->uid, &argv[argc++]) == napi_ok &&
            napi_create_double(env, e->gid, &argv[argc++]) == napi_ok &&
            napi_create_double(env, e->pid, &argv[argc++]) == napi_ok &&
            napi_create_double(env, e->umask, &argv[argc++]) == napi_ok;
  for (int i = 0; ok && i < e->argc; i++)
    ok = arg_to_js(env, e->session, &e->argv[i], &argv[argc++]);
  if (!ok) {
    napi_value exc;
    take_exception(env, &exc);
    ps_event_abandon(e, ENOMEM);
    return;
  }
  ps_event_free(e);

  napi_value recv;
  napi_get_undefined(env, &recv);
  if (napi_call_function(env, recv, js_cb, argc, argv, NULL) != napi_ok) {
    /* Left pending, the exception would surface at some later N-API call of this
       loop; a throwing dispatcher is a bug, so make it an uncaught exception. */
    napi_value exc;
    if (take_exception(env, &exc))
      napi_fatal_exception(env, exc);
  }
}

void ps_event_post(ps_event *e) {
  ps_session *s = e->session;
  if (e->fail || s->gone) {
    ps_event_abandon(e, e->fail ? e->fail : EIO);
    return;
  }
  napi_env env = s->env;
  napi_handle_scope hs;
  napi_value fn;
  if (napi_open_handle_scope(env, &hs) != napi_ok) {
    ps_event_abandon(e, ENOMEM);
    return;
  }
  if (napi_get_reference_value(env, s->handler, &fn) != napi_ok || fn == NULL)
    ps_event_abandon(e, EIO);
  else
    call_js(env, fn, e);
  napi_close_handle_scope(env, hs);
}
