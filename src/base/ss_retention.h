/*
 * ss_retention.h — the retention of a topic, as written in WITH (retention = '...')
 * on a stream or on a view's sink: an age ('7 days', '12 h', '30 min', '500 ms'),
 * a row count per partition ('10000 rows'), or both separated by a comma
 * ('7 days, 1000000 rows'); 'forever' (the default) keeps everything. The
 * catalog validates it at definition; the engine hands the numbers to the log.
 */
#ifndef SS_RETENTION_H
#define SS_RETENTION_H

#include "ss_base.h"

/* *ms / *rows = 0 mean no limit of that kind. SS_ERR_INVALID with a readable reason. */
int ss_retention_parse(const char *text, int64_t *ms, int64_t *rows, char *err, size_t errsz);

#endif
