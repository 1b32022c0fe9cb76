/*
 * cli.c — helpers shared by the subcommands: the default model path, reading a script.
 */
#include "cli.h"

#include "ss_base.h"

#include <stdlib.h>
#include <unistd.h>

const char *ss_cli_default_model(void)
{
    const char *e = getenv("SEMSTREAM_MODEL");
    if (e && *e)
        return e;
    static const char *cands[] = {"../shared/models/stories260K.gguf", "../../shared/models/stories260K.gguf",
                                  "shared/models/stories260K.gguf"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
        if (access(cands[i], R_OK) == 0)
            return cands[i];
    return cands[0];
}

char *ss_cli_read_stream(FILE *f, size_t *len)
{
    ss_buf_t b = SS_BUF_INIT;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        ss_buf_append(&b, tmp, n);
    *len = b.len;
    return ss_buf_take(&b);
}

char *ss_cli_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *s = ss_cli_read_stream(f, len);
    fclose(f);
    return s;
}
