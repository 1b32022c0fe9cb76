/*
 * cuda_stub.c — the CUDA API of ss_cuda.h for builds without nvcc: no device
 * is ever found, and every entry point says so instead of failing to link.
 */
#ifndef SS_HAVE_CUDA
#include "ss_base.h"
#include "ss_cuda.h"

#include <stdio.h>

#define NO_CUDA "this build of semstream has no CUDA backend (nvcc was not found at build time)"

int ss_cuda_device_count(char *why, size_t whysz)
{
    if (why && whysz)
        snprintf(why, whysz, "%s", NO_CUDA);
    return 0;
}

int ss_cuda_open(int device, ss_cuda_t **out, char *err, size_t errsz)
{
    (void)device;
    *out = NULL;
    return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, NO_CUDA);
}

void ss_cuda_close(ss_cuda_t *c) { (void)c; }
#endif
