/*
 * serve.c — `semstream serve`: keeps the views of a state database up to date
 * (like `semstream run`) and answers clients:
 *   HTTP (serve_http.c)      POST /sql, GET /views, /metrics, /healthz, /api/dag, /api/status, and
 *                            the web console at /
 *   PostgreSQL (pgwire.c...)  with --pg-port: psql, libpq, drivers, BI tools
 * Access control: every listener binds 127.0.0.1 unless --listen says otherwise,
 * and the start-up lines print the real addresses. With --auth-token-file, HTTP
 * requests need "Authorization: Bearer <token>" and PostgreSQL sessions that
 * token as their password (SCRAM-SHA-256); --read-only-token-file adds a role
 * that may SELECT, SUBSCRIBE, SHOW and EXPLAIN only. Listening beyond loopback
 * without a token is refused. Model secrets and files come only from the
 * server's own configuration: --allow-key-env NAME[=URL_PREFIX] names the
 * environment variables CREATE MODEL ... api_key_env may use (none by default),
 * --models-dir the directory local model paths must be in (default: the default
 * model's directory). Statements run under a time limit (--statement-timeout-ms).
 */
#include "cli.h"
#include "serve_int.h"
#include "ss_ast.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: semstream serve [SCRIPT.sql] [options]\n"
               "Runs SCRIPT (if given), keeps the views up to date and answers SQL over HTTP (and the\n"
               "PostgreSQL protocol with --pg-port) until Ctrl-C (SIGINT) or SIGTERM:\n"
               "  curl --data-binary 'SELECT * FROM v;' http://127.0.0.1:8080/sql\n"
               "  psql -h 127.0.0.1 -p 6875 -U me semstream\n"
               "  the web console: http://127.0.0.1:8080/\n\n");
    ss_cli_engine_help(f);
    fprintf(f,
            "  --load STREAM=FILE     produce FILE's JSON lines to STREAM once it exists (repeatable)\n"
            "  --port N               HTTP port (default 8080; 0 picks a free one)\n"
            "  --pg-port N            also speak the PostgreSQL protocol on port N (0 picks one)\n"
            "  --listen ADDR          address of every listener (default 127.0.0.1); beyond loopback a\n"
            "                         token is required\n"
            "  --auth-token-file FILE the read-write token (the file's first line): HTTP Bearer token and\n"
            "                         PostgreSQL password (SCRAM-SHA-256)\n"
            "  --read-only-token-file FILE  a token for the read-only role (SELECT, SUBSCRIBE, SHOW, EXPLAIN)\n"
            "  --allow-key-env NAME[=URL_PREFIX]  an environment variable CREATE MODEL ... api_key_env may\n"
            "                         name, optionally only for URLs with that prefix (repeatable; none by\n"
            "                         default)\n"
            "  --models-dir DIR       local model files must be in DIR (default: the --model file's directory)\n"
            "  --statement-timeout-ms N  time limit of a client's SELECT (default 30000; 0 = none)\n"
            "  --idle-timeout S       close connections idle this long (HTTP default 30, PostgreSQL 600)\n"
            "  --io-timeout S         a request must arrive, and results be taken, within S (default 30)\n"
            "  --max-connections N    open connections per listener (default 256)\n"
            "  --max-client-connections N  open connections from one client address (default 64)\n"
            "  --max-body BYTES       largest HTTP request body (default 1048576)\n");
}

typedef struct serve_args {
    int port, pg_port, idle_timeout, io_timeout, max_conn, max_client, stmt_timeout;
    long long max_body;
    const char *listen, *token_file, *ro_token_file, *models_dir;
    char **loads, **key_envs;
    int nloads, nkey_envs;
} serve_args_t;

static int num_arg(const char *opt, const char *v, long long lo, long long hi, long long *out, char *err,
                   size_t errsz)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "--%s expects an integer from %lld to %lld, got '%s'", opt, lo,
                         hi, v);
    *out = x;
    return SS_OK;
}

enum { O_LOAD = SS_CLI_OPT_USER, O_PORT, O_PG_PORT, O_LISTEN, O_TOKEN, O_RO_TOKEN, O_KEY_ENV, O_MODELS_DIR,
       O_STMT_TIMEOUT, O_IDLE, O_IO, O_MAX_CONN, O_MAX_CLIENT, O_MAX_BODY };

