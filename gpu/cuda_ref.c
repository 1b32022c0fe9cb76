/*
 * cuda_ref.c — CPU reference implementations of every CUDA kernel in
 * ss_cuda.h, written for clarity, not speed: they are the oracle the GPU
 * kernels are tested against (in CI, where there is no GPU, they are tested on
 * their own against naive formulas). Number formats and (de)quantisation are the
 * engine's own (ss_gguf.h), so the references and the CPU path read weights alike.
 */
#include "ss_cuda.h"
#include "ss_gguf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t ss_kref_weight_bytes(int type, int rows, int cols)
{
    int be = ss_ggml_block_elems(type);
    return be && cols % be == 0 ? ss_ggml_row_bytes(type, cols) * (size_t)rows : 0;
}

void ss_kref_dequant_row(int type, const void *w, int cols, int r, float *out)
{
    size_t rb = ss_kref_weight_bytes(type, 1, cols);
    ss_ggml_to_f32(type, (const unsigned char *)w + (size_t)r * rb, out, cols);
}

void ss_kref_rmsnorm(float *y, const float *x, const float *w, int rows, int dim, float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        double ss = 0;
        for (int i = 0; i < dim; i++)
            ss += (double)xr[i] * xr[i];
        float inv = 1.0f / sqrtf((float)(ss / dim) + eps);
        for (int i = 0; i < dim; i++)
            y[(size_t)r * dim + i] = xr[i] * inv * w[i];
    }
}

void ss_kref_matmul(float *y, const float *x, int type, const void *w, int rows, int cols, const float *bias,
                    int B)
{
    float *row = malloc((size_t)cols * sizeof *row);
    if (!row)
        return;
    for (int n = 0; n < rows; n++) {
        ss_kref_dequant_row(type, w, cols, n, row);
        for (int b = 0; b < B; b++) {
            double acc = 0;
            for (int k = 0; k < cols; k++)
                acc += (double)row[k] * x[(size_t)b * cols + k];
            y[(size_t)b * rows + n] = (float)acc + (bias ? bias[n] : 0.0f);
        }
    }
    free(row);
}

void ss_kref_rope(float *x, const int32_t *pos, int n, int nheads, int hd, int rot, float theta, int neox)
{
    for (int i = 0; i < n; i++)
        for (int h = 0; h < nheads; h++) {
            float *v = x + (size_t)i * nheads * hd + (size_t)h * hd;
            for (int j = 0; j < rot / 2; j++) {
                float freq = powf(theta, -2.0f * (float)j / (float)rot);
                float a = (float)pos[i] * freq, cs = cosf(a), sn = sinf(a);
                int i0 = neox ? j : 2 * j, i1 = neox ? j + rot / 2 : 2 * j + 1;
                float x0 = v[i0], x1 = v[i1];
                v[i0] = x0 * cs - x1 * sn;
                v[i1] = x0 * sn + x1 * cs;
            }
        }
}

void ss_kref_swiglu(float *out, const float *gate, const float *up, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static size_t kv_off(const int32_t *bt, int max_blocks, int s, int p, int nkv, int hd, int h)
{
    int blk = bt[(size_t)s * max_blocks + p / SS_KV_BLOCK];
    return (((size_t)blk * nkv + h) * SS_KV_BLOCK + p % SS_KV_BLOCK) * hd;
}

void ss_kref_kv_store(float *kpool, float *vpool, const float *k, const float *v, const int32_t *block_tables,
                      int max_blocks, const int32_t *seq, const int32_t *pos, int n, int nkv, int hd)
{
    for (int i = 0; i < n; i++)
        for (int h = 0; h < nkv; h++) {
            size_t o = kv_off(block_tables, max_blocks, seq[i], pos[i], nkv, hd, h);
            memcpy(kpool + o, k + (size_t)i * nkv * hd + (size_t)h * hd, (size_t)hd * 4);
            memcpy(vpool + o, v + (size_t)i * nkv * hd + (size_t)h * hd, (size_t)hd * 4);
        }
}

void ss_kref_rope_kv(float *q, const float *k, const float *v, float *kpool, float *vpool,
                     const int32_t *block_tables, int max_blocks, const int32_t *seq, const int32_t *pos, int n,
                     int nheads, int nkv, int hd, int rot, float theta, int neox)
{
    size_t row = (size_t)nkv * hd;
    float *kr = malloc(row * sizeof *kr);
    if (!kr)
        return;
    ss_kref_rope(q, pos, n, nheads, hd, rot, theta, neox);
    for (int i = 0; i < n; i++) {
        memcpy(kr, k + (size_t)i * row, row * sizeof *kr);
        ss_kref_rope(kr, &pos[i], 1, nkv, hd, rot, theta, neox);
        ss_kref_kv_store(kpool, vpool, kr, v + (size_t)i * row, block_tables, max_blocks, &seq[i], &pos[i], 1, nkv,
                         hd);
    }
    free(kr);
}

void ss_kref_attention(float *out, const float *q, const float *kpool, const float *vpool,
                       const int32_t *block_tables, int max_blocks, const int32_t *seq, const int32_t *pos,
                       int n, int nheads, int nkv, int hd)
{
    float scale = 1.0f / sqrtf((float)hd);
    for (int i = 0; i < n; i++) {
        int len = pos[i] + 1;
        double *sc = malloc((size_t)len * sizeof *sc);
        if (!sc)
            return;
        for (int h = 0; h < nheads; h++) {
            int kh = h / (nheads / nkv);
            const float *qv = q + (size_t)i * nheads * hd + (size_t)h * hd;
            double mx = -INFINITY, sum = 0;
            for (int p = 0; p < len; p++) {
                const float *kv = kpool + kv_off(block_tables, max_blocks, seq[i], p, nkv, hd, kh);
                double d = 0;
                for (int j = 0; j < hd; j++)
                    d += (double)qv[j] * kv[j];
                sc[p] = d * scale;
                if (sc[p] > mx)
                    mx = sc[p];
            }
            for (int p = 0; p < len; p++)
                sum += (sc[p] = exp(sc[p] - mx));
            float *o = out + (size_t)i * nheads * hd + (size_t)h * hd;
            for (int j = 0; j < hd; j++) {
                double acc = 0;
                for (int p = 0; p < len; p++)
                    acc += sc[p] * vpool[kv_off(block_tables, max_blocks, seq[i], p, nkv, hd, kh) + j];
                o[j] = (float)(acc / sum);
            }
        }
        free(sc);
    }
}

void ss_kref_logprob_gather(float *out, const float *logits, int vocab, const int32_t *row, const int32_t *tok,
                            int n)
{
    for (int i = 0; i < n; i++) {
        const float *l = logits + (size_t)row[i] * vocab;
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < vocab; v++)
            if (l[v] > mx)
                mx = l[v];
        for (int v = 0; v < vocab; v++)
            s += exp(l[v] - mx);
        out[i] = (float)(l[tok[i]] - (mx + log(s)));
    }
}
