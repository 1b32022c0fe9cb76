/*
 * pgwire_catalog.c — pg_catalog and information_schema for PostgreSQL clients
 * (psql's \d, \dt, \dm, \l; drivers' metadata queries; version(),
 * current_setting(), ...). Each query gets a private in-memory SQLite database
 * built from the engine's streams and views (ss_engine_relations): streams are
 * tables (relkind 'r'), continuous views materialized views ('m'), in schema
 * public; columns with PostgreSQL types; view definitions for pg_get_viewdef.
 * Nothing of the state database is reachable from it.
 *
 * The query is PostgreSQL SQL; a token-level rewrite makes it SQLite SQL:
 * OPERATOR(pg_catalog.~) and ~, !~, ~*, !~* become REGEXP/MATCH (PCRE2), x::type
 * becomes _pg_cast(x, 'type') (regclass and regtype look names and OIDs up),
 * pg_catalog. before a function is dropped, COLLATE clauses are dropped, E''
 * and dollar-quoted strings become plain literals, "= ANY (ARRAY[...])" becomes
 * IN (...), current_user and friends become calls. The PostgreSQL functions such
 * queries use are registered as SQLite functions. An authorizer lets the query
 * read these tables and call listed functions only; a progress handler ends it at
 * the time limit.
 */
#include "pgwire_int.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PG_CATALOG 11
#define NS_PUBLIC 2200
#define NS_INFO 13000
#define OWNER_OID 10
#define DB_OID 16384

/* ---- the catalog database ---- */

static const char *const SCHEMA_SQL =
    "CREATE TABLE pg_catalog.pg_namespace(oid oid, nspname name, nspowner oid, nspacl text);"
    "CREATE TABLE pg_catalog.pg_class(oid oid, relname name, relnamespace oid, reltype oid, reloftype oid,"
    " relowner oid, relam oid, relfilenode oid, reltablespace oid, relpages int4, reltuples float4,"
    " relallvisible int4, reltoastrelid oid, relhasindex bool, relisshared bool, relpersistence char,"
    " relkind char, relnatts int2, relchecks int2, relhasrules bool, relhastriggers bool, relhassubclass bool,"
    " relrowsecurity bool, relforcerowsecurity bool, relispopulated bool, relreplident char,"
    " relispartition bool, relrewrite oid, relfrozenxid int4, relminmxid int4, relacl text, reloptions text,"
    " relpartbound text);"
    "CREATE TABLE pg_catalog.pg_attribute(attrelid oid, attname name, atttypid oid, attstattarget int4,"
    " attlen int2, attnum int2, attndims int4, attcacheoff int4, atttypmod int4, attbyval bool, attalign char,"
    " attstorage char, attcompression char, attnotnull bool, atthasdef bool, atthasmissing bool,"
    " attidentity char, attgenerated char, attisdropped bool, attislocal bool, attinhcount int4,"
    " attcollation oid, attacl text, attoptions text, attfdwoptions text, attmissingval text);"
    "CREATE TABLE pg_catalog.pg_type(oid oid, typname name, typnamespace oid, typowner oid, typlen int2,"
    " typbyval bool, typtype char, typcategory char, typispreferred bool, typisdefined bool, typdelim char,"
    " typrelid oid, typsubscript text, typelem oid, typarray oid, typinput text, typoutput text,"
    " typreceive text, typsend text, typmodin text, typmodout text, typanalyze text, typalign char,"
    " typstorage char, typnotnull bool, typbasetype oid, typtypmod int4, typndims int4, typcollation oid,"
    " typdefaultbin text, typdefault text, typacl text);"
    "CREATE TABLE pg_catalog.pg_database(oid oid, datname name, datdba oid, encoding int4,"
    " datlocprovider char, datistemplate bool, datallowconn bool, datconnlimit int4, datfrozenxid int4,"
    " datminmxid int4, dattablespace oid, datcollate text, datctype text, daticulocale text,"
    " datcollversion text, datacl text);"
    "CREATE TABLE pg_catalog.pg_roles(oid oid, rolname name, rolsuper bool, rolinherit bool,"
    " rolcreaterole bool, rolcreatedb bool, rolcanlogin bool, rolreplication bool, rolconnlimit int4,"
    " rolpassword text, rolvaliduntil text, rolbypassrls bool, rolconfig text);"
    "CREATE VIEW pg_catalog.pg_user AS SELECT rolname AS usename, oid AS usesysid, rolcreatedb AS usecreatedb,"
    " rolsuper AS usesuper FROM pg_roles;"
    "CREATE VIEW pg_catalog.pg_authid AS SELECT * FROM pg_roles;"
    "CREATE TABLE pg_catalog.pg_am(oid oid, amname name, amhandler text, amtype char);"
    "CREATE TABLE pg_catalog.pg_attrdef(oid oid, adrelid oid, adnum int2, adbin text);"
    "CREATE TABLE pg_catalog.pg_index(indexrelid oid, indrelid oid, indnatts int2, indnkeyatts int2,"
    " indisunique bool, indisprimary bool, indisexclusion bool, indimmediate bool, indisclustered bool,"
    " indisvalid bool, indcheckxmin bool, indisready bool, indislive bool, indisreplident bool,"
    " indkey text, indcollation text, indclass text, indoption text, indexprs text, indpred text);"
    "CREATE TABLE pg_catalog.pg_constraint(oid oid, conname name, connamespace oid, contype char,"
    " condeferrable bool, condeferred bool, convalidated bool, conrelid oid, contypid oid, conindid oid,"
    " conparentid oid, confrelid oid, confupdtype char, confdeltype char, confmatchtype char,"
    " conislocal bool, coninhcount int4, connoinherit bool, conkey text, confkey text, conbin text);"
    "CREATE TABLE pg_catalog.pg_description(objoid oid, classoid oid, objsubid int4, description text);"
    "CREATE TABLE pg_catalog.pg_collation(oid oid, collname name, collnamespace oid, collprovider char,"
    " collisdeterministic bool, collencoding int4, collcollate text, collctype text);"
    "CREATE TABLE pg_catalog.pg_inherits(inhrelid oid, inhparent oid, inhseqno int4, inhdetachpending bool);"
    "CREATE TABLE pg_catalog.pg_rewrite(oid oid, rulename name, ev_class oid, ev_type char, ev_enabled char,"
    " is_instead bool, ev_qual text, ev_action text);"
    "CREATE TABLE pg_catalog.pg_trigger(oid oid, tgrelid oid, tgparentid oid, tgname name, tgfoid oid,"
    " tgtype int2, tgenabled char, tgisinternal bool, tgconstrrelid oid, tgconstrindid oid,"
    " tgconstraint oid, tgdeferrable bool, tginitdeferred bool, tgnargs int2, tgattr text, tgargs text,"
    " tgqual text, tgoldtable name, tgnewtable name);"
    "CREATE TABLE pg_catalog.pg_policy(oid oid, polname name, polrelid oid, polcmd char, polpermissive bool,"
    " polroles text, polqual text, polwithcheck text);"
    "CREATE TABLE pg_catalog.pg_statistic_ext(oid oid, stxrelid oid, stxname name, stxnamespace oid,"
    " stxowner oid, stxstattarget int4, stxkeys text, stxkind text, stxexprs text);"
    "CREATE TABLE pg_catalog.pg_publication(oid oid, pubname name, pubowner oid, puballtables bool,"
    " pubinsert bool, pubupdate bool, pubdelete bool, pubtruncate bool, pubviaroot bool);"
    "CREATE TABLE pg_catalog.pg_publication_rel(oid oid, prpubid oid, prrelid oid, prqual text, prattrs text);"
    "CREATE TABLE pg_catalog.pg_publication_namespace(oid oid, pnpubid oid, pnnspid oid);"
    "CREATE TABLE pg_catalog.pg_tablespace(oid oid, spcname name, spcowner oid, spcacl text, spcoptions text);"
    "CREATE TABLE pg_catalog.pg_foreign_table(ftrelid oid, ftserver oid, ftoptions text);"
    "CREATE TABLE pg_catalog.pg_partitioned_table(partrelid oid, partstrat char, partnatts int2);"
    "CREATE TABLE pg_catalog.pg_sequence(seqrelid oid, seqtypid oid);"
    "CREATE TABLE pg_catalog.pg_extension(oid oid, extname name, extowner oid, extnamespace oid,"
    " extrelocatable bool, extversion text);"
    "CREATE TABLE pg_catalog.pg_proc(oid oid, proname name, pronamespace oid, proowner oid, prokind char,"
    " prorettype oid, proargtypes text, proretset bool);"
    "CREATE TABLE pg_catalog.pg_depend(classid oid, objid oid, objsubid int4, refclassid oid, refobjid oid,"
    " refobjsubid int4, deptype char);"
    "CREATE TABLE pg_catalog.pg_event_trigger(oid oid, evtname name, evtevent name, evtenabled char);"
    "CREATE TABLE pg_catalog.pg_settings(name text, setting text, unit text, category text,"
    " short_desc text, context text, vartype text, source text);"
    "CREATE TABLE pg_catalog.pg_stat_activity(datid oid, datname name, pid int4, usename name,"
    " application_name text, state text, query text);"
    "CREATE TABLE pg_catalog.pg_matviews(schemaname name, matviewname name, matviewowner name,"
    " tablespace name, hasindexes bool, ispopulated bool, definition text);"
    "CREATE TABLE pg_catalog.pg_tables(schemaname name, tablename name, tableowner name, tablespace name,"
    " hasindexes bool, hasrules bool, hastriggers bool, rowsecurity bool);"
    "CREATE TABLE pg_catalog.pg_views(schemaname name, viewname name, viewowner name, definition text);"
    "CREATE TABLE information_schema.schemata(catalog_name text, schema_name text, schema_owner text);"
    "CREATE TABLE information_schema.tables(table_catalog text, table_schema text, table_name text,"
    " table_type text, is_insertable_into text, is_typed text, commit_action text);"
    "CREATE TABLE information_schema.columns(table_catalog text, table_schema text, table_name text,"
    " column_name text, ordinal_position int4, column_default text, is_nullable text, data_type text,"
    " character_maximum_length int4, numeric_precision int4, numeric_scale int4, udt_catalog text,"
    " udt_schema text, udt_name text, is_identity text, is_generated text, is_updatable text);"
    "CREATE TABLE information_schema.views(table_catalog text, table_schema text, table_name text,"
    " view_definition text, is_updatable text, is_insertable_into text);";

