/*
 * check_parser.c — tests of the SQL front end (grammar/, src/ast*.c): every
 * statement form parses to the expected AST shape, expressions round-trip
 * through ss_ast_expr_to_sql, templates are scanned, malformed inputs give the
 * exact line:col and message (table-driven), and hostile inputs (random bytes,
 * 1 MB of garbage, deep nesting, NUL bytes) neither crash nor leak.
 */
#include "ss_ast.h"
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char err[SS_ERRSZ];

static ss_ast_script_t *parse_ok(const char *sql)
{
    ss_ast_script_t *s = NULL;
    int rc = ss_parse(sql, strlen(sql), NULL, &s, err, sizeof err);
    ck_assert_msg(rc == SS_OK, "parse failed for [%s]: %s", sql, err);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* Parses a single-statement script; the caller frees the script. */
static ss_ast_stmt_t *stmt1(const char *sql, ss_ast_script_t **sp)
{
    *sp = parse_ok(sql);
    ck_assert_int_eq((*sp)->n, 1);
    return (*sp)->stmts[0];
}

static char *sql_of(const ss_ast_expr_t *e)
{
    ss_buf_t b = SS_BUF_INIT;
    ck_assert_int_eq(ss_ast_expr_to_sql(e, &b), SS_OK);
    return ss_buf_take(&b);
}

static void assert_sql(const ss_ast_expr_t *e, const char *want)
{
    char *got = sql_of(e);
    ck_assert_str_eq(got, want);
    free(got);
}

static int parse_fails(const char *sql, size_t len)
{
    ss_ast_script_t *s = (ss_ast_script_t *)1;
    int rc = ss_parse(sql, len, NULL, &s, err, sizeof err);
    ck_assert_ptr_null(s);
    return rc;
}

/* ---- statement shapes ---- */
START_TEST(test_create_stream)
{
    ss_ast_script_t *sc;
    ss_ast_stmt_t *s = stmt1("CREATE STREAM IF NOT EXISTS papers (id INT KEY, title TEXT, abstract VARCHAR(200),\n"
                             "  score DOUBLE, ok BOOLEAN, n BIGINT PRIMARY KEY, key string, f float, b bool)\n"
                             "WITH (topic='papers', format='debezium', ttl='1 hour', ttl_column=ts, parts=4)",
                             &sc);
    ck_assert_int_eq(s->kind, SS_STMT_CREATE_STREAM);
    ck_assert_str_eq(s->name, "papers");
    ck_assert_int_eq(s->if_not_exists, 1);
    ck_assert_int_eq(s->name_span.line, 1);
    ck_assert_int_eq(s->name_span.col, 29);
    ck_assert_int_eq(s->ncols, 9);
    static const struct { const char *n; ss_coltype_t t; int key; } want[] = {
        {"id", SS_COL_INT, 1}, {"title", SS_COL_TEXT, 0}, {"abstract", SS_COL_TEXT, 0},
        {"score", SS_COL_REAL, 0}, {"ok", SS_COL_BOOL, 0}, {"n", SS_COL_INT, 1},
        {"key", SS_COL_TEXT, 0}, {"f", SS_COL_REAL, 0}, {"b", SS_COL_BOOL, 0},
    };
    for (int i = 0; i < 9; i++) {
        ck_assert_str_eq(s->cols[i].name, want[i].n);
        ck_assert_int_eq(s->cols[i].type, want[i].t);
        ck_assert_int_eq(s->cols[i].is_key, want[i].key);
    }
    ck_assert_int_eq(s->cols[1].span.line, 1);
    ck_assert_int_eq(s->cols[6].span.line, 2);
    ck_assert_int_eq(s->opts->n, 5);
    const ss_ast_option_t *o = ss_ast_option_get(s->opts, "FORMAT");
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(o->value.t, SS_TEXT);
    ck_assert_str_eq(o->value.u.str.s, "debezium");
    o = ss_ast_option_get(s->opts, "ttl_column");
    ck_assert_str_eq(o->value.u.str.s, "ts");
    ck_assert_int_eq(ss_ast_option_get(s->opts, "parts")->value.u.i, 4);
    ck_assert_ptr_null(ss_ast_option_get(s->opts, "nope"));
    ck_assert_str_eq(s->text, "CREATE STREAM IF NOT EXISTS papers (id INT KEY, title TEXT, abstract VARCHAR(200),\n"
                              "  score DOUBLE, ok BOOLEAN, n BIGINT PRIMARY KEY, key string, f float, b bool)\n"
                              "WITH (topic='papers', format='debezium', ttl='1 hour', ttl_column=ts, parts=4)");
    ss_ast_script_free(sc);

    s = stmt1("create stream s (a text)", &sc);
    ck_assert_int_eq(s->if_not_exists, 0);
    ck_assert_ptr_null(s->opts);
    ss_ast_script_free(sc);
}
END_TEST

START_TEST(test_create_view_select)
{
    ss_ast_script_t *sc;
    ss_ast_stmt_t *s = stmt1(
        "CREATE CONTINUOUS VIEW IF NOT EXISTS ml WITH (sink_topic='ml_out') AS\n"
        "SELECT DISTINCT p.id, p.title AS t, SEM_MAP('Summarize {p.title}: {abstract}', model='m', max_tokens=40) AS summary, *\n"
        "FROM papers AS p\n"
        "WHERE SEM_FILTER('Is {abstract} about ML?') AND p.year >= 2020 OR NOT p.draft",
        &sc);
    ck_assert_int_eq(s->kind, SS_STMT_CREATE_VIEW);
    ck_assert_str_eq(s->name, "ml");
    ck_assert_int_eq(s->if_not_exists, 1);
    ck_assert_str_eq(ss_ast_option_get(s->opts, "sink_topic")->value.u.str.s, "ml_out");
    ck_assert_int_eq(s->query->kind, SS_Q_SELECT);
    ss_ast_select_t *q = s->query->select;
    ck_assert_int_eq(q->distinct, 1);
    ck_assert_int_eq(q->nitems, 4);
    ck_assert_int_eq(q->items[0].expr->kind, SS_AX_COLUMN);
    ck_assert_str_eq(q->items[0].expr->table, "p");
    ck_assert_str_eq(q->items[0].expr->name, "id");
    ck_assert_ptr_null(q->items[0].alias);
    ck_assert_str_eq(q->items[1].alias, "t");
    ss_ast_expr_t *m = q->items[2].expr;
    ck_assert_int_eq(m->kind, SS_AX_SEM);
    ck_assert_int_eq(m->sem, SS_SEM_MAP);
    ck_assert_str_eq(m->tmpl, "Summarize {p.title}: {abstract}");
    ck_assert_int_eq(m->tmpl_span.line, 2);
    ck_assert_int_eq(m->tmpl_span.col, 45);
    ck_assert_int_eq(m->opts->n, 2);
    ck_assert_str_eq(ss_ast_option_get(m->opts, "model")->value.u.str.s, "m");
    ck_assert_int_eq(ss_ast_option_get(m->opts, "max_tokens")->value.u.i, 40);
    ck_assert_str_eq(q->items[2].alias, "summary");
    ck_assert_int_eq(q->items[3].expr->kind, SS_AX_STAR);
    ck_assert_ptr_null(q->items[3].expr->table);
    ck_assert_int_eq(q->from->kind, SS_FROM_TABLE);
    ck_assert_str_eq(q->from->name, "papers");
    ck_assert_str_eq(q->from->alias, "p");
    /* OR binds looser than AND */
    ss_ast_expr_t *w = q->where;
    ck_assert_int_eq(w->kind, SS_AX_BINARY);
    ck_assert_int_eq(w->op, SS_OP_OR);
    ck_assert_int_eq(w->left->op, SS_OP_AND);
    ck_assert_int_eq(w->left->left->kind, SS_AX_SEM);
    ck_assert_int_eq(w->left->left->sem, SS_SEM_FILTER);
    ck_assert_str_eq(w->left->left->tmpl, "Is {abstract} about ML?");
    ck_assert_ptr_null(w->left->left->opts);
    ck_assert_int_eq(w->right->kind, SS_AX_UNARY);
    ck_assert_int_eq(w->right->op, SS_OP_NOT);
    ck_assert_int_eq(w->span.line, 4);
    ck_assert_int_eq(w->span.col, 7);
    ck_assert_ptr_null(q->group_by);
    ck_assert_int_eq(q->limit, -1);
    ss_ast_script_free(sc);
}
END_TEST

START_TEST(test_group_by_sem_agg)
{
    ss_ast_script_t *sc;
    ss_ast_stmt_t *s = stmt1("CREATE VIEW topics AS SELECT category, COUNT(*) AS n, "
                             "SEM_AGG('Summarize the common theme of {title}') AS theme, sum(score) "
                             "FROM papers GROUP BY category HAVING COUNT(*) > 2 ORDER BY n DESC LIMIT 5;",
                             &sc);
    ss_ast_select_t *q = s->query->select;
    ck_assert_int_eq(q->nitems, 4);
    ss_ast_expr_t *c = q->items[1].expr;
    ck_assert_int_eq(c->kind, SS_AX_FUNC);
    ck_assert_str_eq(c->name, "COUNT");
    ck_assert_int_eq(c->args->n, 1);
    ck_assert_int_eq(c->args->items[0]->kind, SS_AX_STAR);
    ck_assert_int_eq(q->items[2].expr->sem, SS_SEM_AGG);
    ck_assert_str_eq(q->items[3].expr->name, "SUM");
    ck_assert_int_eq(q->group_by->n, 1);
    ck_assert_str_eq(q->group_by->items[0]->name, "category");
    ck_assert_int_eq(q->having->op, SS_OP_GT);
    ck_assert_int_eq(q->norder, 1);
    ck_assert_int_eq(q->order[0].desc, 1);
    ck_assert_int_eq(q->limit, 5);
    ss_ast_script_free(sc);
}
END_TEST

START_TEST(test_joins)
{
    ss_ast_script_t *sc;
    ss_ast_stmt_t *s = stmt1("CREATE CONTINUOUS VIEW j AS SELECT a.x, b.* FROM a INNER JOIN b ON a.k = b.k "
                             "LEFT JOIN c cc ON cc.k = a.k JOIN d ON d.k = a.k LEFT OUTER JOIN e ON TRUE",
                             &sc);
    ss_ast_select_t *q = s->query->select;
    ck_assert_int_eq(q->items[1].expr->kind, SS_AX_STAR);
    ck_assert_str_eq(q->items[1].expr->table, "b");
    ss_ast_from_t *f = q->from; /* left-deep: (((a ⋈ b) ⟕ c) ⋈ d) ⟕ e */
    ck_assert_int_eq(f->kind, SS_FROM_JOIN);
    ck_assert_int_eq(f->join_type, SS_JOIN_LEFT);
    ck_assert_str_eq(f->right->name, "e");
    f = f->left;
    ck_assert_int_eq(f->join_type, SS_JOIN_INNER);
    ck_assert_str_eq(f->right->name, "d");
    f = f->left;
    ck_assert_int_eq(f->join_type, SS_JOIN_LEFT);
    ck_assert_str_eq(f->right->name, "c");
    ck_assert_str_eq(f->right->alias, "cc");
    assert_sql(f->on, "cc.k = a.k");
    f = f->left;
    ck_assert_int_eq(f->join_type, SS_JOIN_INNER);
    ck_assert_str_eq(f->left->name, "a");
    ck_assert_str_eq(f->right->name, "b");
    ss_ast_script_free(sc);

    s = stmt1("CREATE CONTINUOUS VIEW m AS SELECT r.name, j.title FROM resumes r SEM_JOIN jobs j "
              "ON 'Is {r.summary} a good fit for {j.description}?' WITH (join_candidates=10, threshold=0.3) "
              "WHERE j.open",
              &sc);
    f = s->query->select->from;
    ck_assert_int_eq(f->kind, SS_FROM_SEM_JOIN);
    ck_assert_str_eq(f->left->name, "resumes");
    ck_assert_str_eq(f->left->alias, "r");
    ck_assert_str_eq(f->right->alias, "j");
    ck_assert_str_eq(f->tmpl, "Is {r.summary} a good fit for {j.description}?");
    ck_assert_int_eq(ss_ast_option_get(f->opts, "join_candidates")->value.u.i, 10);
    const ss_ast_option_t *th = ss_ast_option_get(f->opts, "threshold");
    ck_assert_int_eq(th->value.t, SS_REAL);
    ck_assert_double_eq_tol(th->value.u.r, 0.3, 1e-12);
    ck_assert_ptr_nonnull(s->query->select->where);
    ss_ast_script_free(sc);
}
END_TEST

/* Set operations (INTERSECT binds tighter), WITH, subqueries, USING/NATURAL/comma joins,
 * aggregate ORDER BY / FILTER, windows, OFFSET. */
START_TEST(test_query_structure)
{
    ss_ast_script_t *sc;
    ss_ast_stmt_t *s = stmt1("CREATE VIEW u AS SELECT a FROM s UNION ALL SELECT a FROM t EXCEPT SELECT a FROM v "
                             "INTERSECT ALL SELECT a FROM w ORDER BY 1 LIMIT 3 OFFSET 2", &sc);
    ss_ast_select_t *q = s->query->select; /* (s UNION ALL t) EXCEPT (v INTERSECT ALL w) */
    ck_assert_int_eq(q->setop, SS_SETOP_EXCEPT);
    ck_assert_int_eq(q->left->setop, SS_SETOP_UNION_ALL);
    ck_assert_str_eq(q->left->right->from->name, "t");
    ck_assert_int_eq(q->right->setop, SS_SETOP_INTERSECT_ALL);
    ck_assert_str_eq(q->right->left->from->name, "v");
    ck_assert_int_eq(q->norder, 1);
    ck_assert_int_eq(q->limit, 3);
    ck_assert_int_eq(q->offset, 2);
    ck_assert_int_eq(q->left->left->limit, -1);
    ss_ast_script_free(sc);

    s = stmt1("WITH x AS (SELECT a FROM s), y (k) AS (SELECT a FROM x) "
              "SELECT * FROM (SELECT k FROM y) AS z WHERE k IN (SELECT a FROM t) AND NOT EXISTS (SELECT 1 FROM u) "
              "AND k NOT IN (SELECT b FROM v) AND (SELECT MAX(a) FROM s) > 1", &sc);
    q = s->query->select;
    ck_assert_int_eq(q->ncte, 2);
    ck_assert_str_eq(q->ctes[0].name, "x");
    ck_assert_int_eq(q->ctes[1].ncols, 1);
    ck_assert_str_eq(q->ctes[1].cols[0], "k");
    ck_assert_str_eq(q->ctes[1].select->from->name, "x");
    ck_assert_int_eq(q->from->kind, SS_FROM_SUBQUERY);
    ck_assert_str_eq(q->from->alias, "z");
    ck_assert_str_eq(q->from->sub->from->name, "y");
    const ss_ast_expr_t *w = q->where; /* ((IN AND NOT EXISTS) AND NOT IN) AND scalar > 1 */
    ck_assert_int_eq(w->right->left->kind, SS_AX_SUBQUERY);
    ck_assert_int_eq(w->left->right->kind, SS_AX_IN_SELECT);
    ck_assert_int_eq(w->left->right->op, SS_OP_NOT);
    ck_assert_int_eq(w->left->left->right->kind, SS_AX_UNARY);
    ck_assert_int_eq(w->left->left->right->left->kind, SS_AX_EXISTS);
    ck_assert_int_eq(w->left->left->left->kind, SS_AX_IN_SELECT);
    ck_assert_int_eq(w->left->left->left->op, SS_OP_NONE);
    ck_assert_str_eq(w->left->left->left->left->name, "k");
    ss_ast_script_free(sc);

    s = stmt1("SELECT * FROM a RIGHT OUTER JOIN b USING (k, j) FULL JOIN c ON TRUE CROSS JOIN d, e "
              "NATURAL LEFT JOIN f", &sc);
    ss_ast_from_t *f = s->query->select->from;
    ck_assert_int_eq(f->join_type, SS_JOIN_LEFT);
    ck_assert_int_eq(f->natural, 1);
    f = f->left;
    ck_assert_int_eq(f->join_type, SS_JOIN_CROSS);
    ck_assert_int_eq(f->comma, 1);
    f = f->left;
    ck_assert_int_eq(f->join_type, SS_JOIN_CROSS);
    ck_assert_int_eq(f->comma, 0);
    f = f->left;
    ck_assert_int_eq(f->join_type, SS_JOIN_FULL);
    f = f->left;
    ck_assert_int_eq(f->join_type, SS_JOIN_RIGHT);
    ck_assert_int_eq(f->nusing, 2);
    ck_assert_str_eq(f->using_cols[1], "j");
    ck_assert_ptr_null(f->on);
    ss_ast_script_free(sc);

    s = stmt1("SELECT string_agg(x, ',' ORDER BY y DESC) FILTER (WHERE y > 0), "
              "rank() OVER (PARTITION BY g ORDER BY y), right(x, 2), full FROM t", &sc);
    q = s->query->select;
    const ss_ast_expr_t *e = q->items[0].expr;
    ck_assert_int_eq(e->norder, 1);
    ck_assert_int_eq(e->order[0].desc, 1);
    assert_sql(e->filter, "y > 0");
    ck_assert_ptr_null(e->over);
    e = q->items[1].expr;
    ck_assert_int_eq(e->over->partition->n, 1);
    ck_assert_int_eq(e->over->norder, 1);
    ck_assert_str_eq(q->items[2].expr->name, "RIGHT"); /* contextual keywords are names elsewhere */
    ck_assert_str_eq(q->items[3].expr->name, "full");
    ss_ast_script_free(sc);
}
END_TEST

START_TEST(test_sem_rank_score)
{
    ss_ast_script_t *sc;
    ss_ast_stmt_t *s = stmt1("CREATE CONTINUOUS VIEW top AS SELECT * FROM papers "
                             "ORDER BY SEM_RANK('Which of {title} is most novel?') LIMIT 3", &sc);
    ss_ast_select_t *q = s->query->select;
    ck_assert_int_eq(q->norder, 1);
    ck_assert_int_eq(q->order[0].expr->sem, SS_SEM_RANK);
    ck_assert_int_eq(q->order[0].desc, 0);
    ck_assert_int_eq(q->limit, 3);
    ss_ast_script_free(sc);
    s = stmt1("CREATE CONTINUOUS VIEW top AS SELECT id FROM papers "
              "ORDER BY SEM_SCORE('Rate the novelty of {title}', model='judge') DESC LIMIT 10", &sc);
    q = s->query->select;
    ck_assert_int_eq(q->order[0].expr->sem, SS_SEM_SCORE);
    ck_assert_int_eq(q->order[0].desc, 1);
    ck_assert_str_eq(ss_ast_option_get(q->order[0].expr->opts, "model")->value.u.str.s, "judge");
    ck_assert_int_eq(q->limit, 10);
    ss_ast_script_free(sc);
}
END_TEST

static const char *chatbot =
    "-- Continuous \"query\" defining the behavior of an LLM-based chatbot\n"
    "CREATE CONTINUOUS VIEW response_stream AS\n"
    "LLM_GENERATE(\n"
    "    PROMPT=\"Given conversation context and support docs, generate a helpful response.\",\n"
    "    CONTEXT=STREAM(conversation_events),        -- user interactions, updates incrementally\n"
    "    DATA_SOURCE=STREAM(support_docs_or_events)  -- knowledge updates streamed incrementally\n"
    ");\n";

START_TEST(test_llm_generate)
{
    ss_ast_script_t *sc;
    ss_ast_stmt_t *s = stmt1(chatbot, &sc);
    ck_assert_int_eq(s->kind, SS_STMT_CREATE_VIEW);
    ck_assert_str_eq(s->name, "response_stream");
    ck_assert_int_eq(s->span.line, 2);
    ck_assert_int_eq(s->span.col, 1);
    ck_assert_int_eq(s->query->kind, SS_Q_GENERATE);
    ss_ast_generate_t *g = s->query->generate;
    ck_assert_str_eq(g->prompt, "Given conversation context and support docs, generate a helpful response.");
    ck_assert_str_eq(g->context_stream, "conversation_events");
    ck_assert_str_eq(g->data_stream, "support_docs_or_events");
    ck_assert_int_eq(g->opts->n, 0);
    ck_assert_int_eq(g->span.line, 3);
    ck_assert(strncmp(s->text, "CREATE CONTINUOUS VIEW response_stream AS\nLLM_GENERATE(", 55) == 0);
    ck_assert(s->text[strlen(s->text) - 1] == ')');
    ss_ast_script_free(sc);

    s = stmt1("create continuous view r with (sink_topic='r') as llm_generate(prompt='Answer {question}', "
              "context=stream(chat), key=user_id, retrieve=3, maintain='recompute', model=\"small\")", &sc);
    g = s->query->generate;
    ck_assert_str_eq(g->prompt, "Answer {question}");
    ck_assert_str_eq(g->context_stream, "chat");
    ck_assert_ptr_null(g->data_stream);
    ck_assert_int_eq(g->opts->n, 4);
    ck_assert_str_eq(ss_ast_option_get(g->opts, "key")->value.u.str.s, "user_id");
    ck_assert_int_eq(ss_ast_option_get(g->opts, "retrieve")->value.u.i, 3);
    ck_assert_str_eq(ss_ast_option_get(g->opts, "MAINTAIN")->value.u.str.s, "recompute");
    ck_assert_str_eq(ss_ast_option_get(g->opts, "model")->value.u.str.s, "small");
    ck_assert_str_eq(g->opts->items[0].name, "key");
    ss_ast_script_free(sc);
}
END_TEST

START_TEST(test_model_set)
{
    ss_ast_script_t *sc = parse_ok("CREATE MODEL small WITH (backend='local', path='../shared/models/x.gguf', ctx=512);\n"
                                   "CREATE MODEL IF NOT EXISTS big WITH (backend='openai', url='http://h:1/v1', temperature=-0.5);\n"
                                   "SET batch_size = 16; SET default_model = small; SET mode = 'fast'; SET x = -3;"
                                   "SET flag = true");
    ck_assert_int_eq(sc->n, 7);
    ss_ast_stmt_t *s = sc->stmts[0];
    ck_assert_int_eq(s->kind, SS_STMT_CREATE_MODEL);
    ck_assert_str_eq(s->name, "small");
    ck_assert_str_eq(ss_ast_option_get(s->opts, "backend")->value.u.str.s, "local");
    ck_assert_int_eq(ss_ast_option_get(s->opts, "ctx")->value.u.i, 512);
    s = sc->stmts[1];
    ck_assert_int_eq(s->if_not_exists, 1);
    ck_assert_double_eq(ss_ast_option_get(s->opts, "temperature")->value.u.r, -0.5);
    s = sc->stmts[2];
    ck_assert_int_eq(s->kind, SS_STMT_SET);
    ck_assert_str_eq(s->name, "batch_size");
    ck_assert_int_eq(s->set_value.t, SS_INT);
    ck_assert_int_eq(s->set_value.u.i, 16);
    ck_assert_str_eq(sc->stmts[3]->set_value.u.str.s, "small");
    ck_assert_str_eq(sc->stmts[4]->set_value.u.str.s, "fast");
    ck_assert_int_eq(sc->stmts[5]->set_value.u.i, -3);
    ck_assert_int_eq(sc->stmts[6]->set_value.u.i, 1);
    ck_assert_str_eq(sc->stmts[3]->text, "SET default_model = small");
    ss_ast_script_free(sc);
}
END_TEST

START_TEST(test_admin_statements)
{
    ss_ast_script_t *sc = parse_ok("DROP STREAM s; drop view if exists v; DROP MODEL m;\n"
                                   "SHOW STREAMS; show views; SHOW MODELS;\n"
                                   "SUBSCRIBE v; EXPLAIN v; EXPLAIN VIEW v2;\n"
                                   "EXPLAIN SELECT a FROM t WHERE SEM_FILTER('{a}');\n"
                                   "EXPLAIN LLM_GENERATE(PROMPT='p', CONTEXT=STREAM(c))");
    ck_assert_int_eq(sc->n, 11);
    ss_ast_stmt_t **s = sc->stmts;
    ck_assert_int_eq(s[0]->kind, SS_STMT_DROP);
    ck_assert_int_eq(s[0]->object, SS_OBJ_STREAM);
    ck_assert_int_eq(s[0]->if_exists, 0);
    ck_assert_int_eq(s[1]->object, SS_OBJ_VIEW);
    ck_assert_int_eq(s[1]->if_exists, 1);
    ck_assert_str_eq(s[1]->name, "v");
    ck_assert_int_eq(s[2]->object, SS_OBJ_MODEL);
    for (int i = 3; i < 6; i++)
        ck_assert_int_eq(s[i]->kind, SS_STMT_SHOW);
    ck_assert_int_eq(s[3]->object, SS_OBJ_STREAM);
    ck_assert_int_eq(s[4]->object, SS_OBJ_VIEW);
    ck_assert_int_eq(s[5]->object, SS_OBJ_MODEL);
    ck_assert_int_eq(s[6]->kind, SS_STMT_SUBSCRIBE);
    ck_assert_str_eq(s[6]->name, "v");
    ck_assert_int_eq(s[7]->kind, SS_STMT_EXPLAIN);
    ck_assert_str_eq(s[7]->name, "v");
    ck_assert_ptr_null(s[7]->query);
    ck_assert_str_eq(s[8]->name, "v2");
    ck_assert_ptr_null(s[9]->name);
    ck_assert_int_eq(s[9]->query->kind, SS_Q_SELECT);
    ck_assert_int_eq(s[10]->query->kind, SS_Q_GENERATE);
    ck_assert_int_eq(s[6]->span.line, 3);
    ck_assert_int_eq(s[7]->span.col, 14);
    ss_ast_script_free(sc);
}
END_TEST

START_TEST(test_snapshot_select)
{
    ss_ast_script_t *sc;
    ss_ast_stmt_t *s = stmt1("SELECT title, summary FROM ml WHERE score > 0.5 AND title LIKE '%LLM%' "
                             "ORDER BY score DESC, title LIMIT 20", &sc);
    ck_assert_int_eq(s->kind, SS_STMT_SELECT);
    ck_assert_int_eq(s->query->kind, SS_Q_SELECT);
    ss_ast_select_t *q = s->query->select;
    ck_assert_str_eq(q->from->name, "ml");
    ck_assert_int_eq(q->norder, 2);
    ck_assert_int_eq(q->order[0].desc, 1);
    ck_assert_int_eq(q->order[1].desc, 0);
    ck_assert_int_eq(q->limit, 20);
    assert_sql(q->where, "score > 0.5 AND title LIKE '%LLM%'");
    ss_ast_script_free(sc);
    s = stmt1("select 1 + 2", &sc);
    ck_assert_ptr_null(s->query->select->from);
    ss_ast_script_free(sc);
}
END_TEST

START_TEST(test_insert_delete)
{
    ss_ast_script_t *sc = parse_ok("INSERT INTO papers (id, title, score) VALUES (1, 'It''s a \"test\"', 0.5), "
                                   "(2, NULL, -7);\n"
                                   "insert into papers values (3, 'x', 1e3, TRUE, FALSE);\n"
                                   "DELETE FROM papers WHERE id = 1 OR title IS NULL;\n"
                                   "DELETE FROM papers");
    ck_assert_int_eq(sc->n, 4);
    ss_ast_stmt_t *s = sc->stmts[0];
    ck_assert_int_eq(s->kind, SS_STMT_INSERT);
    ck_assert_str_eq(s->name, "papers");
    ck_assert_int_eq(s->ninsert_cols, 3);
    ck_assert_str_eq(s->insert_cols[2], "score");
    ck_assert_int_eq(s->nrows, 2);
    ck_assert_int_eq(s->rows[0]->n, 3);
    ss_ast_expr_t *v = s->rows[0]->items[1];
    ck_assert_int_eq(v->kind, SS_AX_LITERAL);
    ck_assert_int_eq(v->lit.t, SS_TEXT);
    ck_assert_str_eq(v->lit.u.str.s, "It's a \"test\"");
    ck_assert_uint_eq(v->lit.u.str.n, 13);
    ck_assert_int_eq(s->rows[1]->items[1]->lit.t, SS_NULL);
    v = s->rows[1]->items[2]; /* -7 folds into a literal */
    ck_assert_int_eq(v->kind, SS_AX_LITERAL);
    ck_assert_int_eq(v->lit.u.i, -7);
    s = sc->stmts[1];
    ck_assert_ptr_null(s->insert_cols);
    ck_assert_int_eq(s->rows[0]->n, 5);
    ck_assert_int_eq(s->rows[0]->items[2]->lit.t, SS_REAL);
    ck_assert_double_eq(s->rows[0]->items[2]->lit.u.r, 1000.0);
    ck_assert_int_eq(s->rows[0]->items[3]->lit.u.i, 1);
    s = sc->stmts[2];
    ck_assert_int_eq(s->kind, SS_STMT_DELETE);
    assert_sql(s->where, "id = 1 OR title IS NULL");
    ck_assert_ptr_null(sc->stmts[3]->where);
    ss_ast_script_free(sc);
}
END_TEST

/* ---- expressions ---- */
START_TEST(test_expr_precedence)
{
    static const struct { const char *in, *out; } cases[] = {
        {"a + b * c", "a + b * c"},
        {"(a + b) * c", "(a + b) * c"},
        {"a - (b - c)", "a - (b - c)"},
        {"a - b - c", "a - b - c"},
        {"a || b || 'c'", "a || b || 'c'"},
        {"a * b || c", "a * b || c"},
        {"(a * b) || c", "(a * b) || c"},
        {"a * (b || c)", "a * b || c"},
        {"NOT a = b", "NOT a = b"},
        {"NOT (a OR b)", "NOT (a OR b)"},
        {"a OR b AND c", "a OR b AND c"},
        {"(a OR b) AND c", "(a OR b) AND c"},
        {"a < b = TRUE", "a < b = 1"},
        {"x IS NOT NULL AND y IS NULL", "x IS NOT NULL AND y IS NULL"},
        {"(a = b) IS NULL", "(a = b) IS NULL"},
        {"a NOT LIKE 'x%'", "NOT a LIKE 'x%'"},
        {"- - x", "-(-x)"},
        {"-(3)", "-3"},
        {"- -3", "3"},
        {"-x * 2", "-x * 2"},
        {"-(x + 1)", "-(x + 1)"},
        {"a % 3 <> 0", "a % 3 != 0"},
        {"a == 1", "a = 1"},
        {"lower(t.name) LIKE 'a%'", "LOWER(t.name) LIKE 'a%'"},
        {"coalesce(a, b, 'z')", "COALESCE(a, b, 'z')"},
        {"count(DISTINCT x)", "COUNT(DISTINCT x)"},
        {"count(*)", "COUNT(*)"},
        {"now()", "NOW()"},
        {"\"my f\"(x) + \"select\"()", "\"MY F\"(x) + \"SELECT\"()"},
        {"\"select\" + \"a b\" + \"q\"\"x\"", "\"select\" + \"a b\" + \"q\"\"x\""},
        {"1.5e3 + .5 + 2.", "1500.0 + 0.5 + 2.0"},
        {"9223372036854775807", "9223372036854775807"},
        {"'it''s'", "'it''s'"},
        {"SEM_FILTER('is {x} ok?') AND y", "SEM_FILTER('is {x} ok?') AND y"},
        {"SEM_MAP('{a}''s', model = 'm', n = 2)", "SEM_MAP('{a}''s', model = 'm', n = 2)"},
        {"a / b / c", "a / b / c"},
        {"a / (b / c)", "a / (b / c)"},
        {"a >= 1 AND a <= 2 OR a > 3 AND a < 4", "a >= 1 AND a <= 2 OR a > 3 AND a < 4"},
        {"x.key + \"from\".view", "x.key + \"from\".view"},
    };
    for (size_t i = 0; i < SS_ARRAY_LEN(cases); i++) {
        char sql[512];
        snprintf(sql, sizeof sql, "SELECT %s FROM t", cases[i].in);
        ss_ast_script_t *sc = parse_ok(sql);
        ss_ast_expr_t *e = sc->stmts[0]->query->select->items[0].expr;
        char *out = sql_of(e);
        ck_assert_msg(!strcmp(out, cases[i].out), "[%s] rendered [%s], want [%s]", cases[i].in, out, cases[i].out);
        /* round trip: rendering re-parses to the same rendering */
        snprintf(sql, sizeof sql, "SELECT %s FROM t", out);
        ss_ast_script_t *sc2 = parse_ok(sql);
        char *out2 = sql_of(sc2->stmts[0]->query->select->items[0].expr);
        ck_assert_str_eq(out, out2);
        free(out);
        free(out2);
        ss_ast_script_free(sc);
        ss_ast_script_free(sc2);
    }
}
END_TEST

START_TEST(test_expr_shape)
{
    ss_ast_script_t *sc = parse_ok("SELECT a + b * c, x IS NOT NULL, -y, t.c FROM t");
    ss_ast_select_t *q = sc->stmts[0]->query->select;
    ss_ast_expr_t *e = q->items[0].expr;
    ck_assert_int_eq(e->op, SS_OP_ADD);
    ck_assert_int_eq(e->right->op, SS_OP_MUL);
    ck_assert_int_eq(e->span.col, 8);
    ck_assert_int_eq(e->span.len, 9);
    ck_assert_int_eq(e->right->span.col, 12);
    ck_assert_int_eq(e->right->span.len, 5);
    e = q->items[1].expr;
    ck_assert_int_eq(e->kind, SS_AX_IS_NULL);
    ck_assert_int_eq(e->op, SS_OP_NOT);
    ck_assert_int_eq(e->span.len, 13);
    e = q->items[2].expr;
    ck_assert_int_eq(e->kind, SS_AX_UNARY);
    ck_assert_int_eq(e->op, SS_OP_NEG);
    ck_assert_str_eq(ss_ast_op_name(SS_OP_NE), "!=");
    ck_assert_str_eq(ss_sem_kind_name(SS_SEM_SCORE), "SEM_SCORE");
    ss_ast_script_free(sc);
}
END_TEST

/* ---- scripts ---- */
START_TEST(test_script)
{
    ss_ast_script_t *sc = parse_ok(";;  -- only comments\n/* block\n comment */ ;");
    ck_assert_int_eq(sc->n, 0);
    ss_ast_script_free(sc);
    sc = parse_ok("");
    ck_assert_int_eq(sc->n, 0);
    ss_ast_script_free(sc);
    sc = parse_ok("SHOW STREAMS;;\n  SUBSCRIBE v /* trailing */ ;\nselect a from t -- last\n");
    ck_assert_int_eq(sc->n, 3);
    ck_assert_str_eq(sc->stmts[0]->text, "SHOW STREAMS");
    ck_assert_str_eq(sc->stmts[1]->text, "SUBSCRIBE v");
    ck_assert_str_eq(sc->stmts[2]->text, "select a from t");
    ck_assert_int_eq(sc->stmts[1]->span.line, 2);
    ck_assert_int_eq(sc->stmts[1]->span.col, 3);
    ck_assert_int_eq(sc->stmts[2]->span.line, 3);
    ss_ast_script_free(sc);
    /* keywords are case-insensitive; non-reserved ones work as names */
    sc = parse_ok("CrEaTe StReAm stream (key TEXT KEY, view INT, model REAL, streams BOOL); "
                  "sElEcT key, view FROM stream WHERE model > 1");
    ck_assert_str_eq(sc->stmts[0]->name, "stream");
    ck_assert_str_eq(sc->stmts[0]->cols[0].name, "key");
    ck_assert_int_eq(sc->stmts[0]->cols[0].is_key, 1);
    ck_assert_str_eq(sc->stmts[1]->query->select->items[1].expr->name, "view");
    ss_ast_script_free(sc);
}
END_TEST

/* ---- templates ---- */
START_TEST(test_templates)
{
    char **refs = NULL;
    int n = ss_template_refs("Is {abstract} about {p.topic}? { title }", &refs, err, sizeof err);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(refs[0], "abstract");
    ck_assert_str_eq(refs[1], "p.topic");
    ck_assert_str_eq(refs[2], "title");
    for (int i = 0; i < n; i++)
        free(refs[i]);
    free(refs);
    ck_assert_int_eq(ss_template_refs("no refs", &refs, err, sizeof err), 0);
    free(refs);
    static const struct { const char *t, *msg; } bad[] = {
        {"open {x", "offset 6: unbalanced '{'"},
        {"close x}", "offset 8: unbalanced '}'"},
        {"empty {} here", "offset 7: empty reference {}"},
        {"nested {a{b}}", "offset 8: unbalanced '{'"},
        {"bad {a b}", "offset 6: invalid reference"},
        {"bad {a.b.c}", "offset 6: invalid reference"},
        {"bad {1x}", "offset 6: invalid reference"},
    };
    for (size_t i = 0; i < SS_ARRAY_LEN(bad); i++) {
        refs = (char **)1;
        ck_assert_int_eq(ss_template_refs(bad[i].t, &refs, err, sizeof err), -1);
        ck_assert_ptr_null(refs);
        ck_assert_msg(strstr(err, bad[i].msg), "[%s]: got [%s], want [%s]", bad[i].t, err, bad[i].msg);
    }
}
END_TEST


/* ---- golden files: tests/sql/NAME.sql -> tests/sql/expected/NAME.out ---- */

/* Canonical SQL of every statement of a script, one per line. */
static char *canonical(const char *sql, size_t len, int *nstmts)
{
    ss_ast_script_t *sc = NULL;
    int rc = ss_parse(sql, len, NULL, &sc, err, sizeof err);
    ck_assert_msg(rc == SS_OK, "%s", err);
    ss_buf_t b = SS_BUF_INIT;
    for (int i = 0; i < sc->n; i++) {
        ck_assert_int_eq(ss_ast_stmt_to_sql(sc->stmts[i], &b), SS_OK);
        ss_buf_puts(&b, ";\n");
    }
    *nstmts = sc->n;
    ss_ast_script_free(sc);
    return ss_buf_take(&b);
}

START_TEST(test_golden)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/sql", tu_source_dir());
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".sql"))
            continue;
        char *path = ss_sprintf("%s/%s", dir, de->d_name);
        size_t len;
        char *sql = tu_read_file(path, &len);
        ck_assert_ptr_nonnull(sql);
        int n1, n2;
        char *out = canonical(sql, len, &n1);
        /* the canonical form is a fixed point */
        char *again = canonical(out, strlen(out), &n2);
        ck_assert_int_eq(n1, n2);
        ck_assert_str_eq(out, again);
        free(path);
        path = ss_sprintf("%s/expected/%.*s.out", dir, (int)(n - 4), de->d_name);
        if (getenv("SS_UPDATE_GOLDEN")) {
            FILE *f = fopen(path, "w");
            ck_assert_ptr_nonnull(f);
            fputs(out, f);
            fclose(f);
        }
        char *want = tu_read_file(path, NULL);
        ck_assert_msg(want != NULL, "missing %s (run with SS_UPDATE_GOLDEN=1 to create it)", path);
        ck_assert_msg(!strcmp(out, want), "%s differs from its golden file:\n%s", de->d_name, out);
        free(sql);
        free(out);
        free(again);
        free(want);
        free(path);
        files++;
    }
    closedir(d);
    ck_assert_int_ge(files, 2);
}
END_TEST

