/*
 * console.c — the web console's files (src/cli/console/), built into the binary at
 * build time (console/embed.cmake writes them as C arrays) so that `serve` needs no
 * file and no CDN: index.html, the script and the style sheet.
 */
#include "serve_int.h"

#include <string.h>

typedef struct { const char *path, *mime; const unsigned char *data; size_t len; } ss_asset_gen_t;
extern const ss_asset_gen_t ss_console_gen[];

const ss_asset_t *ss_console_asset(const char *path)
{
    static ss_asset_t one[64];
    for (int i = 0; ss_console_gen[i].path && i < 64; i++)
        if (!strcmp(ss_console_gen[i].path, path)) {
            ss_asset_t *a = &one[i]; /* same layout; filled once per asset (constant data) */
            a->path = ss_console_gen[i].path;
            a->mime = ss_console_gen[i].mime;
            a->data = ss_console_gen[i].data;
            a->len = ss_console_gen[i].len;
            return a;
        }
    return NULL;
}