typedef struct pgtype {
    uint32_t oid;
    const char *name, *format;
    int16_t len;
    char cat;
} pgtype_t;

static const pgtype_t TYPES[] = {
    {PG_OID_BOOL, "bool", "boolean", 1, 'B'},        {PG_OID_BYTEA, "bytea", "bytea", -1, 'U'},
    {PG_OID_CHAR, "char", "\"char\"", 1, 'S'},       {PG_OID_NAME, "name", "name", 64, 'S'},
    {PG_OID_INT8, "int8", "bigint", 8, 'N'},         {PG_OID_INT2, "int2", "smallint", 2, 'N'},
    {PG_OID_INT4, "int4", "integer", 4, 'N'},        {PG_OID_REGPROC, "regproc", "regproc", 4, 'N'},
    {PG_OID_TEXT, "text", "text", -1, 'S'},          {PG_OID_OID, "oid", "oid", 4, 'N'},
    {PG_OID_JSON, "json", "json", -1, 'U'},          {PG_OID_FLOAT4, "float4", "real", 4, 'N'},
    {PG_OID_FLOAT8, "float8", "double precision", 8, 'N'}, {PG_OID_UNKNOWN, "unknown", "unknown", -2, 'X'},
    {PG_OID_VARCHAR, "varchar", "character varying", -1, 'S'}, {1082, "date", "date", 4, 'D'},
    {1114, "timestamp", "timestamp without time zone", 8, 'D'},
    {1184, "timestamptz", "timestamp with time zone", 8, 'D'}, {1186, "interval", "interval", 16, 'T'},
    {PG_OID_NUMERIC, "numeric", "numeric", -1, 'N'}, {PG_OID_REGCLASS, "regclass", "regclass", 4, 'N'},
    {PG_OID_REGTYPE, "regtype", "regtype", 4, 'N'},  {PG_OID_JSONB, "jsonb", "jsonb", -1, 'U'},
    {1009, "_text", "text[]", -1, 'A'},              {1016, "_int8", "bigint[]", -1, 'A'},
};

static const pgtype_t *type_by_oid(int64_t oid)
{
    for (size_t i = 0; i < SS_ARRAY_LEN(TYPES); i++)
        if (TYPES[i].oid == oid)
            return &TYPES[i];
    return NULL;
}

typedef struct cat {
    sqlite3 *db;
    ss_engine_rel_t *rels;
    int nrels;
    uint32_t *oids;         /* per relation */
    const pg_settings_t *set;
    int64_t deadline_ns;
    volatile sig_atomic_t *cancel;
    int stopped;            /* SS_ERR_TIMEOUT / SS_ERR_CANCELED */
    char denied[160];
    int building;           /* 1 while the tables are filled (no authorizer limits) */
} cat_t;

static uint32_t name_oid(const char *kind, const char *name)
{
    uint32_t h = 2166136261u;
    for (const char *p = kind; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)tolower((unsigned char)*p)) * 16777619u;
    return 16385 + (h & 0x3fffffff);
}

/* The query part of "CREATE [CONTINUOUS] VIEW v [WITH (...)] AS query". */
static char *view_query(const char *sql)
{
    size_t n = strlen(sql);
    int nt = pg_lex(sql, n, NULL, 0);
    pg_tok_t *t = calloc((size_t)nt + 1, sizeof *t);
    if (!t)
        return NULL;
    pg_lex(sql, n, t, nt);
    int depth = 0;
    char *r = NULL;
    for (int i = 2; i < nt && !r; i++) {
        if (t[i].kind == PG_TOK_OP && sql[t[i].start] == '(')
            depth++;
        else if (t[i].kind == PG_TOK_OP && sql[t[i].start] == ')')
            depth--;
        else if (depth == 0 && pg_tok_is(sql, &t[i], "as") && i + 1 < nt) {
            size_t st = t[i + 1].start, en = n;
            while (en > st && (isspace((unsigned char)sql[en - 1]) || sql[en - 1] == ';'))
                en--;
            r = ss_strndup(sql + st, en - st);
        }
    }
    free(t);
    return r ? r : ss_strdup(sql);
}

static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t errsz)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        ss_seterr(err, errsz, SS_ERR_INTERNAL, "building pg_catalog: %s", msg ? msg : "?");
        sqlite3_free(msg);
        return SS_ERR_INTERNAL;
    }
    return SS_OK;
}

/* Runs an INSERT with bound values: fmt has one char per value: i (int64), t (text), n (NULL). */
static int insert(sqlite3 *db, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return SS_ERR_INTERNAL;
    va_list ap;
    va_start(ap, fmt);
    for (int i = 0; fmt[i]; i++) {
        if (fmt[i] == 'i')
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        else if (fmt[i] == 't') {
            const char *s = va_arg(ap, const char *);
            if (s)
                sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT);
        }
    }
    va_end(ap);
    int rc = sqlite3_step(st) == SQLITE_DONE ? SS_OK : SS_ERR_INTERNAL;
    sqlite3_finalize(st);
    return rc;
}