/* ---- errors ---- */
static const struct {
    const char *sql;
    const char *pos; /* exact "line:col: " prefix */
    const char *msg; /* substring of the message */
} error_cases[] = {
    {"SELECT FROM t", "1:8: ", "syntax error near \"FROM\": expected one of"},
    {"SELECT a FROM", "1:14: ", "unexpected end of input: expected one of identifier, '('"},
    {"CREATE STREAM s (a INT", "1:23: ", "unexpected end of input: expected one of '(', ')', ',', KEY, PRIMARY"},
    {"CREATE STREAM s (a FOO)", "1:20: ", "unknown type \"FOO\""},
    {"CREATE STREAM s (a INT, a TEXT)", "1:25: ", "duplicate column \"a\""},
    {"CREATE STREAM s ()", "1:18: ", "syntax error near \")\": expected identifier"},
    {"CREATE STREAM (a INT)", "1:15: ", "near \"(\": expected one of IF, identifier"},
    {"SELECT 'abc", "1:8: ", "unterminated string"},
    {"SELECT \"abc", "1:8: ", "unterminated quoted identifier"},
    {"SELECT a /* never closed", "1:10: ", "unterminated comment"},
    {"SELECT @", "1:8: ", "unrecognized character \"@\""},
    {"SELECT a\nFROM t\nWHERE x = #", "3:11: ", "unrecognized character \"#\""},
    {"selec a", "1:1: ", "near \"selec\": expected one of ';', CREATE"},
    {"SELECT a FROM t WHERE", "1:22: ", "unexpected end of input"},
    {"SELECT a FROM t WHERE SEM_FILTER('bad {x')", "1:39: ", "malformed template: unbalanced '{'"},
    {"SELECT SEM_MAP('a\n b {}') FROM t", "2:4: ", "malformed template: empty reference {}"},
    {"SELECT SEM_MAP('it''s }') FROM t", "1:23: ", "malformed template: unbalanced '}'"},
    {"SELECT a FROM x SEM_JOIN y ON '{a.b c}'", "1:33: ", "malformed template: invalid reference"},
    {"CREATE VIEW v AS LLM_GENERATE(CONTEXT=STREAM(x))", "1:18: ", "LLM_GENERATE requires PROMPT"},
    {"CREATE VIEW v AS LLM_GENERATE(PROMPT='p')", "1:18: ", "LLM_GENERATE requires CONTEXT=STREAM(name)"},
    {"CREATE VIEW v AS LLM_GENERATE(PROMPT=1, CONTEXT=STREAM(c))", "1:31: ", "PROMPT must be a string"},
    {"CREATE VIEW v AS LLM_GENERATE(PROMPT=\"{\", CONTEXT=STREAM(c))", "1:39: ", "malformed template"},
    {"CREATE VIEW v AS SELECT a FROM t LIMIT 99999999999999999999", "1:40: ", "LIMIT value out of range"},
    {"CREATE STREAM s (a INT) WITH (topic='a', TOPIC='b')", "1:42: ", "duplicate option \"topic\""},
    {"INSERT INTO t VALUES (1, 2), (3)", "1:31: ", "VALUES row 2 has 1 values, expected 2"},
    {"INSERT INTO t (a, b) VALUES (1)", "1:30: ", "VALUES row 1 has 1 values, expected 2"},
    {"INSERT INTO t (a, A) VALUES (1, 2)", "1:19: ", "duplicate column \"A\" in INSERT"},
    {"INSERT INTO t VALUES ()", "1:23: ", "near \")\""},
    {"DROP TABLE t", "1:6: ", "near \"TABLE\": expected one of STREAM, VIEW, MODEL"},
    {"SHOW TABLES", "1:6: ", "near \"TABLES\": expected one of STREAMS, VIEWS, MODELS"},
    {"SELECT a FROM t LIMIT x", "1:23: ", "near \"x\": expected integer"},
    {"SELECT a b c FROM t", "1:12: ", "near \"c\""},
    {"SELECT (a FROM t", "1:11: ", "near \"FROM\": expected one of"},
    {"SELECT a) FROM t", "1:9: ", "near \")\""},
    {"SELECT a FROM t;\nSELECT b FROM u WHERE ;", "2:23: ", "near \";\""},
    {"CREATE CONTINUOUS VIEW v AS", "1:28: ", "unexpected end of input: expected one of WITH, SELECT, LLM_GENERATE"},
    {"CREATE MODEL m", "1:15: ", "unexpected end of input: expected WITH"},
    {"SELECT SEM_FILTER(x) FROM t", "1:19: ", "near \"x\": expected string"},
    {"SELECT a FROM t ORDER a", "1:23: ", "near \"a\": expected BY"},
    {"SELECT a\0 FROM t", "1:9: ", "unrecognized character \"\\x00\""},
    {"SET x = ", "1:8: ", "unexpected end of input"},
    {"SUBSCRIBE", "1:10: ", "unexpected end of input: expected identifier"},
    {"SELECT 'a' 'b'", "1:12: ", "near \"'b'\""},
    {"SELECT \x01", "1:8: ", "unrecognized character \"\\x01\""},
    {"SELECT 0x10 FROM t", "1:8: ", "malformed number \"0x10\""},
    {"SELECT a FROM t LIMIT 2fast", "1:23: ", "malformed number \"2fast\""},
    {"SELECT 1.5e x", "1:8: ", "malformed number \"1.5e\""},
    {"WITH RECURSIVE r AS (SELECT a FROM t) SELECT a FROM r", "1:6: ", "WITH RECURSIVE is not supported"},
    {"WITH x AS (SELECT a FROM t), X AS (SELECT b FROM t) SELECT a FROM x", "1:30: ",
     "WITH query name \"X\" specified more than once"},
    {"SELECT * FROM a JOIN b USING (k, j, k)", "1:37: ", "column \"k\" appears more than once in USING"},
    {"SELECT a FROM t OFFSET 99999999999999999999", "1:24: ", "OFFSET value out of range"},
    {"SELECT * FROM a JOIN b", "1:23: ", "unexpected end of input: expected one of identifier, AS, ON, USING"},
    {"SELECT a FROM t UNION", "1:22: ", "unexpected end of input: expected one of SELECT, DISTINCT, ALL"},
    /* SQL that is not supported yet is named as such (grammar/unsupported.c), at its position */
    {"SELECT a FROM t WHERE b SIMILAR TO 'x%'", "1:25: ", "SIMILAR TO is not supported"},
    {"SELECT a FROM t GROUP BY GROUPING SETS ((a), ())", "1:26: ", "GROUPING SETS is not supported"},
    {"SELECT a FROM t FETCH FIRST 3 ROWS ONLY", "1:17: ", "FETCH FIRST (use LIMIT) is not supported"},
    {"SELECT SUM(a) OVER (ORDER BY b ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM t", "1:32: ",
     "a window frame (ROWS BETWEEN) is not supported"},
    {"SELECT SUM(a) OVER w FROM t", "1:15: ", "a named window (OVER name) is not supported"},
    /* ... but only when the statement fails: such words stay usable as names */
    {"SELECT rollup, fetch FROM t WHERE", "1:34: ", "unexpected end of input"},
};

