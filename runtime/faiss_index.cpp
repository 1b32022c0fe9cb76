/*
 * faiss_index.cpp — the FAISS vector index behind ss_vindex.h (C++17, exports only the
 * extern "C" functions of that header). Debian ships FAISS as a C++ static library
 * without its C API, so this is our own small one. Owns the FAISS indexes and the set
 * of ids present; every FAISS/C++ exception is caught here and mapped to an ss_err_t.
 */
#include "ss_vindex.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

struct ss_vindex {
    int dim = 0;
    bool ivf = false;
    int nlist = 0;
    int nprobe = 1;
    size_t train_at = 0;                          /* ivf: train once this many vectors exist */
    std::unique_ptr<faiss::IndexIDMap2> flat;     /* flat kind, or ivf before training */
    std::unique_ptr<faiss::IndexFlatIP> quantizer;/* ivf: coarse quantizer (owned here) */
    std::unique_ptr<faiss::IndexIVFFlat> ivfidx;  /* ivf after training */
    std::unordered_set<int64_t> present;          /* ids in the index */
};

namespace {

using fidx = faiss::Index::idx_t; /* faiss 1.7.3 keeps idx_t inside Index */

std::unique_ptr<faiss::IndexIDMap2> make_flat(int dim)
{
    auto *base = new faiss::IndexFlatIP(dim);
    auto m = std::make_unique<faiss::IndexIDMap2>(base);
    m->own_fields = true;
    return m;
}

faiss::Index *active(const ss_vindex *v)
{
    return v->ivfidx ? static_cast<faiss::Index *>(v->ivfidx.get()) : static_cast<faiss::Index *>(v->flat.get());
}

/* Runs f, turning exceptions into an ss_err_t that keeps their text. */
template <class F> int guarded(const char *what, char *err, size_t errsz, F f)
{
    try {
        f();
        return SS_OK;
    } catch (const std::bad_alloc &) {
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "vector index %s: out of memory", what);
    } catch (const std::exception &e) {
        return ss_seterr(err, errsz, SS_ERR_INTERNAL, "vector index %s: faiss: %s", what, e.what());
    }
}

void remove_present(ss_vindex *v, const int64_t *ids, int64_t n, int64_t *removed)
{
    std::vector<fidx> del;
    for (int64_t i = 0; i < n; i++)
        if (v->present.erase(ids[i])) del.push_back(ids[i]);
    if (removed) *removed = (int64_t)del.size();
    if (del.empty()) return;
    if (v->ivfidx) { /* the hashtable direct map only takes an explicit array */
        faiss::IDSelectorArray sel(del.size(), del.data());
        v->ivfidx->remove_ids(sel);
    } else {
        faiss::IDSelectorBatch sel(del.size(), del.data());
        v->flat->remove_ids(sel);
    }
}

/* IVF: once enough vectors are buffered in the flat index, train and move them over. */
void maybe_train(ss_vindex *v)
{
    if (!v->ivf || v->ivfidx || (size_t)v->flat->ntotal < v->train_at) return;
    size_t n = (size_t)v->flat->ntotal;
    std::vector<float> x(n * (size_t)v->dim);
    std::vector<fidx> ids(v->flat->id_map.begin(), v->flat->id_map.end());
    for (size_t i = 0; i < n; i++) v->flat->reconstruct(ids[i], x.data() + i * (size_t)v->dim);
    v->quantizer = std::make_unique<faiss::IndexFlatIP>(v->dim);
    auto ivf = std::make_unique<faiss::IndexIVFFlat>(v->quantizer.get(), v->dim, (size_t)v->nlist,
                                                     faiss::METRIC_INNER_PRODUCT);
    ivf->set_direct_map_type(faiss::DirectMap::Hashtable);
    ivf->train((fidx)n, x.data());
    ivf->add_with_ids((fidx)n, x.data(), ids.data());
    ivf->nprobe = (size_t)v->nprobe;
    v->ivfidx = std::move(ivf);
    v->flat.reset();
}

} // namespace