static const char *info_type(ss_coltype_t t)
{
    switch (t) {
    case SS_COL_INT: return "bigint";
    case SS_COL_REAL: return "double precision";
    case SS_COL_BOOL: return "boolean";
    case SS_COL_NUMERIC: return "numeric";
    case SS_COL_JSON: return "json";
    default: return "text";
    }
}

static int fill_relation(cat_t *c, int i)
{
    const ss_engine_rel_t *r = &c->rels[i];
    uint32_t oid = c->oids[i];
    sqlite3 *db = c->db;
    const char *kind = r->is_view ? "m" : "r";
    int rc = insert(db,
                    "INSERT INTO pg_class VALUES(?,?,?,0,0,?,?,?,0,0,-1,0,0,0,0,'p',?,?,0,0,0,0,0,0,1,'d',0,0,0,0,"
                    "NULL,NULL,NULL)",
                    "itiiiitii", (int64_t)oid, r->name, (int64_t)NS_PUBLIC, (int64_t)OWNER_OID,
                    (int64_t)(r->is_view ? 0 : 2), (int64_t)oid, kind, (int64_t)r->ncols);
    for (int k = 0; !rc && k < r->ncols; k++) {
        uint32_t toid = pg_type_oid(r->types[k]);
        const pgtype_t *ty = type_by_oid(toid);
        rc = insert(db,
                    "INSERT INTO pg_attribute VALUES(?,?,?,-1,?,?,0,-1,?,0,'i','x','',?,0,0,'','',0,1,0,?,NULL,"
                    "NULL,NULL,NULL)",
                    "itiiiiii", (int64_t)oid, r->cols[k], (int64_t)toid, (int64_t)(ty ? ty->len : -1),
                    (int64_t)(k + 1), (int64_t)pg_typmod(r->types[k], r->typmods ? r->typmods[k] : -1),
                    (int64_t)(r->is_key && r->is_key[k]), (int64_t)(toid == PG_OID_TEXT ? 100 : 0));
        if (!rc)
            rc = insert(db, "INSERT INTO information_schema.columns VALUES(?,'public',?,?,?,NULL,?,?,NULL,NULL,"
                        "NULL,?,'pg_catalog',?,'NO','NEVER',?)",
                        "tttittttt", c->set->database, r->name, r->cols[k], (int64_t)(k + 1),
                        r->is_key && r->is_key[k] ? "NO" : "YES", info_type(r->types[k]), c->set->database,
                        ty ? ty->name : "text", r->is_view ? "NO" : "YES");
    }
    if (rc)
        return rc;
    if (r->is_view) {
        char *def = view_query(r->sql ? r->sql : "");
        rc = insert(db, "INSERT INTO pg_matviews VALUES('public',?,'semstream',NULL,0,1,?)", "tt", r->name, def);
        if (!rc)
            rc = insert(db, "INSERT INTO information_schema.views VALUES(?,'public',?,?,'NO','NO')", "ttt",
                        c->set->database, r->name, def);
        free(def);
    } else {
        rc = insert(db, "INSERT INTO pg_tables VALUES('public',?,'semstream',NULL,0,0,0,0)", "t", r->name);
    }
    if (!rc)
        rc = insert(db, "INSERT INTO information_schema.tables VALUES(?,'public',?,?,?,'NO',NULL)", "tttt",
                    c->set->database, r->name, r->is_view ? "MATERIALIZED VIEW" : "BASE TABLE",
                    r->is_view ? "NO" : "YES");
    if (!rc && r->is_view && r->state) {
        char *d = ss_sprintf("continuous view (%s)", r->state);
        rc = insert(db, "INSERT INTO pg_description VALUES(?,1259,0,?)", "it", (int64_t)oid, d);
        free(d);
    }
    return rc;
}

static int build(cat_t *c, char *err, size_t errsz)
{
    sqlite3 *db = c->db;
    int rc = exec_sql(db, "ATTACH ':memory:' AS pg_catalog; ATTACH ':memory:' AS information_schema;", err, errsz);
    if (!rc)
        rc = exec_sql(db, SCHEMA_SQL, err, errsz);
    if (!rc)
        rc = exec_sql(db, "BEGIN", err, errsz);
    if (rc)
        return rc;
    rc = insert(db, "INSERT INTO pg_namespace VALUES(11,'pg_catalog',10,NULL),(2200,'public',10,NULL),"
                    "(13000,'information_schema',10,NULL)", "");
    if (!rc)
        rc = insert(db, "INSERT INTO pg_database VALUES(?,?,10,6,'c',0,1,-1,0,0,1663,'C','C',NULL,NULL,NULL)", "it",
                    (int64_t)DB_OID, c->set->database);
    if (!rc)
        rc = insert(db, "INSERT INTO pg_roles VALUES(10,?,0,1,0,0,1,0,-1,'********',NULL,0,NULL)", "t",
                    c->set->user ? c->set->user : "semstream");
    if (!rc)
        rc = insert(db, "INSERT INTO pg_am VALUES(2,'heap','heap_tableam_handler','t'),"
                        "(403,'btree','bthandler','i')", "");
    if (!rc)
        rc = insert(db, "INSERT INTO information_schema.schemata VALUES(?,'public','semstream'),"
                        "(?,'pg_catalog','semstream'),(?,'information_schema','semstream')", "ttt",
                    c->set->database, c->set->database, c->set->database);
    for (size_t i = 0; !rc && i < SS_ARRAY_LEN(TYPES); i++) {
        const pgtype_t *t = &TYPES[i];
        char typtype[2] = {t->cat == 'A' ? 'b' : 'b', 0}, cat[2] = {t->cat, 0};
        rc = insert(db,
                    "INSERT INTO pg_type(oid,typname,typnamespace,typowner,typlen,typbyval,typtype,typcategory,"
                    "typispreferred,typisdefined,typdelim,typrelid,typelem,typarray,typnotnull,typbasetype,"
                    "typtypmod,typndims,typcollation) VALUES(?,?,11,10,?,?,?,?,0,1,',',0,0,0,0,0,-1,0,?)",
                    "itiitti", (int64_t)t->oid, t->name, (int64_t)t->len, (int64_t)(t->len > 0 && t->len <= 8),
                    typtype, cat, (int64_t)(t->cat == 'S' ? 100 : 0));
    }
    for (int i = 0; !rc && i < c->set->n; i++)
        if (c->set->names[i][0] != '_') /* internal entries (_pid) */
            rc = insert(db, "INSERT INTO pg_settings VALUES(?,?,NULL,'Client','','user','string','session')", "tt",
                    c->set->names[i], c->set->values[i]);
    for (int i = 0; !rc && i < c->nrels; i++)
        rc = fill_relation(c, i);
    if (!rc)
        rc = exec_sql(db, "COMMIT", err, errsz);
    if (rc && !*err)
        ss_seterr(err, errsz, SS_ERR_INTERNAL, "building pg_catalog: %s", sqlite3_errmsg(db));
    return rc;
}

/* ---- PostgreSQL functions ---- */

static cat_t *ctx_of(sqlite3_context *cx) { return sqlite3_user_data(cx); }

static void fn_true(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    (void)v;
    sqlite3_result_int(cx, 1);
}

static void fn_null(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    (void)v;
    sqlite3_result_null(cx);
}

static void fn_zero(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    (void)v;
    sqlite3_result_int(cx, 0);
}

static void fn_text_const(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    (void)v;
    sqlite3_result_text(cx, sqlite3_user_data(cx), -1, SQLITE_STATIC);
}

