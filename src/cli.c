/*
 * cli.c — helpers shared by the subcommands: the default model path.
 */
#include "cli.h"

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
