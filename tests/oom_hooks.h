/*
 * oom_hooks.h — allocation-failure injection for the parser and planner tests.
 * Outside sanitizer builds a test binary that includes this header replaces
 * malloc & co. (glibc lets a program interpose them; libc's own allocations come
 * here too) so that a sweep can fail the N-th allocation and count live blocks:
 * oom_begin(n) starts counting with allocation n failing, oom_end() stops, then
 * oom_nallocs < n says no failure was injected and oom_live must be 0.
 * Include it in one .c file of a test executable only (it defines malloc).
 */
#ifndef OOM_HOOKS_H
#define OOM_HOOKS_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define SS_OOM_HOOKS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SS_OOM_HOOKS 0
#endif
#endif
#ifndef SS_OOM_HOOKS
#define SS_OOM_HOOKS 1
#endif

#if SS_OOM_HOOKS
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static int oom_counting;   /* hooks active */
static long oom_fail_at;   /* the allocation number that fails (1-based); 0 = none */
static long oom_nallocs;   /* allocations attempted while counting */
static long oom_live;      /* blocks allocated minus blocks freed while counting */

static int oom_inject(void) { return oom_counting && ++oom_nallocs == oom_fail_at; }

static void oom_begin(long fail_at)
{
    oom_live = oom_nallocs = 0;
    oom_fail_at = fail_at;
    oom_counting = 1;
}

static void oom_end(void) { oom_counting = 0; }

void *malloc(size_t n)
{
    if (oom_inject())
        return NULL;
    void *p = __libc_malloc(n);
    oom_live += p && oom_counting;
    return p;
}

void *calloc(size_t n, size_t m)
{
    if (oom_inject())
        return NULL;
    void *p = __libc_calloc(n, m);
    oom_live += p && oom_counting;
    return p;
}

void *realloc(void *p, size_t n)
{
    if (!p)
        return malloc(n);
    if (oom_inject())
        return NULL;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    oom_live -= p && oom_counting;
    __libc_free(p);
}
#endif

#endif
