/*
 * ss_gguf.h — GGUF v3 model files: a validating, mmap-based reader (gguf.c) and a
 * small writer (gguf_write.c) used by tests and tools/mkgguf.
 *
 * The reader maps the file read-only and checks everything before handing out a
 * pointer: magic, version, every length against the end of the file, tensor types,
 * shapes (overflow, block divisibility), offsets (inside the data section, aligned).
 * Returned strings and tensor data point into the mapping and live until
 * ss_gguf_close(). Keys and tensor names are looked up by exact string.
 */
#ifndef SS_GGUF_H
#define SS_GGUF_H

#include "ss_base.h"

#include <stddef.h>
#include <stdint.h>

/* GGUF metadata value types (the file's numbering). */
typedef enum ss_gguf_vtype {
    SS_GGUF_U8 = 0, SS_GGUF_I8 = 1, SS_GGUF_U16 = 2, SS_GGUF_I16 = 3, SS_GGUF_U32 = 4,
    SS_GGUF_I32 = 5, SS_GGUF_F32 = 6, SS_GGUF_BOOL = 7, SS_GGUF_STRING = 8, SS_GGUF_ARRAY = 9,
    SS_GGUF_U64 = 10, SS_GGUF_I64 = 11, SS_GGUF_F64 = 12,
} ss_gguf_vtype_t;

/* ggml tensor types (the file's numbering); only these are accepted. Block layouts: gpu/quant.c. */
typedef enum ss_ggml_type {
    SS_GGML_F32 = 0,
    SS_GGML_F16 = 1,
    SS_GGML_Q4_0 = 2,
    SS_GGML_Q4_1 = 3,
    SS_GGML_Q5_0 = 6,
    SS_GGML_Q5_1 = 7,
    SS_GGML_Q8_0 = 8,
    SS_GGML_Q2_K = 10,
    SS_GGML_Q3_K = 11,
    SS_GGML_Q4_K = 12,
    SS_GGML_Q5_K = 13,
    SS_GGML_Q6_K = 14,
    SS_GGML_Q8_K = 15,
    SS_GGML_IQ4_NL = 20,
    SS_GGML_IQ4_XS = 23,
    SS_GGML_BF16 = 30,
} ss_ggml_type_t;

/* Elements per block and bytes per block of a tensor type; 0 if unknown. */
int ss_ggml_block_elems(int type);
size_t ss_ggml_block_bytes(int type);
const char *ss_ggml_type_name(int type); /* "f32", "q8_0", "q4_k", ... or "?" */
int ss_ggml_type_parse(const char *name); /* the type of a name (any case), -1 if unknown */
const char *ss_ggml_type_names(void);     /* "f32, f16, ..." every supported type */
/* Bytes of a row of n elements (n must be a multiple of the block size). */
size_t ss_ggml_row_bytes(int type, int64_t n);

/* A string inside the mapping: NOT NUL-terminated. */
typedef struct ss_gguf_str {
    const char *p;
    uint64_t n;
} ss_gguf_str_t;

typedef struct ss_gguf_kv {
    ss_gguf_str_t key;
    int type;           /* ss_gguf_vtype_t */
    int atype;          /* element type when type == SS_GGUF_ARRAY */
    uint64_t n;         /* array length (1 for scalars) */
    const uint8_t *val; /* scalar bytes, or first array element (strings: length-prefixed) */
} ss_gguf_kv_t;

#define SS_GGUF_MAX_DIMS 4

typedef struct ss_gguf_tensor {
    ss_gguf_str_t name;
    int type;                       /* ss_ggml_type_t */
    int ndim;
    int64_t ne[SS_GGUF_MAX_DIMS];   /* ne[0] = row length (innermost), unused dims = 1 */
    int64_t nelem;
    uint64_t offset;                /* from the start of the data section */
    size_t nbytes;
    const void *data;               /* into the mapping */
} ss_gguf_tensor_t;