START_TEST(test_errors)
{
    for (size_t i = 0; i < SS_ARRAY_LEN(error_cases); i++) {
        const char *sql = error_cases[i].sql;
        size_t len = strlen(sql);
        if (!strcmp(sql, "SELECT a"))
            len = 16; /* the case with an embedded NUL */
        int rc = parse_fails(sql, len);
        ck_assert_msg(rc == SS_ERR_PARSE, "case %zu [%s]: rc %d", i, sql, rc);
        size_t pl = strlen(error_cases[i].pos);
        ck_assert_msg(!strncmp(err, error_cases[i].pos, pl) && strstr(err + pl, error_cases[i].msg),
                      "case %zu [%s]: got [%s], want [%s%s]", i, sql, err, error_cases[i].pos, error_cases[i].msg);
    }
    /* NUL bytes are refused wherever they are, at their own position */
    static const struct { const char *sql; size_t len; const char *want; } nul_cases[] = {
        {"SELECT 'a\0b' FROM t", 19, "1:10: unrecognized character \"\\x00\""},
        {"SELECT a /* \n\0 */ FROM t", 25, "2:1: unrecognized character \"\\x00\""},
        {"SELECT \"a\0\"", 12, "1:10: unrecognized character \"\\x00\""},
        {"-- x\0\nSELECT", 12, "1:5: unrecognized character \"\\x00\""},
        {"\0", 1, "1:1: unrecognized character \"\\x00\""},
    };
    for (size_t i = 0; i < SS_ARRAY_LEN(nul_cases); i++) {
        ck_assert_int_eq(parse_fails(nul_cases[i].sql, nul_cases[i].len), SS_ERR_PARSE);
        ck_assert_msg(strstr(err, nul_cases[i].want) == err, "NUL case %zu: got [%s]", i, err);
    }
    /* the name prefixes the position */
    ss_ast_script_t *s = NULL;
    ck_assert_int_eq(ss_parse("SELECT", 6, "views.sql", &s, err, sizeof err), SS_ERR_PARSE);
    /* (the list of expected tokens grows with the language: its exact text is checked above) */
    const char *want = "views.sql:1:7: syntax error: unexpected end of input: expected one of NOT, ";
    ck_assert_msg(!strncmp(err, want, strlen(want)) && strstr(err, "identifier, '(', string, integer") &&
                      strstr(err, "DISTINCT, '*'") && strstr(err, "SEM_AGG, CASE, CAST"), "got [%s]", err);
    ck_assert_int_eq(ss_parse(NULL, 0, NULL, &s, err, sizeof err), SS_OK);
    ss_ast_script_free(s);
    ck_assert_int_eq(ss_parse(NULL, 3, NULL, &s, err, sizeof err), SS_ERR_INVALID);
}
END_TEST

