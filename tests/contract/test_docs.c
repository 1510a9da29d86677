/*
 * test_docs.c: docs/API.md against the lists the code is generated from, so that the two
 * cannot drift apart:
 *   - the STATUS fields table and the statuses table  <- GS_SERVER_STATUS_FIELDS, _STATUS_MAP
 *   - the errors table                                <- GS_HTTP_ERROR_MAP, _RUNTIME_ERROR_MAP
 *   - every setting's flag, env, key and default      <- GS_GATEWAY_LIMITS_MAP,
 *                                                        GS_RUNTIME_LIMITS_MAP,
 *                                                        GS_LUA_LIMITS_MAP
 *   - the runtime statistics in the metrics table     <- GS_RUNTIME_STATS_MAP
 * Each failure names what differs and where. The doc is read from GS_DOCS_DIR.
 */
#include "api_internal.h"
#include <genserv/lua.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAX_ROWS  256
#define MAX_CELLS 8

typedef struct row_s {
    int line;
    size_t ncells;
    char *cells[MAX_CELLS]; /* trimmed, owned */
    char *text;             /* the whole line, owned */
} row_t;

typedef struct table_s {
    size_t nrows;
    row_t rows[MAX_ROWS];
} table_t;

static char *doc;    /* docs/API.md, whole */
static int failures; /* mismatches found by the current test */

