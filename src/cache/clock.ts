/**
 * One counter that orders the cache's events: shared grants of an invalidate_lock, and
 * uses of pages (insert, touch). Eviction compares them: a page used
 * at or after the grant of some holder of its mapping's lock may be in that holder's
 * hands; one used only before every current grant is not (PageCache.shrink).
 *
 * A plain integer, not a clock: 2^53 steps last centuries at millions a second.
 */
let now = 0;

/** The next value of the counter, larger than every one handed out before. */
export function tick(): number {
  return ++now;
}
