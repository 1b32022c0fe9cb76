/*
 * ss_vindex.h — a vector index over FAISS (runtime/faiss_index.cpp), by inner product.
 * Vectors are expected L2-normalised (ss_vec_normalize), so scores are cosines.
 *
 * Kinds: "flat" (exact; IndexIDMap2 over IndexFlatIP) and "ivf" (IndexIVFFlat with
 * nlist lists and a hashtable direct map; it is trained on the first 39*nlist vectors
 * added, which are searched exactly until then). Ids are caller-chosen int64 >= 0;
 * adding an id that is present replaces its vector. Every FAISS exception becomes an
 * ss_err_t with FAISS's text. Not thread-safe: one writer or several readers at a time.
 */
#ifndef SS_VINDEX_H
#define SS_VINDEX_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* ss_base.h has no C++ guards of its own */
#endif

#include "ss_base.h"

typedef struct ss_vindex ss_vindex_t;

int ss_vindex_new(int dim, const char *kind, int nlist, ss_vindex_t **out, char *err, size_t errsz);
void ss_vindex_destroy(ss_vindex_t *v); /* NULL-safe */

/* Adds (or replaces) n vectors vecs[n*dim] under ids[n]. */
int ss_vindex_add(ss_vindex_t *v, const int64_t *ids, const float *vecs, int64_t n, char *err, size_t errsz);
/* Removes the ids present; *removed (may be NULL) = how many were. */
int ss_vindex_remove(ss_vindex_t *v, const int64_t *ids, int64_t n, int64_t *removed, char *err, size_t errsz);
/* The k best (highest score first) for query[dim]: ids[k], scores[k]; *found = how many
 * filled (< k when the index holds fewer). */
int ss_vindex_search(ss_vindex_t *v, const float *query, int k, int64_t *ids, float *scores, int *found,
                     char *err, size_t errsz);
/* Every vector with score > threshold, best first; *ids and *scores are malloc'd (caller
 * frees; NULL when *n == 0). */
int ss_vindex_range(ss_vindex_t *v, const float *query, float threshold, int64_t **ids, float **scores,
                    int64_t *n, char *err, size_t errsz);
int64_t ss_vindex_count(const ss_vindex_t *v);
int ss_vindex_dim(const ss_vindex_t *v);
/* IVF: lists probed per query (default max(1, nlist/8)); flat: ignored. */
void ss_vindex_set_nprobe(ss_vindex_t *v, int nprobe);

/* Serialises the whole index (FAISS's own format plus our header) by appending to out, for
 * an operator's snapshot; ss_vindex_load rebuilds an identical index (same answers). */
int ss_vindex_save(const ss_vindex_t *v, ss_buf_t *out, char *err, size_t errsz);
int ss_vindex_load(const void *data, size_t len, ss_vindex_t **out, char *err, size_t errsz);

#ifdef __cplusplus
}
#endif

#endif