static int serve_opt(serve_args_t *a, int c, const char *v, char *err, size_t errsz)
{
    long long x = 0;
    int rc = SS_OK;
    switch (c) {
    case O_LOAD: a->loads[a->nloads++] = (char *)v; break;
    case O_KEY_ENV: a->key_envs[a->nkey_envs++] = (char *)v; break;
    case O_LISTEN: a->listen = v; break;
    case O_TOKEN: a->token_file = v; break;
    case O_RO_TOKEN: a->ro_token_file = v; break;
    case O_MODELS_DIR: a->models_dir = v; break;
    case O_PORT: rc = num_arg("port", v, 0, 65535, &x, err, errsz), a->port = (int)x; break;
    case O_PG_PORT: rc = num_arg("pg-port", v, 0, 65535, &x, err, errsz), a->pg_port = (int)x; break;
    case O_STMT_TIMEOUT:
        rc = num_arg("statement-timeout-ms", v, 0, 86400000, &x, err, errsz), a->stmt_timeout = (int)x;
        break;
    case O_IDLE: rc = num_arg("idle-timeout", v, 1, 86400, &x, err, errsz), a->idle_timeout = (int)x; break;
    case O_IO: rc = num_arg("io-timeout", v, 1, 3600, &x, err, errsz), a->io_timeout = (int)x; break;
    case O_MAX_CONN: rc = num_arg("max-connections", v, 1, 100000, &x, err, errsz), a->max_conn = (int)x; break;
    case O_MAX_CLIENT:
        rc = num_arg("max-client-connections", v, 1, 100000, &x, err, errsz), a->max_client = (int)x;
        break;
    case O_MAX_BODY: rc = num_arg("max-body", v, 1024, 1LL << 30, &x, err, errsz), a->max_body = x; break;
    default: return SS_ERR_NOTFOUND;
    }
    return rc;
}

/* Parses argv; 0 to go on, else the exit status (after printing). */
static int parse_args(int argc, char **argv, ss_engine_opts_t *o, serve_args_t *a)
{
    static const struct option own[] = {
        {"load", 1, 0, O_LOAD}, {"port", 1, 0, O_PORT}, {"pg-port", 1, 0, O_PG_PORT}, {"listen", 1, 0, O_LISTEN},
        {"auth-token-file", 1, 0, O_TOKEN}, {"read-only-token-file", 1, 0, O_RO_TOKEN},
        {"allow-key-env", 1, 0, O_KEY_ENV}, {"models-dir", 1, 0, O_MODELS_DIR},
        {"statement-timeout-ms", 1, 0, O_STMT_TIMEOUT}, {"idle-timeout", 1, 0, O_IDLE}, {"io-timeout", 1, 0, O_IO},
        {"max-connections", 1, 0, O_MAX_CONN}, {"max-client-connections", 1, 0, O_MAX_CLIENT},
        {"max-body", 1, 0, O_MAX_BODY}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    struct option lo[40];
    ss_cli_longopts(own, lo, (int)SS_ARRAY_LEN(lo));
    int c;
    char err[SS_ERRSZ] = "";
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        int erc = ss_cli_engine_opt(o, c, optarg, err, sizeof err);
        if (erc == SS_ERR_NOTFOUND)
            erc = serve_opt(a, c, optarg, err, sizeof err);
        if (erc == SS_OK)
            continue;
        if (erc != SS_ERR_NOTFOUND) {
            fprintf(stderr, "semstream serve: %s\n", err);
            return 2;
        }
        if (c == 'h') {
            usage(stdout);
            return -1;
        }
        usage(stderr);
        return 2;
    }
    if (optind < argc - 1) {
        usage(stderr);
        return 2;
    }
    return 0;
}

/* Reads the tokens and checks the access policy: beyond loopback a token is required. */
static int access_setup(serve_t *s, const serve_args_t *a, char *err, size_t errsz)
{
    if (a->token_file && !(s->rw_token = ss_cli_read_token(a->token_file, err, errsz)))
        return SS_ERR_INVALID;
    if (a->ro_token_file && !(s->ro_token = ss_cli_read_token(a->ro_token_file, err, errsz)))
        return SS_ERR_INVALID;
    if (s->ro_token && !s->rw_token)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "--read-only-token-file needs --auth-token-file too (the "
                         "read-write role's token)");
    if (s->rw_token && s->ro_token && !strcmp(s->rw_token, s->ro_token))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "the read-only token must differ from the read-write token");
    s->auth_required = s->rw_token != NULL;
    if (!ss_cli_is_loopback(a->listen) && !s->auth_required)
        return ss_seterr(err, errsz, SS_ERR_DENIED, "--listen %s reaches beyond this machine: give "
                         "--auth-token-file too (anyone who can connect could otherwise change or drop views)",
                         a->listen);
    return SS_OK;
}

static int run_script(ss_engine_t *e, int argc, char **argv, serve_args_t *a, char *err, size_t errsz)
{
    int rc = SS_OK;
    for (int i = 0; !rc && i < a->nloads; i++) {
        char *eq = strchr(a->loads[i], '=');
        if (!eq)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "--load expects STREAM=FILE.jsonl, got '%s'", a->loads[i]);
        *eq = 0;
        rc = ss_engine_add_load(e, a->loads[i], eq + 1, err, errsz);
        *eq = '=';
    }
    if (!rc && optind < argc) { /* the server's own script: not a client's, so no client limits */
        size_t len = 0;
        char *sql = ss_cli_read_file(argv[optind], &len);
        if (!sql)
            rc = ss_seterr(err, errsz, SS_ERR_IO, "%s: %s", argv[optind], strerror(errno));
        else
            rc = ss_engine_exec(e, sql, len, argv[optind], NULL, err, errsz);
        free(sql);
    }
    if (!rc)
        rc = ss_engine_do_loads(e, 1, err, errsz);
    return rc;
}