static void fn_owner(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    (void)v;
    cat_t *c = ctx_of(cx);
    sqlite3_result_text(cx, c->set->user ? c->set->user : "semstream", -1, SQLITE_TRANSIENT);
}

static void fn_current_database(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    (void)v;
    cat_t *c = ctx_of(cx);
    sqlite3_result_text(cx, c->set->database ? c->set->database : "semstream", -1, SQLITE_TRANSIENT);
}

static void fn_current_setting(sqlite3_context *cx, int n, sqlite3_value **v)
{
    cat_t *c = ctx_of(cx);
    const char *name = (const char *)sqlite3_value_text(v[0]);
    const char *val = name ? pg_setting_get(c->set, name) : NULL;
    if (val)
        sqlite3_result_text(cx, val, -1, SQLITE_TRANSIENT);
    else if (n > 1 && sqlite3_value_int(v[1]))
        sqlite3_result_null(cx); /* missing_ok */
    else {
        char m[200];
        snprintf(m, sizeof m, "unrecognized configuration parameter \"%s\"", name ? name : "");
        sqlite3_result_error(cx, m, -1);
    }
}

static void fn_set_config(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    sqlite3_result_value(cx, v[1]);
}

static void fn_format_type(sqlite3_context *cx, int n, sqlite3_value **v)
{
    if (sqlite3_value_type(v[0]) == SQLITE_NULL) {
        sqlite3_result_null(cx);
        return;
    }
    int64_t oid = sqlite3_value_int64(v[0]), mod = n > 1 ? sqlite3_value_int64(v[1]) : -1;
    const pgtype_t *t = type_by_oid(oid);
    char b[64];
    if (oid == PG_OID_NUMERIC && mod >= 4)
        snprintf(b, sizeof b, "numeric(%d,%d)", (int)((mod - 4) >> 16), (int)((mod - 4) & 0xffff));
    else
        snprintf(b, sizeof b, "%s", t ? t->format : "???");
    sqlite3_result_text(cx, b, -1, SQLITE_TRANSIENT);
}

static int rel_index(cat_t *c, int64_t oid)
{
    for (int i = 0; i < c->nrels; i++)
        if (c->oids[i] == oid)
            return i;
    return -1;
}

static void fn_viewdef(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    cat_t *c = ctx_of(cx);
    int i = rel_index(c, sqlite3_value_int64(v[0]));
    if (i < 0 || !c->rels[i].is_view) {
        sqlite3_result_null(cx);
        return;
    }
    char *q = view_query(c->rels[i].sql ? c->rels[i].sql : "");
    sqlite3_result_text(cx, q ? q : "", -1, SQLITE_TRANSIENT);
    free(q);
}

static void fn_backend_pid(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    (void)v;
    const char *p = pg_setting_get(ctx_of(cx)->set, "_pid");
    sqlite3_result_int64(cx, p ? strtoll(p, NULL, 10) : 0);
}

static void fn_quote_ident(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    const char *s = (const char *)sqlite3_value_text(v[0]);
    if (!s) {
        sqlite3_result_null(cx);
        return;
    }
    int plain = *s && (islower((unsigned char)*s) || *s == '_');
    for (const char *p = s; plain && *p; p++)
        plain = islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_';
    ss_buf_t b = SS_BUF_INIT;
    if (plain)
        ss_buf_puts(&b, s);
    else {
        ss_buf_putc(&b, '"');
        for (const char *p = s; *p; p++) {
            if (*p == '"')
                ss_buf_putc(&b, '"');
            ss_buf_putc(&b, *p);
        }
        ss_buf_putc(&b, '"');
    }
    sqlite3_result_text(cx, ss_buf_cstr(&b), -1, SQLITE_TRANSIENT);
    ss_buf_free(&b);
}

static void fn_array_to_string(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    sqlite3_result_value(cx, v[0]); /* our "arrays" are NULL or one text value */
}

static void fn_size_pretty(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    char b[32];
    snprintf(b, sizeof b, "%lld bytes", (long long)sqlite3_value_int64(v[0]));
    sqlite3_result_text(cx, b, -1, SQLITE_TRANSIENT);
}

static void fn_encoding(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    (void)v;
    sqlite3_result_text(cx, "UTF8", -1, SQLITE_STATIC);
}

static void fn_current_schemas(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    sqlite3_result_text(cx, sqlite3_value_int(v[0]) ? "{pg_catalog,public}" : "{public}", -1, SQLITE_STATIC);
}

/* x::type */
static void fn_cast(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    cat_t *c = ctx_of(cx);
    const char *ty = (const char *)sqlite3_value_text(v[1]);
    sqlite3_value *x = v[0];
    int xt = sqlite3_value_type(x);
    if (!ty || xt == SQLITE_NULL) {
        sqlite3_result_null(cx);
        return;
    }
    if (!strcmp(ty, "regclass") || !strcmp(ty, "regtype") || !strcmp(ty, "regnamespace") ||
        !strcmp(ty, "regproc") || !strcmp(ty, "regprocedure")) {
        int klass = !strcmp(ty, "regclass"), type = !strcmp(ty, "regtype");
        if (xt == SQLITE_INTEGER) { /* an OID shown as its name */
            int64_t oid = sqlite3_value_int64(x);
            int i = klass ? rel_index(c, oid) : -1;
            const pgtype_t *t = type ? type_by_oid(oid) : NULL;
            if (i >= 0)
                sqlite3_result_text(cx, c->rels[i].name, -1, SQLITE_TRANSIENT);
            else if (t)
                sqlite3_result_text(cx, t->format, -1, SQLITE_STATIC);
            else if (!strcmp(ty, "regnamespace"))
                sqlite3_result_text(cx, oid == NS_PG_CATALOG ? "pg_catalog" : oid == NS_PUBLIC ? "public" : "-",
                                    -1, SQLITE_STATIC);
            else
                sqlite3_result_int64(cx, oid);
            return;
        }
        const char *s = (const char *)sqlite3_value_text(x);
        char *end;
        long long num = strtoll(s, &end, 10);
        if (*s && !*end) {
            sqlite3_result_int64(cx, num);
            return;
        }
        if (!strncmp(s, "public.", 7))
            s += 7;
        for (int i = 0; klass && i < c->nrels; i++)
            if (!strcmp(c->rels[i].name, s)) {
                sqlite3_result_int64(cx, c->oids[i]);
                return;
            }
        for (size_t i = 0; type && i < SS_ARRAY_LEN(TYPES); i++)
            if (!strcmp(TYPES[i].name, s) || !strcmp(TYPES[i].format, s)) {
                sqlite3_result_int64(cx, TYPES[i].oid);
                return;
            }
        char m[200];
        snprintf(m, sizeof m, "%s \"%s\" does not exist", klass ? "relation" : "type", s);
        sqlite3_result_error(cx, m, -1);
        return;
    }
    if (!strncmp(ty, "int", 3) || !strcmp(ty, "bigint") || !strcmp(ty, "smallint") || !strcmp(ty, "oid") ||
        !strcmp(ty, "xid")) {
        sqlite3_result_int64(cx, sqlite3_value_int64(x));
    } else if (!strcmp(ty, "bool") || !strcmp(ty, "boolean")) {
        const char *s = (const char *)sqlite3_value_text(x);
        sqlite3_result_int(cx, xt == SQLITE_INTEGER ? sqlite3_value_int(x) != 0
                                                    : s && (*s == 't' || *s == 'T' || *s == '1' || *s == 'y'));
    } else if (!strcmp(ty, "numeric") || !strncmp(ty, "float", 5) || !strcmp(ty, "real") ||
               !strcmp(ty, "double")) {
        sqlite3_result_double(cx, sqlite3_value_double(x));
    } else {
        sqlite3_result_text(cx, (const char *)sqlite3_value_text(x), -1, SQLITE_TRANSIENT);
    }
}