/* ---- robustness ---- */
static void parse_any(const char *p, size_t n)
{
    ss_ast_script_t *s = NULL;
    int rc = ss_parse(p, n, "fuzz", &s, err, sizeof err);
    if (rc == SS_OK) {
        ck_assert_ptr_nonnull(s);
        ss_ast_script_free(s);
    } else {
        ck_assert_ptr_null(s);
        ck_assert(err[0] != 0);
    }
}

static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

START_TEST(test_random_bytes)
{
    rng_state = 42;
    char buf[512];
    for (int it = 0; it < 2000; it++) {
        size_t n = rnd() % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)rnd();
        parse_any(buf, n);
    }
}
END_TEST

/* Random sequences of real tokens reach deep into the grammar. */
START_TEST(test_random_tokens)
{
    static const char *vocab[] = {
        "SELECT", "FROM", "WHERE", "a", "t.b", "*", "(", ")", ",", ";", "=", "+", "-", "AND", "OR", "NOT",
        "'s{x}'", "'{'", "1", "2.5", "CREATE", "STREAM", "VIEW", "CONTINUOUS", "AS", "WITH", "topic", "'t'",
        "SEM_FILTER", "SEM_MAP", "SEM_JOIN", "ON", "JOIN", "LEFT", "GROUP", "BY", "ORDER", "LIMIT", "3",
        "LLM_GENERATE", "PROMPT", "CONTEXT", "STREAM(x)", "INSERT", "INTO", "VALUES", "DELETE", "IS", "NULL",
        "INT", "TEXT", "KEY", "DROP", "SHOW", "STREAMS", "EXPLAIN", "SET", "x", "SEM_AGG", "SEM_RANK", "DESC",
        "count", "DISTINCT", "LIKE", "||", "\"q\"", "MODEL", "IF", "EXISTS", "/* c */", "-- c\n", "SUBSCRIBE",
    };
    rng_state = 7;
    for (int it = 0; it < 3000; it++) {
        ss_buf_t b = SS_BUF_INIT;
        int n = 1 + (int)(rnd() % 40);
        for (int i = 0; i < n; i++) {
            ss_buf_puts(&b, vocab[rnd() % SS_ARRAY_LEN(vocab)]);
            ss_buf_putc(&b, ' ');
        }
        parse_any(b.data, b.len);
        ss_buf_free(&b);
    }
}
END_TEST

