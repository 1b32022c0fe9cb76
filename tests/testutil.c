/*
 * testutil.c — implements testutil.h.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *tu_source_dir(void)
{
    const char *e = getenv("SS_SOURCE_DIR");
    return e && *e ? e : SS_SOURCE_DIR;
}

const char *tu_model_path(const char *file, char *buf, size_t bufsz)
{
    snprintf(buf, bufsz, "%s/../shared/models/%s", tu_source_dir(), file);
    return buf;
}

int tu_exists(const char *path) { return access(path, R_OK) == 0; }

char *tu_tmpdir(void)
{
    char tmpl[] = "/tmp/semstream-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    return p;
}