/* x ~ pattern (REGEXP) and x ~* pattern (MATCH: case-insensitive), with PCRE2. */
static void regex(sqlite3_context *cx, sqlite3_value **v, int caseless)
{
    const char *pat = (const char *)sqlite3_value_text(v[0]), *s = (const char *)sqlite3_value_text(v[1]);
    if (!pat || !s) {
        sqlite3_result_null(cx);
        return;
    }
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (caseless ? PCRE2_CASELESS : 0), &ec,
                                     &eo, NULL);
    if (!code) {
        sqlite3_result_error(cx, "invalid regular expression", -1);
        return;
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
    int r = md ? pcre2_match(code, (PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, 0, 0, md, NULL) : -1;
    pcre2_match_data_free(md);
    pcre2_code_free(code);
    sqlite3_result_int(cx, r >= 0);
}

static void fn_regexp(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    regex(cx, v, 0);
}

static void fn_match(sqlite3_context *cx, int n, sqlite3_value **v)
{
    (void)n;
    regex(cx, v, 1);
}

typedef struct pgfn {
    const char *name;
    int nargs;
    void (*fn)(sqlite3_context *, int, sqlite3_value **);
    const char *text; /* fn_text_const's value */
} pgfn_t;

static const pgfn_t FUNCS[] = {
    {"pg_table_is_visible", 1, fn_true, NULL},     {"pg_type_is_visible", 1, fn_true, NULL},
    {"pg_function_is_visible", 1, fn_true, NULL},  {"has_table_privilege", -1, fn_true, NULL},
    {"has_schema_privilege", -1, fn_true, NULL},   {"has_database_privilege", -1, fn_true, NULL},
    {"has_column_privilege", -1, fn_true, NULL},   {"pg_has_role", -1, fn_true, NULL},
    {"pg_get_userbyid", 1, fn_owner, NULL},        {"current_user", 0, fn_owner, NULL},
    {"session_user", 0, fn_owner, NULL},           {"current_role", 0, fn_owner, NULL},
    {"user", 0, fn_owner, NULL},                   {"current_database", 0, fn_current_database, NULL},
    {"current_catalog", 0, fn_current_database, NULL},
    {"current_schema", 0, fn_text_const, "public"}, {"current_schemas", 1, fn_current_schemas, NULL},
    {"version", 0, fn_text_const, "PostgreSQL 15.0 (semstream), a streaming engine speaking the PostgreSQL protocol"},
    {"current_setting", -1, fn_current_setting, NULL}, {"set_config", 3, fn_set_config, NULL},
    {"format_type", 2, fn_format_type, NULL},      {"pg_get_viewdef", -1, fn_viewdef, NULL},
    {"pg_get_expr", -1, fn_null, NULL},            {"pg_get_constraintdef", -1, fn_null, NULL},
    {"pg_get_indexdef", -1, fn_null, NULL},        {"pg_get_triggerdef", -1, fn_null, NULL},
    {"pg_get_partkeydef", -1, fn_null, NULL},      {"pg_get_statisticsobjdef_columns", -1, fn_null, NULL},
    {"pg_get_function_result", -1, fn_null, NULL}, {"pg_get_function_arguments", -1, fn_null, NULL},
    {"obj_description", -1, fn_null, NULL},        {"col_description", -1, fn_null, NULL},
    {"shobj_description", -1, fn_null, NULL},      {"pg_backend_pid", 0, fn_backend_pid, NULL},
    {"inet_server_addr", 0, fn_null, NULL},        {"inet_server_port", 0, fn_null, NULL},
    {"pg_is_in_recovery", 0, fn_zero, NULL},       {"txid_current", 0, fn_true, NULL},
    {"pg_relation_size", -1, fn_zero, NULL},       {"pg_total_relation_size", -1, fn_zero, NULL},
    {"pg_table_size", -1, fn_zero, NULL},          {"pg_database_size", -1, fn_zero, NULL},
    {"pg_size_pretty", 1, fn_size_pretty, NULL},   {"pg_encoding_to_char", 1, fn_encoding, NULL},
    {"quote_ident", 1, fn_quote_ident, NULL},      {"array_to_string", -1, fn_array_to_string, NULL},
    {"_pg_cast", 2, fn_cast, NULL},                {"regexp", 2, fn_regexp, NULL},
    {"match", 2, fn_match, NULL},                  {"pg_postmaster_start_time", 0, fn_null, NULL},
    {"to_regclass", 1, fn_null, NULL},
};

/* SQLite's own functions a catalog query may use. */
static const char *const CORE_FUNCS[] = {"coalesce", "ifnull", "nullif", "lower", "upper", "length", "substr",
                                         "substring", "trim", "ltrim", "rtrim", "replace", "count", "max", "min",
                                         "sum", "avg", "abs", "like", "glob", "instr", "round", "group_concat",
                                         "iif", "typeof", "concat", "concat_ws", "printf", "format", NULL};

static int func_allowed(const char *name)
{
    for (size_t i = 0; i < SS_ARRAY_LEN(FUNCS); i++)
        if (ss_strcaseeq(FUNCS[i].name, name))
            return 1;
    for (int i = 0; CORE_FUNCS[i]; i++)
        if (ss_strcaseeq(CORE_FUNCS[i], name))
            return 1;
    return 0;
}

static int authorize(void *ud, int action, const char *a, const char *b, const char *dbn, const char *trig)
{
    (void)dbn;
    (void)trig;
    cat_t *c = ud;
    if (c->building)
        return SQLITE_OK;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_RECURSIVE:
        return SQLITE_OK; /* every table of this database is the catalog */
    case SQLITE_FUNCTION:
        if (b && func_allowed(b))
            return SQLITE_OK;
        snprintf(c->denied, sizeof c->denied, "function %s() does not exist in this catalog", b ? b : "?");
        return SQLITE_DENY;
    default:
        (void)a;
        snprintf(c->denied, sizeof c->denied, "only SELECT is allowed on pg_catalog");
        return SQLITE_DENY;
    }
}

static int progress(void *ud)
{
    cat_t *c = ud;
    if (c->cancel && *c->cancel)
        c->stopped = SS_ERR_CANCELED;
    else if (c->deadline_ns && ss_now_ns() > c->deadline_ns)
        c->stopped = SS_ERR_TIMEOUT;
    return c->stopped != 0;
}

/* ---- PostgreSQL SQL -> SQLite SQL ---- */

typedef struct chunk {
    char *text;
    int open;     /* 1: a "(" chunk */
} chunk_t;

typedef struct out {
    chunk_t *c;
    int n, cap;
    const char *gap;   /* the original text before the token being rewritten (kept: spacing, comments) */
    size_t gaplen;
    int *opens;   /* indices of unmatched "(" chunks */
    int nopen, capopen;
    int oom;
} out_t;

static void push(out_t *o, char *text, int open)
{
    if (!text) {
        o->oom = 1;
        return;
    }
    if (o->gaplen) { /* the text keeps the spacing before it (column names are the text of their expression) */
        char *t = ss_sprintf("%.*s%s", (int)o->gaplen, o->gap, text);
        free(text);
        if (!(text = t)) {
            o->oom = 1;
            return;
        }
        o->gaplen = 0;
    }
    if (o->n == o->cap) {
        int cap = o->cap * 2 + 32;
        chunk_t *c = realloc(o->c, (size_t)cap * sizeof *c);
        if (!c) {
            free(text);
            o->oom = 1;
            return;
        }
        o->c = c;
        o->cap = cap;
    }
    o->c[o->n++] = (chunk_t){text, open};
}

static const char *chunk_text(const out_t *o, int i)
{
    const char *t = o->c[i].text;
    while (isspace((unsigned char)*t))
        t++;
    return t;
}