extern "C" {

int ss_vindex_new(int dim, const char *kind, int nlist, ss_vindex_t **out, char *err, size_t errsz)
{
    *out = nullptr;
    if (dim <= 0) return ss_seterr(err, errsz, SS_ERR_INVALID, "vector index: bad dimension %d", dim);
    bool ivf = kind && !strcmp(kind, "ivf");
    if (kind && !ivf && strcmp(kind, "flat"))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "vector index: unknown kind \"%s\" (flat or ivf)", kind);
    if (ivf && nlist <= 0) return ss_seterr(err, errsz, SS_ERR_INVALID, "vector index: ivf needs nlist > 0");
    ss_vindex *v = nullptr;
    int rc = guarded("new", err, errsz, [&] {
        auto p = std::make_unique<ss_vindex>();
        p->dim = dim;
        p->ivf = ivf;
        p->nlist = ivf ? nlist : 0;
        p->nprobe = ivf ? std::max(1, nlist / 8) : 1;
        p->train_at = ivf ? (size_t)nlist * 39 : 0;
        p->flat = make_flat(dim);
        v = p.release();
    });
    *out = v;
    return rc;
}

void ss_vindex_destroy(ss_vindex_t *v)
{
    if (!v) return;
    v->ivfidx.reset(); /* before its quantizer */
    delete v;
}

int ss_vindex_add(ss_vindex_t *v, const int64_t *ids, const float *vecs, int64_t n, char *err, size_t errsz)
{
    if (n <= 0) return SS_OK;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0) return ss_seterr(err, errsz, SS_ERR_INVALID, "vector index: negative id %lld", (long long)ids[i]);
    return guarded("add", err, errsz, [&] {
        /* replace ids already present, and keep only the last of duplicates within the call */
        remove_present(v, ids, n, nullptr);
        std::vector<fidx> fid;
        std::vector<float> fx;
        std::unordered_set<int64_t> seen;
        for (int64_t i = n - 1; i >= 0; i--)
            if (seen.insert(ids[i]).second) {
                fid.push_back(ids[i]);
                fx.insert(fx.end(), vecs + i * v->dim, vecs + (i + 1) * v->dim);
            }
        active(v)->add_with_ids((fidx)fid.size(), fx.data(), fid.data());
        v->present.insert(fid.begin(), fid.end());
        maybe_train(v);
    });
}

int ss_vindex_remove(ss_vindex_t *v, const int64_t *ids, int64_t n, int64_t *removed, char *err, size_t errsz)
{
    if (removed) *removed = 0;
    if (n <= 0) return SS_OK;
    return guarded("remove", err, errsz, [&] { remove_present(v, ids, n, removed); });
}

int ss_vindex_search(ss_vindex_t *v, const float *query, int k, int64_t *ids, float *scores, int *found,
                     char *err, size_t errsz)
{
    *found = 0;
    if (k <= 0 || v->present.empty()) return SS_OK;
    return guarded("search", err, errsz, [&] {
        std::vector<float> d((size_t)k);
        std::vector<fidx> l((size_t)k);
        active(v)->search(1, query, k, d.data(), l.data());
        int m = 0;
        for (int i = 0; i < k; i++)
            if (l[(size_t)i] >= 0) {
                ids[m] = l[(size_t)i];
                scores[m++] = d[(size_t)i];
            }
        *found = m;
    });
}

int ss_vindex_range(ss_vindex_t *v, const float *query, float threshold, int64_t **ids, float **scores,
                    int64_t *n, char *err, size_t errsz)
{
    *ids = nullptr;
    *scores = nullptr;
    *n = 0;
    if (v->present.empty()) return SS_OK;
    return guarded("range search", err, errsz, [&] {
        faiss::RangeSearchResult res(1);
        active(v)->range_search(1, query, threshold, &res);
        size_t m = res.lims[1] - res.lims[0];
        std::vector<size_t> ord(m);
        for (size_t i = 0; i < m; i++) ord[i] = i;
        std::sort(ord.begin(), ord.end(), [&](size_t a, size_t b) {
            return res.distances[a] != res.distances[b] ? res.distances[a] > res.distances[b]
                                                        : res.labels[a] < res.labels[b];
        });
        if (m == 0) return;
        int64_t *oi = (int64_t *)malloc(m * sizeof *oi);
        float *os = (float *)malloc(m * sizeof *os);
        if (!oi || !os) {
            free(oi);
            free(os);
            throw std::bad_alloc();
        }
        for (size_t i = 0; i < m; i++) {
            oi[i] = res.labels[ord[i]];
            os[i] = res.distances[ord[i]];
        }
        *ids = oi;
        *scores = os;
        *n = (int64_t)m;
    });
}

int64_t ss_vindex_count(const ss_vindex_t *v) { return (int64_t)v->present.size(); }

