/*
 * plan_cascade.c — the text of a SEM_FILTER cascade option, e.g.
 * cascade = 'proxy=embed, recall=0.9, precision=0.9, delta=0.2': comma-separated
 * name=value settings, each checked here (the planner reports errors at the
 * option's line:col; the operators read the parsed form, operators/sem_cascade.c).
 */
#include "ss_plan.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const SETTINGS[] = {"proxy", "recall", "precision", "delta", "sample", "train", "mix", "seed"};

static int number(const char *v, double lo, double hi, int lo_open, int hi_open, double *out)
{
    char *e;
    errno = 0;
    double x = strtod(v, &e);
    if (e == v || *e || errno || !isfinite(x))
        return -1;
    if (x < lo || (lo_open && x == lo) || x > hi || (hi_open && x == hi))
        return -1;
    *out = x;
    return 0;
}

static int setting(const char *name, const char *v, ss_plan_cascade_t *o, char *err, size_t errsz)
{
    double x;
    if (ss_strcaseeq(name, "proxy")) {
        if (ss_strcaseeq(v, "embed")) {
            o->proxy = SS_CASCADE_EMBED;
            return SS_OK;
        }
        if (ss_strcaseeq(v, "words")) {
            o->proxy = SS_CASCADE_WORDS;
            return SS_OK;
        }
        if (!strncasecmp(v, "model:", 6) && v[6] && strlen(v + 6) < sizeof o->model) {
            o->proxy = SS_CASCADE_MODEL;
            snprintf(o->model, sizeof o->model, "%s", v + 6);
            return SS_OK;
        }
        return ss_seterr(err, errsz, SS_ERR_INVALID,
                         "cascade: proxy must be 'embed' (a classifier over the rows' embeddings), 'words' (a "
                         "classifier over their words), both trained on the oracle's answers, or 'model:NAME' (a "
                         "small model's P(yes)), not '%s'", v);
    }
    if (ss_strcaseeq(name, "recall") || ss_strcaseeq(name, "precision")) {
        if (number(v, 0, 1, 1, 0, &x))
            return ss_seterr(err, errsz, SS_ERR_INVALID, "cascade: %s must be a number in (0, 1], not '%s'", name, v);
        *(ss_strcaseeq(name, "recall") ? &o->recall : &o->precision) = x;
        return SS_OK;
    }
    if (ss_strcaseeq(name, "delta")) {
        if (number(v, 0, 1, 1, 1, &x))
            return ss_seterr(err, errsz, SS_ERR_INVALID,
                             "cascade: delta (the failure probability) must be a number in (0, 1), not '%s'", v);
        o->delta = x;
        return SS_OK;
    }
    if (ss_strcaseeq(name, "sample") || ss_strcaseeq(name, "train")) {
        if (number(v, 0, 1e9, 1, 0, &x) || (x > 1 && x != floor(x)))
            return ss_seterr(err, errsz, SS_ERR_INVALID,
                             "cascade: %s must be a count of rows (an integer >= 1) or a fraction of them (< 1), "
                             "not '%s'", name, v);
        *(ss_strcaseeq(name, "sample") ? &o->sample : &o->train) = x;
        return SS_OK;
    }
    if (ss_strcaseeq(name, "mix")) {
        if (number(v, 0, 1, 0, 0, &x))
            return ss_seterr(err, errsz, SS_ERR_INVALID, "cascade: mix must be a number in [0, 1], not '%s'", v);
        o->mix = x;
        return SS_OK;
    }
    if (ss_strcaseeq(name, "seed")) {
        char *e;
        errno = 0;
        long long s = strtoll(v, &e, 10);
        if (e == v || *e || errno)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "cascade: seed must be an integer, not '%s'", v);
        o->seed = s;
        return SS_OK;
    }
    const char *best = ss_suggest(name, SETTINGS, (int)SS_ARRAY_LEN(SETTINGS));
    return ss_seterr(err, errsz, SS_ERR_INVALID,
                     "cascade: unknown setting '%s'%s%s%s (known: proxy, recall, precision, delta, sample, train, "
                     "mix, seed)", name, best ? " (did you mean " : "", best ? best : "", best ? "?)" : "");
}

/* Copies s[0..n) without surrounding blanks into out (size cap); -1 if too long. */
static int trimmed(const char *s, size_t n, char *out, size_t cap)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= cap)
        return -1;
    memcpy(out, s, n);
    out[n] = 0;
    return 0;
}

int ss_plan_cascade_parse(const char *text, ss_plan_cascade_t *o, char *err, size_t errsz)
{
    *o = (ss_plan_cascade_t){.proxy = SS_CASCADE_EMBED, .recall = 0.9, .precision = 0.9, .delta = 0.2,
                             .sample = 1000, .train = 600, .mix = 1};
    int seen_proxy = 0;
    for (const char *p = text ? text : ""; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char item[160], name[32], val[128];
        if (trimmed(p, n, item, sizeof item))
            return ss_seterr(err, errsz, SS_ERR_INVALID, "cascade: setting too long: '%.40s...'", p);
        p += n + (comma ? 1 : 0);
        if (!*item) {
            if (comma)
                return ss_seterr(err, errsz, SS_ERR_INVALID, "cascade: empty setting between commas");
            continue;
        }
        char *eq = strchr(item, '=');
        if (!eq || trimmed(item, (size_t)(eq - item), name, sizeof name) || !*name ||
            trimmed(eq + 1, strlen(eq + 1), val, sizeof val) || !*val)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "cascade: '%s' is not a setting name=value", item);
        int rc = setting(name, val, o, err, errsz);
        if (rc)
            return rc;
        seen_proxy |= ss_strcaseeq(name, "proxy");
    }
    if (!seen_proxy)
        return ss_seterr(err, errsz, SS_ERR_INVALID,
                         "cascade: the setting proxy is required ('proxy=embed', 'proxy=words' or 'proxy=model:NAME')");
    return SS_OK;
}

int ss_plan_cascade_embeds(const ss_plan_node_t *n)
{
    const char *v = ss_plan_opt(n, "cascade");
    ss_plan_cascade_t o;
    char err[SS_ERRSZ];
    return v && ss_plan_cascade_parse(v, &o, err, sizeof err) == SS_OK && o.proxy == SS_CASCADE_EMBED;
}