static int chunk_is(const out_t *o, int i, const char *s)
{
    return i >= 0 && i < o->n && !strcasecmp(chunk_text(o, i), s);
}

static int chunk_ident(const out_t *o, int i)
{
    if (i < 0 || i >= o->n)
        return 0;
    const char *t = chunk_text(o, i);
    return isalpha((unsigned char)t[0]) || t[0] == '_' || t[0] == '"';
}

/* Joins chunks [from, n) into one (a cast's operand). */
static char *join_from(out_t *o, int from)
{
    ss_buf_t b = SS_BUF_INIT;
    for (int i = from; i < o->n; i++) {
        ss_buf_puts(&b, i > from ? o->c[i].text : chunk_text(o, i));
        free(o->c[i].text);
    }
    o->n = from;
    return ss_buf_take(&b);
}

static char *sqlite_string(const char *v)
{
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_putc(&b, '\'');
    for (; *v; v++) {
        if (*v == '\'')
            ss_buf_putc(&b, '\'');
        ss_buf_putc(&b, *v);
    }
    ss_buf_putc(&b, '\'');
    return ss_buf_take(&b);
}

static int rewrite(const char *s, ss_buf_t *res)
{
    size_t n = strlen(s);
    int nt = pg_lex(s, n, NULL, 0);
    pg_tok_t *t = calloc((size_t)nt + 1, sizeof *t);
    if (!t)
        return SS_ERR_NOMEM;
    pg_lex(s, n, t, nt);
    out_t o = {0};
    size_t prev_end = 0;
    for (int i = 0; i < nt && !o.oom; prev_end = t[i].start + t[i].len, i++) {
        const pg_tok_t *k = &t[i];
        const char *p = s + k->start;
        o.gap = s + prev_end;
        o.gaplen = k->start - prev_end;
        /* OPERATOR(pg_catalog.~) -> the operator */
        if (pg_tok_is(s, k, "operator") && i + 1 < nt && t[i + 1].kind == PG_TOK_OP && s[t[i + 1].start] == '(') {
            int j = i + 2;
            while (j < nt && !(t[j].kind == PG_TOK_OP && s[t[j].start] == ')'))
                j++;
            if (j < nt && j - 1 > i + 1 && t[j - 1].kind == PG_TOK_OP) {
                const char *op = s + t[j - 1].start;
                size_t ol = t[j - 1].len;
                const char *r = ol == 1 && *op == '~' ? "REGEXP" : ol == 2 && !strncmp(op, "!~", 2) ? "NOT REGEXP"
                              : ol == 2 && !strncmp(op, "~*", 2) ? "MATCH" : ol == 3 && !strncmp(op, "!~*", 3) ? "NOT MATCH"
                                                                                                 : NULL;
                push(&o, r ? ss_strdup(r) : ss_strndup(op, ol), 0);
                i = j;
                continue;
            }
        }
        if (k->kind == PG_TOK_OP) {
            if (k->len == 1 && *p == '~') { push(&o, ss_strdup("REGEXP"), 0); continue; }
            if (k->len == 2 && !strncmp(p, "!~", 2)) { push(&o, ss_strdup("NOT REGEXP"), 0); continue; }
            if (k->len == 2 && !strncmp(p, "~*", 2)) { push(&o, ss_strdup("MATCH"), 0); continue; }
            if (k->len == 3 && !strncmp(p, "!~*", 3)) { push(&o, ss_strdup("NOT MATCH"), 0); continue; }
            if (k->len == 2 && !strncmp(p, "::", 2) && i + 1 < nt) {
                /* the operand: the previous chunk, a parenthesised group (with its function name), or a.b.c */
                int from = o.n - 1;
                if (chunk_is(&o, from, ")")) {
                    int depth = 0;
                    for (; from >= 0; from--) {
                        if (chunk_is(&o, from, ")"))
                            depth++;
                        else if (o.c[from].open && --depth == 0)
                            break;
                    }
                    if (from > 0 && chunk_ident(&o, from - 1))
                        from--;
                } else {
                    while (from >= 2 && chunk_is(&o, from - 1, ".") && chunk_ident(&o, from - 2))
                        from -= 2;
                }
                if (from < 0)
                    from = 0;
                /* the type: name [. name] [(...)] [[]] */
                int j = i + 1;
                char *ty = pg_tok_name(s, &t[j]);
                if (j + 2 < nt && t[j + 1].kind == PG_TOK_OP && s[t[j + 1].start] == '.') {
                    free(ty);
                    j += 2;
                    ty = pg_tok_name(s, &t[j]);
                }
                if (ty && (!strcmp(ty, "double") || !strcmp(ty, "character")) && j + 1 < nt &&
                    t[j + 1].kind == PG_TOK_IDENT)
                    j++;
                if (j + 1 < nt && t[j + 1].kind == PG_TOK_OP && s[t[j + 1].start] == '(') {
                    while (j < nt && !(t[j].kind == PG_TOK_OP && s[t[j].start] == ')'))
                        j++;
                }
                if (j + 2 < nt && t[j + 1].kind == PG_TOK_OP && s[t[j + 1].start] == '[' &&
                    t[j + 2].kind == PG_TOK_OP && s[t[j + 2].start] == ']')
                    j += 2;
                char *lead = from < o.n ? ss_strndup(o.c[from].text, (size_t)(chunk_text(&o, from) - o.c[from].text))
                                        : ss_strdup("");
                char *operand = join_from(&o, from);
                o.gaplen = 0;
                push(&o, ss_sprintf("%s_pg_cast(%s, '%s')", lead ? lead : "", operand ? operand : "NULL",
                                    ty ? ty : "text"), 0);
                free(lead);
                free(operand);
                free(ty);
                i = j;
                continue;
            }
            if (k->len == 1 && *p == '(') {
                push(&o, ss_strdup("("), 1);
                continue;
            }
        }
        if (k->kind == PG_TOK_STRING && (*p == 'E' || *p == 'e' || *p == '$')) {
            char *v = pg_tok_string(s, k);
            push(&o, v ? sqlite_string(v) : NULL, 0);
            free(v);
            continue;
        }
        if (k->kind == PG_TOK_IDENT) {
            /* pg_catalog.f( -> f( */
            if (pg_tok_is(s, k, "pg_catalog") && i + 3 < nt && t[i + 1].kind == PG_TOK_OP &&
                s[t[i + 1].start] == '.' && t[i + 3].kind == PG_TOK_OP && s[t[i + 3].start] == '(') {
                i++;
                continue;
            }
            if (pg_tok_is(s, k, "collate") && i + 1 < nt) { /* COLLATE name[.name] */
                i++;
                if (i + 2 < nt && t[i + 1].kind == PG_TOK_OP && s[t[i + 1].start] == '.')
                    i += 2;
                continue;
            }
            if (pg_tok_is(s, k, "ilike")) {
                push(&o, ss_strdup("LIKE"), 0);
                continue;
            }
            /* IS [NOT] DISTINCT FROM */
            if (pg_tok_is(s, k, "distinct") && i + 1 < nt && pg_tok_is(s, &t[i + 1], "from") && o.n > 0 &&
                (chunk_is(&o, o.n - 1, "IS") || chunk_is(&o, o.n - 1, "is") || chunk_is(&o, o.n - 1, "NOT") ||
                 chunk_is(&o, o.n - 1, "not"))) {
                if (chunk_is(&o, o.n - 1, "NOT") || chunk_is(&o, o.n - 1, "not")) {
                    free(o.c[--o.n].text); /* IS NOT DISTINCT FROM -> IS */
                } else {
                    push(&o, ss_strdup("NOT"), 0);
                }
                i++;
                continue;
            }
            /* op ANY (ARRAY[a, b]) -> IN (a, b); <> ALL (...) -> NOT IN */
            if ((pg_tok_is(s, k, "any") || pg_tok_is(s, k, "all")) && i + 3 < nt && s[t[i + 1].start] == '(' &&
                pg_tok_is(s, &t[i + 2], "array") && s[t[i + 3].start] == '[' && o.n > 0) {
                int neg = pg_tok_is(s, k, "all");
                free(o.c[--o.n].text); /* the comparison operator */
                push(&o, ss_strdup(neg ? "NOT IN" : "IN"), 0);
                push(&o, ss_strdup("("), 1);
                int j = i + 4;
                while (j < nt && s[t[j].start] != ']') {
                    push(&o, ss_strndup(s + t[j].start, t[j].len), 0);
                    j++;
                }
                i = j + 1; /* the ")" after "]" closes IN ( */
                continue;
            }
            /* = ANY (expr) -> IN (expr); <> ALL (expr) -> NOT IN (expr) */
            if ((pg_tok_is(s, k, "any") || pg_tok_is(s, k, "some") || pg_tok_is(s, k, "all")) && i + 1 < nt &&
                s[t[i + 1].start] == '(' && o.n > 0 && (chunk_is(&o, o.n - 1, "=") || chunk_is(&o, o.n - 1, "<>") ||
                                                        chunk_is(&o, o.n - 1, "!="))) {
                int neg = !chunk_is(&o, o.n - 1, "=");
                free(o.c[--o.n].text);
                push(&o, ss_strdup(neg ? " NOT IN" : " IN"), 0);
                continue;
            }
            /* unnest(arr) [alias] in FROM: our catalog arrays are empty -> no rows */
            if (pg_tok_is(s, k, "unnest") && i + 1 < nt && s[t[i + 1].start] == '(') {
                int depth = 0, j = i + 1;
                for (; j < nt; j++) {
                    if (t[j].kind == PG_TOK_OP && s[t[j].start] == '(')
                        depth++;
                    else if (t[j].kind == PG_TOK_OP && s[t[j].start] == ')' && --depth == 0)
                        break;
                }
                char *alias = j + 1 < nt && t[j + 1].kind == PG_TOK_IDENT && !pg_tok_is(s, &t[j + 1], "where") &&
                                      !pg_tok_is(s, &t[j + 1], "order") && !pg_tok_is(s, &t[j + 1], "group")
                                  ? pg_tok_name(s, &t[j + 1])
                                  : ss_strdup("unnest");
                push(&o, ss_sprintf("(SELECT NULL AS \"%s\" WHERE 0)", alias ? alias : "unnest"), 0);
                free(alias);
                i = j < nt ? j : nt - 1;
                continue;
            }
            /* array(SELECT ...) -> (SELECT ...): one value */
            if (pg_tok_is(s, k, "array") && i + 2 < nt && s[t[i + 1].start] == '(' &&
                pg_tok_is(s, &t[i + 2], "select"))
                continue;
            if ((pg_tok_is(s, k, "current_user") || pg_tok_is(s, k, "session_user") ||
                 pg_tok_is(s, k, "current_catalog") || pg_tok_is(s, k, "current_role") ||
                 pg_tok_is(s, k, "current_schema")) &&
                !(i + 1 < nt && s[t[i + 1].start] == '(')) {
                char *nm = pg_tok_name(s, k);
                push(&o, ss_sprintf("%s()", nm ? nm : "current_user"), 0);
                free(nm);
                continue;
            }
        }
        push(&o, ss_strndup(p, k->len), 0);
    }
    free(t);
    int rc = o.oom ? SS_ERR_NOMEM : SS_OK;
    for (int i = 0; i < o.n; i++) {
        if (!rc) {
            if (i && !isspace((unsigned char)o.c[i].text[0]))
                ss_buf_putc(res, ' ');
            ss_buf_puts(res, o.c[i].text);
        }
        free(o.c[i].text);
    }
    free(o.c);
    free(o.opens);
    return rc;
}