static const char *host_for_url(const char *listen, char *buf, size_t n)
{
    const char *h = listen ? listen : "127.0.0.1";
    snprintf(buf, n, strchr(h, ':') && h[0] != '[' ? "[%s]" : "%s", h);
    return buf;
}

static int start_listeners(serve_t *s, const serve_args_t *a, struct MHD_Daemon **d, char *err, size_t errsz)
{
    int bound = 0;
    int rc = serve_http_start(s, a->listen, a->port, a->idle_timeout ? a->idle_timeout : 30, a->max_conn,
                              a->max_client, d, &bound, err, errsz);
    if (rc)
        return rc;
    char host[128];
    host_for_url(a->listen, host, sizeof host);
    fprintf(stderr, "semstream serve: SQL over HTTP on http://%s:%d/sql, web console http://%s:%d/ (streams on %s; "
            "%s)\n", host, bound, host, bound, ss_engine_transport(s->e),
            s->auth_required ? (s->ro_token ? "tokens required: read-write and read-only" : "token required")
                             : "no token: loopback only");
    if (a->pg_port < 0)
        return SS_OK;
    pg_server_opts_t po;
    memset(&po, 0, sizeof po);
    po.engine = s->e;
    po.listen = a->listen;
    po.port = a->pg_port;
    po.rw_token = s->rw_token;
    po.ro_token = s->ro_token;
    po.max_connections = a->max_conn;
    po.max_per_client = a->max_client;
    po.idle_timeout_s = a->idle_timeout ? a->idle_timeout : 600;
    po.io_timeout_s = a->io_timeout;
    po.statement_timeout_ms = s->statement_timeout_ms;
    po.stop = s->stop;
    int pgport = 0;
    if ((rc = pg_server_start(&po, &s->pg, &pgport, err, errsz)))
        return rc;
    fprintf(stderr, "semstream serve: PostgreSQL protocol on %s:%d (psql -h %s -p %d -U <any user>%s)\n", host,
            pgport, a->listen ? a->listen : "127.0.0.1", pgport, s->auth_required ? ", password: the token" : "");
    return SS_OK;
}

/* The default models directory: the default model's. */
static char *default_models_dir(const ss_engine_opts_t *o)
{
    const char *m = o->model_path ? o->model_path : ss_default_model();
    char real[PATH_MAX];
    if (!m || !realpath(m, real))
        return NULL;
    return ss_strdup(dirname(real));
}

int ss_cmd_serve(int argc, char **argv)
{
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    o.catch_up = 1;
    o.progress = 1;
    serve_args_t a;
    memset(&a, 0, sizeof a);
    a.port = 8080;
    a.pg_port = -1;
    a.stmt_timeout = 30000;
    a.io_timeout = 30;
    a.max_body = 1 << 20;
    a.loads = calloc((size_t)argc + 1, sizeof *a.loads);
    a.key_envs = calloc((size_t)argc + 1, sizeof *a.key_envs);
    int st = a.loads && a.key_envs ? parse_args(argc, argv, &o, &a) : 1;
    if (st) {
        free(a.loads);
        free(a.key_envs);
        return st < 0 ? 0 : st;
    }
    serve_t s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    s.max_body = (size_t)a.max_body;
    s.statement_timeout_ms = a.stmt_timeout;
    s.stop = &g_stop;
    char err[SS_ERRSZ] = "";
    int rc = access_setup(&s, &a, err, sizeof err);
    int usage_error = rc != SS_OK;
    char *mdir = a.models_dir ? NULL : default_models_dir(&o);
    o.key_envs = (const char *const *)a.key_envs;
    o.key_envs_set = 1;
    o.models_dir = a.models_dir ? a.models_dir : mdir;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    o.stop = &g_stop;
    if (!rc)
        rc = ss_engine_open(&o, &s.e, err, sizeof err);
    if (!rc)
        rc = run_script(s.e, argc, argv, &a, err, sizeof err);
    struct MHD_Daemon *d = NULL;
    if (!rc) {
        /* listener threads never take the terminal's signals: the main thread does */
        sigset_t set, old;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &set, &old);
        rc = start_listeners(&s, &a, &d, err, sizeof err);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (!rc)
        rc = ss_engine_run(s.e, err, sizeof err); /* until Ctrl-C or SIGTERM; the views run meanwhile */
    g_stop = 1;
    pg_server_stop(s.pg);
    if (d)
        MHD_stop_daemon(d);
    if (rc)
        fprintf(stderr, "semstream serve: %s\n", err);
    ss_engine_close(s.e);
    free(s.rw_token);
    free(s.ro_token);
    free(mdir);
    free(a.loads);
    free(a.key_envs);
    pthread_mutex_destroy(&s.mu);
    return rc ? (usage_error ? 2 : 1) : 0;
}
