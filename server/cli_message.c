/*
 * cli_message.c: the command-line client's message syntax (docs/cli.md, "Messages").
 *
 * A message is given as one or more arguments after the server's name. Each argument is a
 * term:
 *   - JSON, when the whole argument parses as JSON (`5`, `"5"`, `true`, `["push", 5]`,
 *     `{"a": 1}`);
 *   - else, when it starts with `{`, `[` or `:`, the short Elixir-like form below, which must
 *     parse (else a usage error);
 *   - else the argument itself, as a string (`get_count`, `first entry`).
 * One term is the message; several are a tuple, a JSON array of them in order:
 * `batcher push 5` -> ["push", 5].
 *
 * The short form, inside an argument: `:word` and a bare `word` are strings (atoms); numbers,
 * `"text"` (JSON escapes), `true`, `false`, `nil`/`null` are JSON; `{t, ...}` (a tuple) and
 * `[t, ...]` (a list) are arrays. `{:add, 1}` -> ["add", 1]. There are no maps: write JSON.
 */
#include "cli.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nesting of short-form terms: the API's own JSON depth limit is 64. */
#define SHORT_MAX_DEPTH 64

typedef struct short_parser_s {
    const char *p;
    char *err;
    size_t errlen;
} short_parser_t;

static void skip_space(short_parser_t *sp)
{
    while (isspace((unsigned char)*sp->p))
        sp->p++;
}

static int word_char(int c)
{
    return isalnum(c) || c == '_' || c == '?' || c == '!' || c == '.' || c == '@';
}

static json_t *parse_term(short_parser_t *sp, int depth);

/* A sequence of terms up to `close`, after its opening bracket. Returns a new array or NULL. */
static json_t *parse_seq(short_parser_t *sp, char close, int depth)
{
    json_t *arr = json_array();

    skip_space(sp);
    if (*sp->p == close) {
        sp->p++;
        return arr;
    }
    for (;;) {
        json_t *t = parse_term(sp, depth + 1);

        if (t == NULL)
            goto fail;
        json_array_append_new(arr, t);
        skip_space(sp);
        if (*sp->p == ',') {
            sp->p++;
            continue;
        }
        if (*sp->p == close) {
            sp->p++;
            return arr;
        }
        snprintf(sp->err, sp->errlen, "expected ',' or '%c' at \"%.20s\"", close, sp->p);
        goto fail;
    }
fail:
    json_decref(arr);
    return NULL;
}

/* A double-quoted string or a number: the JSON decoder reads it, stopping where it ends. */
static json_t *parse_json_scalar(short_parser_t *sp)
{
    json_error_t jerr;
    json_t *v = json_loads(sp->p, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &jerr);

    if (v == NULL) {
        snprintf(sp->err, sp->errlen, "bad value at \"%.20s\": %s", sp->p, jerr.text);
        return NULL;
    }
    sp->p += jerr.position;
    return v;
}

static json_t *parse_term(short_parser_t *sp, int depth)
{
    const char *start;
    size_t n;
    int atom = 0; /* written with a colon: always a string */

    if (depth > SHORT_MAX_DEPTH) {
        snprintf(sp->err, sp->errlen, "nested more than %d levels", SHORT_MAX_DEPTH);
        return NULL;
    }
    skip_space(sp);
    if (*sp->p == '{' || *sp->p == '[') {
        char close = *sp->p == '{' ? '}' : ']';

        sp->p++;
        return parse_seq(sp, close, depth);
    }
    if (*sp->p == '"' || *sp->p == '-' || isdigit((unsigned char)*sp->p))
        return parse_json_scalar(sp);
    if (*sp->p == ':') {
        atom = 1;
        sp->p++;
    }
    start = sp->p;
    while (word_char((unsigned char)*sp->p))
        sp->p++;
    n = (size_t)(sp->p - start);
    if (n == 0) {
        snprintf(sp->err, sp->errlen, "expected a term at \"%.20s\"", start);
        return NULL;
    }
    if (!atom) {
        if (n == 4 && strncmp(start, "true", 4) == 0)
            return json_true();
        if (n == 5 && strncmp(start, "false", 5) == 0)
            return json_false();
        if ((n == 3 && strncmp(start, "nil", 3) == 0) || (n == 4 && strncmp(start, "null", 4) == 0))
            return json_null();
    }
    return json_stringn(start, n);
}

/*
 * One argument as a term. Returns a new reference, or NULL with err filled. arg is borrowed.
 */
static json_t *parse_arg(const char *arg, char *err, size_t errlen)
{
    json_t *v = json_loads(arg, JSON_DECODE_ANY, NULL);
    short_parser_t sp = {arg, err, errlen};

    if (v != NULL)
        return v;
    if (arg[0] != '{' && arg[0] != '[' && arg[0] != ':')
        return json_string(arg); /* NULL for text that is not UTF-8 */
    v = parse_term(&sp, 0);
    if (v == NULL)
        return NULL;
    skip_space(&sp);
    if (*sp.p != '\0') {
        snprintf(err, errlen, "unexpected \"%.20s\" after the message", sp.p);
        json_decref(v);
        return NULL;
    }
    return v;
}

json_t *gs_cli_message_parse(int argc, char *const *argv, char *err, size_t errlen)
{
    json_t *tuple;

    if (argc <= 0) {
        snprintf(err, errlen, "a message is required");
        return NULL;
    }
    if (argc == 1) {
        json_t *v = parse_arg(argv[0], err, errlen);

        if (v == NULL && err[0] == '\0')
            snprintf(err, errlen, "the message is not valid UTF-8");
        return v;
    }
    tuple = json_array();
    for (int i = 0; i < argc; i++) {
        json_t *v = parse_arg(argv[i], err, errlen);

        if (v == NULL) {
            if (err[0] == '\0')
                snprintf(err, errlen, "argument %d is not valid UTF-8", i + 1);
            json_decref(tuple);
            return NULL;
        }
        json_array_append_new(tuple, v);
    }
    return tuple;
}