/* ---- running a query ---- */

/* PostgreSQL's name for an output column SQLite named by its text: a function's name, a
 * column's name (a cast keeps its operand's), a quoted alias with spaces ("ICU Locale": words
 * only), else "?column?". Writes into buf. */
static const char *pg_colname(const char *name, char *buf, size_t n)
{
    while (isspace((unsigned char)*name))
        name++;
    size_t w = 0;
    while (name[w] && (isalnum((unsigned char)name[w]) || name[w] == '_' || name[w] == ' '))
        w++;
    if (w && !name[w] && strchr(name, ' ')) {
        snprintf(buf, n, "%s", name);
        return buf;
    }
    size_t id = 0;
    while (name[id] && (isalnum((unsigned char)name[id]) || name[id] == '_' || name[id] == '.'))
        id++;
    if (id && !name[id]) { /* a (qualified) column */
        const char *dot = strrchr(name, '.');
        snprintf(buf, n, "%s", dot ? dot + 1 : name);
        return buf;
    }
    const char *q = name + id;
    while (isspace((unsigned char)*q))
        q++;
    if (id && *q == '(') {
        if (id == 8 && !strncmp(name, "_pg_cast", 8)) {
            const char *end = strrchr(q, ',');
            char inner[256];
            snprintf(inner, sizeof inner, "%.*s", end ? (int)(end - q - 1) : 0, q + 1);
            pg_colname(inner, buf, n);
            if (strcmp(buf, "?column?"))
                return buf;
            const char *ty = end ? strchr(end, '\'') : NULL; /* a cast of an expression: the type's name */
            snprintf(buf, n, "%.*s", ty ? (int)strcspn(ty + 1, "'") : 8, ty ? ty + 1 : "?column?");
            return buf;
        }
        snprintf(buf, n, "%.*s", (int)id, name);
        return buf;
    }
    snprintf(buf, n, "?column?");
    return buf;
}

static ss_coltype_t col_type(sqlite3_stmt *st, int i)
{
    const char *d = sqlite3_column_decltype(st, i);
    if (!d)
        return SS_COL_ANY;
    if (!strcasecmp(d, "bool"))
        return SS_COL_BOOL;
    if (!strcasecmp(d, "oid") || !strncasecmp(d, "int", 3))
        return SS_COL_INT;
    if (!strncasecmp(d, "float", 5))
        return SS_COL_REAL;
    return SS_COL_TEXT;
}