typedef struct ss_gguf {
    char *path;          /* owned */
    const uint8_t *base; /* mapping */
    size_t size;
    uint32_t version;
    uint32_t alignment;
    uint64_t nkv, ntensors;
    ss_gguf_kv_t *kv;          /* owned array [nkv] */
    ss_gguf_tensor_t *tensors; /* owned array [ntensors] */
    size_t data_off;           /* file offset of the data section */
    size_t header_bytes;       /* bytes of header + kv + tensor infos (hashed for the id) */
} ss_gguf_t;

/* Opens and validates path. On failure returns SS_ERR_IO / SS_ERR_MODEL with err saying
 * what and where (byte offset, key or tensor name) and leaves *out NULL. */
ss_err_t ss_gguf_open(const char *path, ss_gguf_t **out, char *err, size_t errsz);
/* Same for an in-memory image (borrowed; must outlive the handle). */
ss_err_t ss_gguf_open_mem(const void *p, size_t n, ss_gguf_t **out, char *err, size_t errsz);
void ss_gguf_close(ss_gguf_t *g);

/* Metadata lookup; NULL if absent. */
const ss_gguf_kv_t *ss_gguf_find(const ss_gguf_t *g, const char *key);
/* Typed getters: return 1 and fill *v if key exists and converts (any integer type to
 * int64, any numeric to double, bool to int), else 0. */
int ss_gguf_get_i64(const ss_gguf_t *g, const char *key, int64_t *v);
int ss_gguf_get_f64(const ss_gguf_t *g, const char *key, double *v);
int ss_gguf_get_str(const ss_gguf_t *g, const char *key, ss_gguf_str_t *v);
/* Array elements: i < kv->n, kv->atype must match; strings are walked sequentially, so
 * for string arrays use ss_gguf_str_iter. */
int64_t ss_gguf_arr_i64(const ss_gguf_kv_t *kv, uint64_t i);
double ss_gguf_arr_f64(const ss_gguf_kv_t *kv, uint64_t i);
/* Walks a string array: *pos starts at 0; call it exactly kv->n times (returns 0 if kv
 * is not a string array). */
int ss_gguf_str_iter(const ss_gguf_kv_t *kv, size_t *pos, ss_gguf_str_t *s);

const ss_gguf_tensor_t *ss_gguf_tensor(const ss_gguf_t *g, const char *name);

/* ---- writer (gguf_write.c) ---- */
typedef struct ss_gguf_writer ss_gguf_writer_t;

ss_gguf_writer_t *ss_gguf_writer_new(void);
void ss_gguf_writer_destroy(ss_gguf_writer_t *w);
/* Metadata; strings and arrays are copied. */
void ss_gguf_w_str(ss_gguf_writer_t *w, const char *key, const char *val);
void ss_gguf_w_u32(ss_gguf_writer_t *w, const char *key, uint32_t val);
void ss_gguf_w_i32(ss_gguf_writer_t *w, const char *key, int32_t val);
void ss_gguf_w_f32(ss_gguf_writer_t *w, const char *key, float val);
void ss_gguf_w_bool(ss_gguf_writer_t *w, const char *key, int val);
void ss_gguf_w_arr_str(ss_gguf_writer_t *w, const char *key, const char *const *v, size_t n);
void ss_gguf_w_arr_f32(ss_gguf_writer_t *w, const char *key, const float *v, size_t n);
void ss_gguf_w_arr_i32(ss_gguf_writer_t *w, const char *key, const int32_t *v, size_t n);
/* A tensor of shape ne[0..ndim) from f32 values (converted/quantized to type). */
void ss_gguf_w_tensor(ss_gguf_writer_t *w, const char *name, int type, int ndim, const int64_t *ne,
                      const float *vals);
/* A tensor whose rows are produced at save time by fill(ctx, row, out[ne[0]]), so huge
 * tensors never sit in memory as f32 (ctx is borrowed until save). */
typedef void (*ss_gguf_fill_fn)(void *ctx, int64_t row, float *out);
void ss_gguf_w_tensor_fn(ss_gguf_writer_t *w, const char *name, int type, int ndim,
                         const int64_t *ne, ss_gguf_fill_fn fill, void *ctx);
/* Writes the file; SS_ERR_NOMEM if any earlier call failed to allocate. */
ss_err_t ss_gguf_writer_save(ss_gguf_writer_t *w, const char *path, char *err, size_t errsz);