static void mismatch(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void mismatch(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "docs/API.md: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    failures++;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int line_of(const char *p)
{
    int line = 1;

    for (const char *q = doc; q < p; q++)
        line += *q == '\n';
    return line;
}

static char *trimmed(const char *s, size_t n)
{
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return strndup(s, n);
}

/*
 * The first table after the first line that contains `anchor` (after the heading `section`
 * when given), header and separator rows left out. Fails the test if there is none.
 */
static void find_table(const char *section, const char *anchor, table_t *t)
{
    const char *p = doc, *end;

    memset(t, 0, sizeof(*t));
    if (section != NULL) {
        p = strstr(doc, section);
        if (p == NULL)
            fail_msg("no section \"%s\"", section);
    }
    /* Within the section: up to the next heading of level 2. */
    end = strstr(p + 1, "\n## ");
    if (end == NULL)
        end = p + strlen(p);
    p = strstr(p, anchor);
    if (p == NULL || p > end)
        fail_msg("no \"%s\" in \"%s\"", anchor, section ? section : "the doc");
    /* to the table's first line */
    while (*p != '\0' && !(p[0] == '\n' && p[1] == '|'))
        p++;
    if (*p == '\0')
        fail_msg("no table after \"%s\"", anchor);
    p++;
    for (bool header = true; *p == '|'; header = false) {
        const char *eol = strchr(p, '\n');
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (!header && strncmp(p, "|---", 4) != 0 && t->nrows < MAX_ROWS) {
            row_t *r = &t->rows[t->nrows++];
            r->line = line_of(p);
            r->text = strndup(p, len);
            for (const char *c = p + 1; c < p + len && r->ncells < MAX_CELLS;) {
                const char *bar = memchr(c, '|', (size_t)(p + len - c));
                if (bar == NULL)
                    break;
                r->cells[r->ncells++] = trimmed(c, (size_t)(bar - c));
                c = bar + 1;
            }
        }
        p = eol != NULL ? eol + 1 : p + len;
    }
}

static void free_table(table_t *t)
{
    for (size_t i = 0; i < t->nrows; i++) {
        free(t->rows[i].text);
        for (size_t c = 0; c < t->rows[i].ncells; c++)
            free(t->rows[i].cells[c]);
    }
}

/* "`x`" -> "x" in buf; a cell that is not one backticked word is returned as is. */
static const char *unquote(const char *cell, char *buf, size_t len)
{
    size_t n = strlen(cell);

    if (n >= 2 && cell[0] == '`' && cell[n - 1] == '`' && n - 2 < len) {
        memcpy(buf, cell + 1, n - 2);
        buf[n - 2] = '\0';
        return buf;
    }
    return cell;
}

/* The row whose first cell is `name` (backticked), or NULL. */
static const row_t *row_named(const table_t *t, const char *name)
{
    char buf[128];

    for (size_t i = 0; i < t->nrows; i++)
        if (t->rows[i].ncells > 0 &&
            strcmp(unquote(t->rows[i].cells[0], buf, sizeof(buf)), name) == 0)
            return &t->rows[i];
    return NULL;
}

/* Whether text holds `number` as a whole token (not inside a longer number). */
static bool has_number(const char *text, unsigned long long number)
{
    char want[32];
    size_t n = (size_t)snprintf(want, sizeof(want), "%llu", number);

    for (const char *p = strstr(text, want); p != NULL; p = strstr(p + 1, want)) {
        bool left = p == text || p[-1] < '0' || p[-1] > '9';
        bool right = p[n] < '0' || p[n] > '9';
        if (left && right)
            return true;
    }
    return false;
}

static int setup(void **state)
{
    (void)state;
    failures = 0;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */

static void test_status_fields(void **state)
{
    static const struct {
        const char *field, *type;
    } fields[] = {
#define FIELD(field, type, meaning) {#field, type},
        GS_SERVER_STATUS_FIELDS(FIELD)
#undef FIELD
    };
    size_t n = sizeof(fields) / sizeof(fields[0]);
    table_t t;
    char buf[128];

    (void)state;
    find_table("## GET /servers/NAME", "STATUS fields", &t);
    if (t.nrows != n)
        mismatch("the STATUS fields table has %zu rows; the code writes %zu fields", t.nrows, n);
    for (size_t i = 0; i < n; i++) {
        const row_t *r = row_named(&t, fields[i].field);
        if (r == NULL) {
            mismatch("STATUS field `%s` (%s) is not in the table", fields[i].field, fields[i].type);
            continue;
        }
        if (r->ncells < 2 || strncmp(r->cells[1], fields[i].type, strlen(fields[i].type)) != 0)
            mismatch("line %d: STATUS field `%s` is documented as \"%s\", written as %s", r->line,
                     fields[i].field, r->ncells > 1 ? r->cells[1] : "", fields[i].type);
    }
    for (size_t i = 0; i < t.nrows; i++) {
        const char *name = unquote(t.rows[i].cells[0], buf, sizeof(buf));
        bool known = false;
        for (size_t k = 0; k < n; k++)
            known = known || strcmp(fields[k].field, name) == 0;
        if (!known)
            mismatch("line %d: STATUS field `%s` is documented but never written", t.rows[i].line,
                     name);
    }
    free_table(&t);
    assert_int_equal(failures, 0);
}

static void test_statuses(void **state)
{
    static const char *const statuses[] = {
#define STATUS(sym, name, meaning) name,
        GS_SERVER_STATUS_MAP(STATUS)
#undef STATUS
    };
    size_t n = sizeof(statuses) / sizeof(statuses[0]);
    table_t t;
    char buf[128];

    (void)state;
    find_table("## GET /servers/NAME", "The statuses", &t);
    if (t.nrows != n)
        mismatch("the statuses table has %zu rows; the runtime has %zu statuses", t.nrows, n);
    for (size_t i = 0; i < n && i < t.nrows; i++) {
        const char *doc_name = unquote(t.rows[i].cells[0], buf, sizeof(buf));
        if (strcmp(doc_name, statuses[i]) != 0)
            mismatch("line %d: status #%zu is `%s` in the docs, \"%s\" in the runtime",
                     t.rows[i].line, i + 1, doc_name, statuses[i]);
    }
    free_table(&t);
    assert_int_equal(failures, 0);
}

typedef struct expected_error_s {
    unsigned status;
    const char *code;
} expected_error_t;

static void test_errors(void **state)
{
    expected_error_t expected[64];
    size_t n = 0;
    table_t t;
    char buf[128];

    (void)state;
#define GATEWAY(sym, status, code) expected[n++] = (expected_error_t){status, code};
    GS_HTTP_ERROR_MAP(GATEWAY)
#undef GATEWAY
#define RUNTIME(sym, status, with_reason, over_http)                                               \
    if (over_http && GS_##sym != GS_EINVAL)                                                        \
        expected[n++] = (expected_error_t){status, gs__error_code(GS_##sym)};
    GS_HTTP_RUNTIME_ERROR_MAP(RUNTIME)
#undef RUNTIME

    find_table("## Errors", "| status | error |", &t);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t r = 0; r < t.nrows && !found; r++) {
            const char *code = unquote(t.rows[r].cells[1], buf, sizeof(buf));
            if (strcmp(code, expected[i].code) != 0)
                continue;
            found = true;
            if ((unsigned)atoi(t.rows[r].cells[0]) != expected[i].status)
                mismatch("line %d: `%s` is documented as %s, answered as %u", t.rows[r].line, code,
                         t.rows[r].cells[0], expected[i].status);
        }
        if (!found)
            mismatch("the errors table lacks %u `%s`", expected[i].status, expected[i].code);
    }
    for (size_t r = 0; r < t.nrows; r++) {
        const char *code = unquote(t.rows[r].cells[1], buf, sizeof(buf));
        bool known = false;
        for (size_t i = 0; i < n; i++)
            known = known || strcmp(expected[i].code, code) == 0;
        if (!known)
            mismatch("line %d: error `%s` is documented but never answered", t.rows[r].line, code);
    }
    free_table(&t);
    assert_int_equal(failures, 0);
}

/* The table row that documents --flag (the one naming an environment variable), or NULL. */
static const char *flag_row(const char *flag, char *buf, size_t len)
{
    char want[96];
    size_t wlen = (size_t)snprintf(want, sizeof(want), "`--%s", flag);

    for (const char *p = strstr(doc, want); p != NULL; p = strstr(p + 1, want)) {
        const char *bol = p;
        if (p[wlen] != '`' && p[wlen] != ' ') /* --max-timer-bytes is not --max-timer-bytes-x */
            continue;
        while (bol > doc && bol[-1] != '\n')
            bol--;
        if (*bol != '|')
            continue;
        const char *eol = strchr(p, '\n');
        size_t n = eol != NULL ? (size_t)(eol - bol) : strlen(bol);
        snprintf(buf, len, "%.*s", (int)n, bol);
        if (strstr(buf, "GENSERV_") != NULL)
            return buf;
    }
    return NULL;
}

static void test_gateway_settings(void **state)
{
    static const struct {
        const char *flag, *key;
        unsigned long long def;
    } settings[] = {
#define SETTING(field, flag, key, min, max, def, metavar, help) {flag, key, def},
        GS_GATEWAY_LIMITS_MAP(SETTING) GS_RUNTIME_LIMITS_MAP(SETTING) GS_LUA_LIMITS_MAP(SETTING)
#undef SETTING
    };
    char row[1024], env[96], key[96];

    (void)state;
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        const char *r = flag_row(settings[i].flag, row, sizeof(row));
        size_t k = (size_t)snprintf(env, sizeof(env), "GENSERV_");
        for (const char *f = settings[i].flag; *f && k + 1 < sizeof(env); f++)
            env[k++] = *f == '-' ? '_' : (char)(*f - ('a' <= *f && *f <= 'z' ? 'a' - 'A' : 0));
        env[k] = '\0';
        if (r == NULL) {
            mismatch("no table row documents --%s", settings[i].flag);
            continue;
        }
        /* The Configuration table names a top-level key; "limits.x" rows name it whole. */
        snprintf(key, sizeof(key), "%s", settings[i].key);
        if (strstr(r, env) == NULL)
            mismatch("the row of --%s does not name %s: %s", settings[i].flag, env, r);
        if (strstr(r, key) == NULL)
            mismatch("the row of --%s does not name its config key %s: %s", settings[i].flag, key,
                     r);
        if (!has_number(r, settings[i].def))
            mismatch("the row of --%s does not give its default %llu: %s", settings[i].flag,
                     settings[i].def, r);
    }
    assert_int_equal(failures, 0);
}

static void test_runtime_statistics(void **state)
{
    static const struct {
        const char *field;
        gs_stat_kind_t kind;
    } stats[] = {
#define STAT(field, kind, help) {#field, GS_STAT_##kind},
        GS_RUNTIME_STATS_MAP(STAT)
#undef STAT
    };
    table_t t;
    char name[96];

    (void)state;
    find_table("## GET /metrics", "| metric | type |", &t);
    for (size_t i = 0; i < sizeof(stats) / sizeof(stats[0]); i++) {
        bool counter = stats[i].kind == GS_STAT_COUNTER;
        snprintf(name, sizeof(name), "genserv_%s%s", stats[i].field, counter ? "_total" : "");
        const row_t *r = row_named(&t, name);
        if (r == NULL)
            mismatch("the metrics table lacks `%s`", name);
        else if (r->ncells < 2 || strcmp(r->cells[1], counter ? "counter" : "gauge") != 0)
            mismatch("line %d: `%s` is documented as a %s, exported as a %s", r->line, name,
                     r->ncells > 1 ? r->cells[1] : "?", counter ? "counter" : "gauge");
    }
    free_table(&t);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_status_fields, setup),
        cmocka_unit_test_setup(test_statuses, setup),
        cmocka_unit_test_setup(test_errors, setup),
        cmocka_unit_test_setup(test_gateway_settings, setup),
        cmocka_unit_test_setup(test_runtime_statistics, setup),
    };
    doc = read_file(GS_DOCS_DIR "/API.md");
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(doc);
    return rc;
}
