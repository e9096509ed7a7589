/*
 * rbuf.c — receive buffers for /dev/fuse, reused.
 *
 * Contract: ps_rbuf_get returns a buffer of PS_RBUF_SIZE bytes; ps_rbuf_put gives one
 * back, from any thread (a Buffer's finalizer may run off the JS thread). Up to
 * RBUF_KEEP free buffers are kept; more are freed.
 *
 * Why: a WRITE's payload reaches JavaScript as an external Buffer over the receive
 * buffer it was read into (session.c swaps in another for the next request), so the
 * payload is not copied. A fresh malloc'd copy per request was fresh memory as well,
 * and on this kind of VM its first touch page by page cost more than the copy itself;
 * buffers given back by the finalizers are warm.
 */
#include "shim.h"

#include <stdlib.h>

#define RBUF_KEEP 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *free_list; /* each free buffer's first word points to the next */
static int free_count;

void *ps_rbuf_get(void) {
  pthread_mutex_lock(&lock);
  void *b = free_list;
  if (b) {
    free_list = *(void **)b;
    free_count--;
  }
  pthread_mutex_unlock(&lock);
  return b ? b : malloc(PS_RBUF_SIZE);
}

void ps_rbuf_put(void *b) {
  if (!b)
    return;
  pthread_mutex_lock(&lock);
  if (free_count < RBUF_KEEP) {
    *(void **)b = free_list;
    free_list = b;
    free_count++;
    b = NULL;
  }
  pthread_mutex_unlock(&lock);
  free(b);
}