START_TEST(test_garbage_1mb)
{
    size_t n = 1 << 20;
    char *g = malloc(n);
    rng_state = 1;
    for (size_t i = 0; i < n; i++)
        g[i] = (char)rnd();
    parse_any(g, n);
    /* printable garbage made of SQL punctuation and words */
    static const char alpha[] = "abc (),;.*+-/'\"=<>!|%_019\n\t{}";
    for (size_t i = 0; i < n; i++)
        g[i] = alpha[rnd() % (sizeof alpha - 1)];
    parse_any(g, n);
    free(g);
}
END_TEST

static char *repeat(const char *pre, const char *unit, size_t times, const char *post)
{
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_puts(&b, pre);
    for (size_t i = 0; i < times; i++)
        ss_buf_puts(&b, unit);
    ss_buf_puts(&b, post);
    return ss_buf_take(&b);
}

START_TEST(test_deep_nesting)
{
    char *s = repeat("SELECT ", "(", 100000, "1");
    ck_assert_int_eq(parse_fails(s, strlen(s)), SS_ERR_PARSE);
    ck_assert_msg(strstr(err, "1:208: nesting too deep"), "%s", err);
    free(s);
    /* 200 levels are fine */
    char *open = repeat("SELECT ", "(", 200, "1");
    s = repeat(open, ")", 200, " FROM t");
    ss_ast_script_t *sc = parse_ok(s);
    ss_ast_script_free(sc);
    free(open);
    free(s);
    /* long operator chains: parser stack or tree depth limits, never a crash */
    s = repeat("SELECT 1", " + 1", 200000, "");
    ck_assert_int_eq(parse_fails(s, strlen(s)), SS_ERR_PARSE);
    ck_assert_msg(strstr(err, "expression nested too deeply"), "%s", err);
    free(s);
    s = repeat("SELECT ", "NOT ", 100000, "x");
    ck_assert_int_eq(parse_fails(s, strlen(s)), SS_ERR_PARSE);
    ck_assert_msg(strstr(err, "too complex") || strstr(err, "too deeply"), "%s", err);
    free(s);
    s = repeat("SELECT ", "- ", 100000, "x");
    ck_assert_int_eq(parse_fails(s, strlen(s)), SS_ERR_PARSE);
    free(s);
    s = repeat("SELECT x", " AND x", 900, " FROM t");
    sc = parse_ok(s);
    ss_ast_script_free(sc);
    free(s);
    s = repeat("SELECT * FROM a", " JOIN b ON x", 100000, "");
    ck_assert_int_eq(parse_fails(s, strlen(s)), SS_ERR_PARSE);
    ck_assert_msg(strstr(err, "1:15: too many joins"), "%s", err);
    free(s);
    s = repeat("SELECT * FROM a", " SEM_JOIN b ON '{x}'", 63, "");
    sc = parse_ok(s);
    ss_ast_script_free(sc);
    free(s);
    /* wide is fine: many arguments, rows and statements */
    s = repeat("SELECT f(1", ", 1", 50000, ")");
    sc = parse_ok(s);
    ck_assert_int_eq(sc->stmts[0]->query->select->items[0].expr->args->n, 50001);
    ss_ast_script_free(sc);
    free(s);
    s = repeat("", "SHOW VIEWS;", 20000, "");
    sc = parse_ok(s);
    ck_assert_int_eq(sc->n, 20000);
    ss_ast_script_free(sc);
    free(s);
}
END_TEST


