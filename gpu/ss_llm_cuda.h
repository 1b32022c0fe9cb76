/*
 * ss_llm_cuda.h — putting the inference engine on a GPU (gpu/backend_cuda.c).
 * In builds without CUDA these return SS_ERR_UNSUPPORTED (gpu/cuda_stub.c).
 */
#ifndef SS_LLM_CUDA_H
#define SS_LLM_CUDA_H

#include "ss_llm.h"

/* Moves an opened model onto CUDA device `device` (weights uploaded, KV cache on the device). */
ss_err_t ss_llm_use_cuda(ss_llm_t *m, int device, char *err, size_t errsz);
/* Opens a model on CUDA device `device` as an inference backend (kind "cuda"). */
ss_infer_backend_t *ss_backend_cuda_new(const char *path, int device, char *err, size_t errsz);

#endif
