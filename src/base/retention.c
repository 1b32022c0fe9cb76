/*
 * retention.c — parses a topic's retention (ss_retention.h).
 */
#include "ss_retention.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    double ms; /* 0: rows */
} UNITS[] = {
    {"ms", 1}, {"msec", 1}, {"millisecond", 1}, {"milliseconds", 1},
    {"s", 1000}, {"sec", 1000}, {"secs", 1000}, {"second", 1000}, {"seconds", 1000},
    {"m", 60000}, {"min", 60000}, {"mins", 60000}, {"minute", 60000}, {"minutes", 60000},
    {"h", 3600000}, {"hr", 3600000}, {"hrs", 3600000}, {"hour", 3600000}, {"hours", 3600000},
    {"d", 86400000}, {"day", 86400000}, {"days", 86400000},
    {"w", 604800000}, {"week", 604800000}, {"weeks", 604800000},
    {"row", 0}, {"rows", 0}, {"message", 0}, {"messages", 0},
};

/* One "N unit" part of [s, e). */
static int parse_part(const char *s, const char *e, int64_t *ms, int64_t *rows, char *err, size_t errsz)
{
    while (s < e && isspace((unsigned char)*s))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    int len = (int)(e - s);
    if (len == 0)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "empty retention");
    char *end;
    double x = strtod(s, &end);
    if (end == s || end > e || !isfinite(x) || x <= 0)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "retention '%.*s': expected a positive number and a unit "
                         "('7 days', '12 h', '10000 rows', or 'forever')", len, s);
    while (end < e && isspace((unsigned char)*end))
        end++;
    char unit[16] = {0};
    size_t n = 0;
    while (end < e && isalpha((unsigned char)*end) && n < sizeof unit - 1)
        unit[n++] = (char)tolower((unsigned char)*end++);
    if (end != e || !n)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "retention '%.*s': expected a unit after the number "
                         "(ms, s, min, h, days, weeks or rows)", len, s);
    for (size_t i = 0; i < SS_ARRAY_LEN(UNITS); i++) {
        if (strcmp(unit, UNITS[i].name))
            continue;
        int64_t *dst = UNITS[i].ms ? ms : rows;
        if (*dst)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "retention: two %s limits", UNITS[i].ms ? "age" : "row");
        double v = UNITS[i].ms ? x * UNITS[i].ms : x;
        if (!UNITS[i].ms && v != floor(v))
            return ss_seterr(err, errsz, SS_ERR_INVALID, "retention '%.*s': a row count is a whole number", len, s);
        if (v < 1 || v > 9.0e18)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "retention '%.*s' is out of range", len, s);
        *dst = (int64_t)llround(v);
        return SS_OK;
    }
    return ss_seterr(err, errsz, SS_ERR_INVALID, "retention '%.*s': unknown unit '%s' (ms, s, min, h, days, weeks "
                     "or rows)", len, s, unit);
}

int ss_retention_parse(const char *text, int64_t *ms, int64_t *rows, char *err, size_t errsz)
{
    *ms = *rows = 0;
    if (!text)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "empty retention");
    const char *s = text;
    while (isspace((unsigned char)*s))
        s++;
    if (!strncasecmp(s, "forever", 7)) {
        const char *t = s + 7;
        while (isspace((unsigned char)*t))
            t++;
        if (!*t)
            return SS_OK;
    }
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        int rc = parse_part(p, e, ms, rows, err, errsz);
        if (rc) {
            *ms = *rows = 0;
            return rc;
        }
        if (!comma)
            return SS_OK;
        p = comma + 1;
    }
}
