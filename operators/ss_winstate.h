/*
 * ss_winstate.h — per-window state of the grouping operators (issue 13). A GROUP,
 * SEM_AGG or partitioned SEM_TOPK node whose group key holds a window's end (or
 * start; a JOIN whose keys hold both sides' window bounds: join.c) (the planner's
 * options window_col, window_bound, window_size_us, src/plan_timewin.c) records
 * which of its groups belong to which window; when the watermark passes a
 * window's end, the operator's state for it is dropped (its output rows stay in
 * the view: they are final), and changes that still arrive for it are ignored
 * and counted (the watermark said they would not come: late rows are
 * dead-lettered at the source). Uses a state handle of its own over the
 * operator's tables prefix.
 */
#ifndef SS_WINSTATE_H
#define SS_WINSTATE_H

#include "ss_op.h"
#include "ss_state.h"

typedef struct ss_winstate {
    int on;            /* the operator has a window column */
    int col;           /* that column in the operator's input rows */
    int64_t add;       /* window end = the column + add (the window's size when it is window_start) */
    ss_state_t *st;    /* owned */
    int64_t closed;    /* windows ending at or before this were dropped (SS_TIME_NONE: none) */
    int64_t dropped;   /* changes ignored since the operator opened */
} ss_winstate_t;

/* Callback dropping the operator's state of group key g[0..n). */
typedef int (*ss_winstate_drop_fn)(void *arg, const void *g, size_t n, char *err, size_t errsz);

int ss_winstate_init(ss_winstate_t *w, const ss_plan_node_t *n, sqlite3 *db, char *err, size_t errsz);
/* Turns w on for node node_id: window end = input column col + add. */
int ss_winstate_open(ss_winstate_t *w, int node_id, int col, int64_t add, sqlite3 *db, char *err, size_t errsz);
void ss_winstate_free(ss_winstate_t *w);
void ss_winstate_rollback(ss_winstate_t *w); /* reloads `closed` as committed */
/* Removes from z (an input delta) the rows of windows already dropped; returns how many. */
int ss_winstate_filter(ss_winstate_t *w, const char *view, ss_zset_t *z);
/* As ss_winstate_filter, the window end being column col + add (a join's right input). */
int ss_winstate_filter_at(ss_winstate_t *w, const char *view, ss_zset_t *z, int col, int64_t add);
/* Notes that group key g (of input row `row`) has state. */
int ss_winstate_note(ss_winstate_t *w, const ss_row_t *row, const ss_buf_t *g, char *err, size_t errsz);
int ss_winstate_note_at(ss_winstate_t *w, const ss_row_t *row, int col, int64_t add, const ss_buf_t *g, char *err,
                        size_t errsz);
/* The watermark is wm: drops the state of every group of a window ending at or before it. */
int ss_winstate_close(ss_winstate_t *w, int64_t wm, ss_winstate_drop_fn drop, void *arg, char *err, size_t errsz);

#endif