int ss_vindex_dim(const ss_vindex_t *v) { return v->dim; }

void ss_vindex_set_nprobe(ss_vindex_t *v, int nprobe)
{
    if (!v->ivf) return;
    v->nprobe = std::max(1, std::min(nprobe, v->nlist));
    if (v->ivfidx) v->ivfidx->nprobe = (size_t)v->nprobe;
}

/* Snapshot layout: "SSVX0001", int32 dim, ivf, nlist, nprobe, uint64 train_at, uint64 nids,
 * int64 ids[nids], uint64 faiss_len, FAISS write_index bytes of the active index. */
int ss_vindex_save(const ss_vindex_t *v, ss_buf_t *out, char *err, size_t errsz)
{
    return guarded("save", err, errsz, [&] {
        faiss::VectorIOWriter w;
        faiss::write_index(active(v), &w);
        int32_t hdr[4] = {v->dim, v->ivf ? 1 : 0, v->nlist, v->nprobe};
        uint64_t ta = v->train_at, nids = v->present.size(), flen = w.data.size();
        std::vector<int64_t> ids(v->present.begin(), v->present.end());
        std::sort(ids.begin(), ids.end());
        if (ss_buf_append(out, "SSVX0001", 8) || ss_buf_append(out, hdr, sizeof hdr) ||
            ss_buf_append(out, &ta, 8) || ss_buf_append(out, &nids, 8) ||
            ss_buf_append(out, ids.data(), ids.size() * sizeof(int64_t)) || ss_buf_append(out, &flen, 8) ||
            ss_buf_append(out, w.data.data(), w.data.size()))
            throw std::bad_alloc();
    });
}

int ss_vindex_load(const void *data, size_t len, ss_vindex_t **out, char *err, size_t errsz)
{
    *out = nullptr;
    const unsigned char *p = (const unsigned char *)data;
    int32_t hdr[4];
    uint64_t ta, nids, flen;
    size_t fixed = 8 + sizeof hdr + 16;
    if (len < fixed || memcmp(p, "SSVX0001", 8))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "vector index load: not a SSVX0001 snapshot");
    memcpy(hdr, p + 8, sizeof hdr);
    memcpy(&ta, p + 8 + sizeof hdr, 8);
    memcpy(&nids, p + 16 + sizeof hdr, 8);
    if (nids > (len - fixed) / 8 || len - fixed - nids * 8 < 8 || hdr[0] <= 0)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "vector index load: truncated snapshot (%zu bytes)", len);
    const unsigned char *q = p + fixed + nids * 8;
    memcpy(&flen, q, 8);
    if (flen != len - fixed - nids * 8 - 8)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "vector index load: FAISS part has %llu bytes, %zu left",
                         (unsigned long long)flen, (size_t)(len - fixed - nids * 8 - 8));
    ss_vindex *v = nullptr;
    int rc = guarded("load", err, errsz, [&] {
        auto x = std::make_unique<ss_vindex>();
        x->dim = hdr[0];
        x->ivf = hdr[1] != 0;
        x->nlist = hdr[2];
        x->nprobe = hdr[3];
        x->train_at = ta;
        for (uint64_t i = 0; i < nids; i++) {
            int64_t id;
            memcpy(&id, p + fixed + i * 8, 8);
            x->present.insert(id);
        }
        faiss::VectorIOReader r;
        r.data.assign(q + 8, q + 8 + flen);
        std::unique_ptr<faiss::Index> idx(faiss::read_index(&r));
        if (auto *m = dynamic_cast<faiss::IndexIDMap2 *>(idx.get())) {
            idx.release();
            x->flat.reset(m);
            x->flat->own_fields = true;
        } else if (auto *f = dynamic_cast<faiss::IndexIVFFlat *>(idx.get())) {
            idx.release();
            x->ivfidx.reset(f); /* owns the quantizer it was read with (own_fields) */
            x->ivfidx->nprobe = (size_t)x->nprobe;
            if (x->ivfidx->direct_map.type != faiss::DirectMap::Hashtable)
                x->ivfidx->set_direct_map_type(faiss::DirectMap::Hashtable);
        } else {
            throw std::runtime_error("unexpected FAISS index type in snapshot");
        }
        if (active(x.get())->d != x->dim || (size_t)active(x.get())->ntotal != x->present.size())
            throw std::runtime_error("snapshot header does not match its FAISS index");
        v = x.release();
    });
    *out = v;
    return rc;
}

} // extern "C"