/* ---- allocation failures ----
 * Outside sanitizer builds oom_hooks.h fails the N-th allocation and counts live
 * blocks: every failure point of ss_parse must give SS_ERR_NOMEM ("out of
 * memory") and leak nothing. */
#include "oom_hooks.h"

#if SS_OOM_HOOKS
/* Parses sql failing each allocation in turn; returns the number of failure points. */
static long oom_sweep(const char *sql, int script_has_error)
{
    for (long n = 1;; n++) {
        ss_ast_script_t *s = NULL;
        oom_begin(n);
        int rc = ss_parse(sql, strlen(sql), NULL, &s, err, sizeof err);
        ss_ast_script_free(s);
        oom_end();
        int injected = oom_nallocs >= n;
        ck_assert_msg(oom_live == 0, "failing allocation %ld leaks %ld blocks", n, oom_live);
        if (!injected) {
            ck_assert_int_eq(rc, script_has_error ? SS_ERR_PARSE : SS_OK);
            return n - 1;
        }
        if (script_has_error)
            ck_assert(rc == SS_ERR_NOMEM || rc == SS_ERR_PARSE);
        else
            ck_assert_msg(rc == SS_ERR_NOMEM, "failing allocation %ld gave rc %d (%s)", n, rc, err);
        if (rc == SS_ERR_NOMEM)
            ck_assert_msg(strstr(err, "out of memory"), "%s", err);
    }
}
#endif