static int run(cat_t *c, sqlite3_stmt *st, const ss_engine_rs_t *rs, char *err, size_t errsz)
{
    int n = sqlite3_column_count(st);
    pg_result_t r;
    memset(&r, 0, sizeof r);
    const char **names = calloc((size_t)n + 1, sizeof *names);
    ss_coltype_t *types = calloc((size_t)n + 1, sizeof *types);
    char **cells = calloc((size_t)n + 1, sizeof *cells);
    int rc = names && types && cells ? SS_OK : SS_ERR_NOMEM;
    char (*nbuf)[64] = calloc((size_t)n + 1, sizeof *nbuf);
    if (!nbuf)
        rc = SS_ERR_NOMEM;
    for (int i = 0; !rc && i < n; i++) {
        names[i] = pg_colname(sqlite3_column_name(st, i), nbuf[i], sizeof nbuf[i]);
        types[i] = col_type(st, i);
    }
    if (!rc)
        rc = pg_result_set_cols(&r, n, names, types);
    int step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < n; i++) {
            int t = sqlite3_column_type(st, i);
            if (types[i] == SS_COL_ANY && t != SQLITE_NULL) /* expression columns: the first value's type */
                types[i] = t == SQLITE_INTEGER ? SS_COL_INT : t == SQLITE_FLOAT ? SS_COL_REAL : SS_COL_TEXT;
            if (t == SQLITE_NULL)
                cells[i] = NULL;
            else if (types[i] == SS_COL_BOOL)
                cells[i] = ss_strdup(sqlite3_column_int(st, i) ? "t" : "f");
            else if (t == SQLITE_FLOAT)
                cells[i] = ss_sprintf("%.17g", sqlite3_column_double(st, i));
            else
                cells[i] = ss_strdup((const char *)sqlite3_column_text(st, i));
        }
        rc = pg_result_add(&r, n, (const char *const *)cells);
        for (int i = 0; i < n; i++)
            free(cells[i]);
    }
    if (!rc && step != SQLITE_DONE) {
        const char *m = sqlite3_errmsg(c->db);
        rc = c->stopped == SS_ERR_TIMEOUT  ? ss_seterr(err, errsz, SS_ERR_TIMEOUT, "canceling statement due to "
                                                       "statement timeout")
           : c->stopped == SS_ERR_CANCELED ? ss_seterr(err, errsz, SS_ERR_CANCELED, "canceling statement due to user "
                                                       "request")
                                           : ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%s", m);
    }
    for (int i = 0; !rc && i < n; i++)
        if (types[i] == SS_COL_ANY)
            types[i] = SS_COL_TEXT;
    if (!rc)
        rc = rs->columns(rs->ctx, n, names, types);
    for (int64_t k = 0; !rc && k < r.nrows; k++)
        rc = rs->row(rs->ctx, n, (const char *const *)r.cells + k * n);
    if (!rc) {
        char tag[32];
        snprintf(tag, sizeof tag, "SELECT %lld", (long long)r.nrows);
        rc = rs->done(rs->ctx, tag);
    }
    pg_result_clear(&r);
    free(names);
    free(nbuf);
    free(types);
    free(cells);
    return rc;
}

/* Catalogs semstream keeps empty (no policies, publications, triggers, inheritance, ...). */
static const char *const EMPTY_TABLES[] = {
    "pg_policy", "pg_publication", "pg_statistic_ext", "pg_inherits", "pg_trigger", "pg_rewrite", "pg_constraint",
    "pg_index", "pg_partitioned_table", "pg_foreign_table", "pg_event_trigger", "pg_extension", "pg_depend",
    "pg_sequence", "pg_attrdef", "pg_collation", NULL};

/* A query of an always-empty catalog that uses syntax the rewrite does not translate (array
 * subscripts, generate_series...): its answer is no rows, with as many columns as its first
 * SELECT list has. 1 when the query qualifies (rs called). */
static int empty_answer(const char *sql, const ss_engine_rs_t *rs, int *rc)
{
    int hit = 0;
    for (int i = 0; EMPTY_TABLES[i] && !hit; i++)
        hit = strstr(sql, EMPTY_TABLES[i]) != NULL;
    if (!hit)
        return 0;
    size_t n = strlen(sql);
    int nt = pg_lex(sql, n, NULL, 0);
    pg_tok_t *t = calloc((size_t)nt + 1, sizeof *t);
    if (!t)
        return 0;
    pg_lex(sql, n, t, nt);
    int cols = 1, depth = 0, started = 0;
    for (int i = 0; i < nt; i++) {
        const char *p = sql + t[i].start;
        if (!started) {
            started = pg_tok_is(sql, &t[i], "select");
            continue;
        }
        if (t[i].kind == PG_TOK_OP && (*p == '(' || *p == '['))
            depth++;
        else if (t[i].kind == PG_TOK_OP && (*p == ')' || *p == ']'))
            depth--;
        else if (depth == 0 && t[i].kind == PG_TOK_OP && *p == ',')
            cols++;
        else if (depth == 0 && pg_tok_is(sql, &t[i], "from"))
            break;
    }
    free(t);
    const char **names = calloc((size_t)cols, sizeof *names);
    ss_coltype_t *types = calloc((size_t)cols, sizeof *types);
    if (!names || !types) {
        free(names);
        free(types);
        return 0;
    }
    for (int i = 0; i < cols; i++)
        names[i] = "?column?";
    *rc = rs->columns(rs->ctx, cols, names, types);
    if (!*rc)
        *rc = rs->done(rs->ctx, "SELECT 0");
    free(names);
    free(types);
    return 1;
}

int pg_catalog_query(ss_engine_t *e, const pg_settings_t *set, const char *sql, const ss_engine_rs_t *rs,
                     int timeout_ms, volatile sig_atomic_t *cancel, char *err, size_t errsz)
{
    cat_t c;
    memset(&c, 0, sizeof c);
    c.set = set;
    c.cancel = cancel;
    c.building = 1;
    int rc = ss_engine_relations(e, &c.rels, &c.nrels, err, errsz);
    if (rc)
        return rc;
    c.oids = calloc((size_t)c.nrels + 1, sizeof *c.oids);
    if (!c.oids) {
        ss_engine_relations_free(c.rels, c.nrels);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < c.nrels; i++) {
        uint32_t o = name_oid(c.rels[i].is_view ? "v" : "s", c.rels[i].name);
        for (int k = 0; k < i; k++)
            if (c.oids[k] == o)
                o++, k = -1; /* probe past a collision */
        c.oids[i] = o;
    }
    if (sqlite3_open_v2(":memory:", &c.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "cannot open the catalog database");
    for (size_t i = 0; !rc && i < SS_ARRAY_LEN(FUNCS); i++)
        if (sqlite3_create_function(c.db, FUNCS[i].name, FUNCS[i].nargs, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                    FUNCS[i].text ? (void *)FUNCS[i].text : (void *)&c, FUNCS[i].fn, NULL,
                                    NULL) != SQLITE_OK)
            rc = ss_seterr(err, errsz, SS_ERR_INTERNAL, "registering %s", FUNCS[i].name);
    if (!rc) {
        sqlite3_set_authorizer(c.db, authorize, &c);
        rc = build(&c, err, errsz);
    }
    ss_buf_t q = SS_BUF_INIT;
    if (!rc && (rc = rewrite(sql, &q)))
        ss_seterr(err, errsz, rc, "out of memory");
    if (!rc) {
        c.building = 0;
        c.deadline_ns = ss_now_ns() + (int64_t)(timeout_ms > 0 ? timeout_ms : 10000) * 1000000;
        sqlite3_progress_handler(c.db, 1000, progress, &c);
        sqlite3_limit(c.db, SQLITE_LIMIT_LENGTH, 16 << 20);
        sqlite3_limit(c.db, SQLITE_LIMIT_ATTACHED, 2);
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        if (sqlite3_prepare_v2(c.db, ss_buf_cstr(&q), -1, &st, &tail) != SQLITE_OK && !c.denied[0] &&
            empty_answer(sql, rs, &rc)) {
            /* answered: no rows */
        } else if (!st) {
            rc = ss_seterr(err, errsz, c.denied[0] ? SS_ERR_DENIED : SS_ERR_SEMANTIC, "%s (in the catalog query, "
                           "which semstream answers from pg_catalog and information_schema)",
                           c.denied[0] ? c.denied : sqlite3_errmsg(c.db));
            if (strstr(err, "does not exist in this catalog") || strstr(err, "no such function"))
                rc = SS_ERR_UNSUPPORTED;
        } else if (tail && tail[strspn(tail, " \t\r\n;")]) {
            rc = ss_seterr(err, errsz, SS_ERR_PARSE, "cannot run several catalog statements at once");
        } else {
            rc = run(&c, st, rs, err, errsz);
        }
        sqlite3_finalize(st);
    }
    ss_buf_free(&q);
    sqlite3_close(c.db);
    ss_engine_relations_free(c.rels, c.nrels);
    free(c.oids);
    return rc;
}
