/*
 * testutil.h — helpers for the Check suites: paths to the source tree and the
 * shared models, temporary directories, and reading files.
 */
#ifndef SS_TESTUTIL_H
#define SS_TESTUTIL_H

#include <stddef.h>

/* Absolute path of the repository root. */
const char *tu_source_dir(void);
/* Path of a file in ../shared/models (e.g. "stories260K.gguf"); static buffer per call site. */
const char *tu_model_path(const char *file, char *buf, size_t bufsz);
/* 1 if the file exists and is readable. */
int tu_exists(const char *path);
/* Makes a fresh temporary directory and returns its path (malloc'd). */
char *tu_tmpdir(void);
/* Reads a whole file (malloc'd, NUL-terminated); NULL on failure. */
char *tu_read_file(const char *path, size_t *len);

#endif