START_TEST(test_out_of_memory)
{
#if SS_OOM_HOOKS
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/sql/papers.sql", tu_source_dir());
    char *sql = tu_read_file(path, NULL);
    ck_assert_ptr_nonnull(sql);
    long points = oom_sweep(sql, 0);
    ck_assert_int_gt(points, 100);
    free(sql);
    oom_sweep(chatbot, 0);
    oom_sweep("CREATE STREAM s (a INT) WITH (x = 1); SELECT a, f(b) FROM s WHERE a > ", 1);
    oom_sweep("SELECT SEM_MAP('bad {') FROM t", 1);
#else
    printf("test_out_of_memory: skipped under a sanitizer (allocation hooks off)\n");
#endif
}
END_TEST

START_TEST(test_unterminated_everything)
{
    static const char *cases[] = {
        "'", "\"", "/*", "/* *", "--", "SELECT '", "SELECT 'a''", "SELECT \"a\"\"", "(", ")", "SEM_MAP('",
        "CREATE STREAM s (", "LLM_GENERATE(", "CREATE VIEW v AS LLM_GENERATE(PROMPT=", "1e", "1.", ".",
        "x.", "x.*", "SELECT * FROM a SEM_JOIN b ON", "'\n\n", "\xff\xfe", "SELECT \xc3\xa9t\xc3\xa9 FROM t",
    };
    for (size_t i = 0; i < SS_ARRAY_LEN(cases); i++)
        parse_any(cases[i], strlen(cases[i]));
    /* every prefix of a real script */
    size_t n = strlen(chatbot);
    for (size_t i = 0; i <= n; i++)
        parse_any(chatbot, i);
}
END_TEST

Suite *check_parser_suite(void)
{
    Suite *s = suite_create("parser");
    TCase *tc = tcase_create("statements");
    tcase_add_test(tc, test_create_stream);
    tcase_add_test(tc, test_create_view_select);
    tcase_add_test(tc, test_group_by_sem_agg);
    tcase_add_test(tc, test_joins);
    tcase_add_test(tc, test_query_structure);
    tcase_add_test(tc, test_sem_rank_score);
    tcase_add_test(tc, test_llm_generate);
    tcase_add_test(tc, test_model_set);
    tcase_add_test(tc, test_admin_statements);
    tcase_add_test(tc, test_snapshot_select);
    tcase_add_test(tc, test_insert_delete);
    tcase_add_test(tc, test_script);
    suite_add_tcase(s, tc);
    tc = tcase_create("expressions");
    tcase_add_test(tc, test_expr_precedence);
    tcase_add_test(tc, test_expr_shape);
    tcase_add_test(tc, test_templates);
    tcase_add_test(tc, test_golden);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("robustness");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_random_bytes);
    tcase_add_test(tc, test_random_tokens);
    tcase_add_test(tc, test_garbage_1mb);
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_unterminated_everything);
    tcase_add_test(tc, test_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}
