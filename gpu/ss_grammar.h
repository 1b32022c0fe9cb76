/*
 * ss_grammar.h — constrained decoding for structured output. A JSON schema (the
 * subset of src/base/ss_jschema.h) is compiled into a deterministic byte-level
 * automaton whose language is exactly the compact JSON texts the schema allows
 * (one optional space after ':' and ','; objects list every property, in order;
 * integers of at most 18 digits, so they fit in 64 bits; strings are valid UTF-8
 * without \u escapes). The engine (gpu/llm_run.c) asks the automaton, token by
 * token, which tokens of the vocabulary may come next (gpu/grammar.c): a GENERATE
 * request with json_schema set therefore always produces a text that parses and
 * type-checks, within its max_tokens (the sampler keeps enough tokens in hand to
 * close every open value).
 *
 * Ownership: a compiled grammar (ss_gram_t) is immutable after ss_gram_compile and
 * owned by its caller; the engine keeps its own per-model cache of them.
 */
#ifndef SS_GRAMMAR_H
#define SS_GRAMMAR_H

#include "ss_base.h"
#include "ss_jschema.h"

typedef struct ss_gram ss_gram_t;

/* Compiles a schema tree / a JSON Schema text. SS_ERR_INVALID when the schema is outside
 * the subset or cannot be decided byte by byte (the message says where). */
int ss_gram_compile(const ss_jschema_t *s, ss_gram_t **out, char *err, size_t errsz);
int ss_gram_compile_text(const char *schema, size_t n, ss_gram_t **out, char *err, size_t errsz);
void ss_gram_free(ss_gram_t *g); /* NULL-safe */

int ss_gram_nstates(const ss_gram_t *g);
int ss_gram_start(const ss_gram_t *g);
/* The state after reading byte b in state s, or -1 when b cannot come next. */
int ss_gram_step(const ss_gram_t *g, int s, unsigned char b);
int ss_gram_accepting(const ss_gram_t *g, int s); /* a complete value ends here */
int ss_gram_final(const ss_gram_t *g, int s);     /* accepting, and nothing may follow */
/* The fewest bytes from s to a complete value (INT32_MAX if none). */
int ss_gram_dist(const ss_gram_t *g, int s);
/* 1 when s[0..n) is a whole text of the language. */
int ss_gram_accepts(const ss_gram_t *g, const char *s, size_t n);

#endif