/* ---- random-weight models in a real model's shape (mkmodel.c) ---- */
/* Tensor-type recipes, as llama.cpp's llama-quantize assigns them: SS_MIX_Q4_K_M / Q5_K_M make the
 * output projection (or the tied embedding) Q6_K, and attn_v and ffn_down Q6_K in the layers
 * llama.cpp gives more bits (the first and last eighth, every third in between), the rest
 * Q4_K / Q5_K; SS_MIX_Q6_K makes everything Q6_K. A row length that is not a multiple of 256
 * falls back as llama.cpp does: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K/IQ4_XS ->
 * IQ4_NL, and to F16 when it is not a multiple of 32 either. */
enum { SS_MIX_NONE = 0, SS_MIX_Q4_K_M, SS_MIX_Q5_K_M, SS_MIX_Q6_K };

typedef struct ss_mkmodel_spec {
    const char *name;   /* shape name */
    const char *arch;   /* "llama" or "qwen2" */
    int dim, n_layers, n_heads, n_kv_heads, hidden, vocab, ctx;
    float rope_base;
    int qkv_bias, tied;
    int type;           /* weight type of the matrices (ss_ggml_type_t) when mix is SS_MIX_NONE */
    uint64_t seed;
    const char *chat_template; /* written as tokenizer.chat_template when set (NULL: none) */
    const char *pre;    /* tokenizer.ggml.pre: "gpt-2", "llama-bpe", "qwen2", "smollm"; "default" with spm */
    int spm;            /* 1: a SentencePiece vocabulary (tokenizer.ggml.model "llama"), else byte-level BPE */
    int mix;            /* SS_MIX_* */
    int dequantized;    /* 1: every matrix as F32 holding the values its type would store (a reference
                           for the quantized file written with the same spec and seed) */
    const char *const *special_tokens; /* further control tokens after <|endoftext|>, <|im_start|>,
                                          <|im_end|> (NULL-terminated; NULL: none), e.g. a chat
                                          template's markers */
} ss_mkmodel_spec_t;

/* Fills *out with a known shape ("smollm2-135m", "qwen2.5-0.5b", "llama-3.2-1b",
 * "tiny-qwen2", "tiny-llama"); returns 0 if the name is unknown. */
int ss_mkmodel_shape(const char *name, ss_mkmodel_spec_t *out);
const char *ss_mkmodel_shape_names(void);
/* Names of the mixes ("q4_k_m", "q5_k_m", "q6_k") to SS_MIX_*; -1 if unknown. */
int ss_mkmodel_mix_parse(const char *name);
/* The type the spec stores for a matrix: kind is the tensor name without "blk.N." ("attn_v.weight",
 * "token_embd.weight", ...), layer its block (or -1), cols its row length. */
int ss_mkmodel_tensor_type(const ss_mkmodel_spec_t *s, const char *kind, int layer, int64_t cols);
/* Writes a GGUF v3 with seeded random weights and a synthetic tokenizer (byte-level BPE or
 * SentencePiece) whose pre-tokenizer name is s->pre. */
ss_err_t ss_mkmodel_write(const ss_mkmodel_spec_t *s, const char *path, char *err, size_t errsz);

/* Conversions shared by the writer and the kernels. */
float ss_fp16_to_f32(uint16_t h);
uint16_t ss_f32_to_fp16(float f);
float ss_bf16_to_f32(uint16_t h);
uint16_t ss_f32_to_bf16(float f);
/* Converts/quantizes n floats (a multiple of the block size) into dst of type (our own
 * quantizers: valid blocks of every type, not llama.cpp's exact choices). */
void ss_ggml_from_f32(int type, const float *src, void *dst, int64_t n);
/* Dequantizes n elements of a row of type into dst: the format's definition, bit for bit. */
void ss_ggml_to_f32(int type, const void *src, float *dst, int64_t n);
/* IQ4_NL / IQ4_XS levels (a 4-bit index selects one, times the block scale). */
extern const int8_t ss_iq4_levels[16];

#endif
