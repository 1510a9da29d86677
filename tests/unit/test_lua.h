/*
 * test_lua.h: what the Lua host's unit tests (test_lua*.c) share: a runtime with a Lua host,
 * loading and starting Lua behaviours from source text, and the host's log lines.
 */
#ifndef GS_TEST_LUA_H
#define GS_TEST_LUA_H

#include "testutil.h"

#include <genserv/lua.h>

typedef struct lt_s {
    gs_runtime_t *rt;
    gs_lua_t *lua;
} lt_t;

/* Every line gs.log and print wrote, as [level, server, line]. */
static pthread_mutex_t lt_log_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *lt_log_lines;

static inline void lt_log(const char *level, const char *server, const char *line, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lt_log_mu);
    if (lt_log_lines != NULL)
        json_array_append_new(lt_log_lines, json_pack("[s s s]", level, server, line));
    pthread_mutex_unlock(&lt_log_mu);
}

/* Whether a line equal to want was logged (by any server). */
static inline bool lt_logged(const char *want)
{
    bool found = false;
    size_t i;
    json_t *e;
    pthread_mutex_lock(&lt_log_mu);
    json_array_foreach(lt_log_lines, i, e)
    {
        if (strcmp(json_string_value(json_array_get(e, 2)), want) == 0)
            found = true;
    }
    pthread_mutex_unlock(&lt_log_mu);
    return found;
}

static inline int lt_setup_opts(void **state, const gs_lua_options_t *opts)
{
    lt_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->rt = tu_runtime_create(2, 0);
    assert_int_equal(gs_builtins_register(f->rt), 0);
    gs_lua_options_t o;
    if (opts != NULL)
        o = *opts;
    else
        gs_lua_options_init(&o);
    o.log = lt_log;
    assert_int_equal(gs_lua_create(f->rt, &o, &f->lua), 0);
    pthread_mutex_lock(&lt_log_mu);
    json_decref(lt_log_lines);
    lt_log_lines = json_array();
    pthread_mutex_unlock(&lt_log_mu);
    *state = f;
    return 0;
}

static inline int lt_setup(void **state)
{
    return lt_setup_opts(state, NULL);
}

static inline int lt_teardown(void **state)
{
    lt_t *f = *state;
    if (f == NULL)
        return 0;
    tu_events_unsubscribe(f->rt);
    gs_runtime_destroy(f->rt);
    gs_lua_destroy(f->lua);
    tu_events_reset();
    pthread_mutex_lock(&lt_log_mu);
    json_decref(lt_log_lines);
    lt_log_lines = NULL;
    pthread_mutex_unlock(&lt_log_mu);
    free(f);
    *state = NULL;
    return 0;
}

#define lt_test(fn) cmocka_unit_test_setup_teardown(fn, lt_setup, lt_teardown)

/* gs_lua_load of src; returns the code, *err printed when it is not want. */
static inline int lt_load_rc(lt_t *f, const char *name, const char *src, json_t **errp)
{
    json_t *err = NULL;
    int rc = gs_lua_load(f->lua, name, NULL, src, strlen(src), NULL, &err);
    if (errp != NULL)
        *errp = err;
    else
        json_decref(err);
    return rc;
}

/* Load src under name; fails the test with Lua's message when it does not load. */
#define lt_load(f, name, src)                                                                      \
    do {                                                                                           \
        json_t *lt_err_ = NULL;                                                                    \
        int lt_rc_ = lt_load_rc((f), (name), (src), &lt_err_);                                     \
        if (lt_rc_ != 0) {                                                                         \
            char lt_buf_[1024];                                                                    \
            print_error("gs_lua_load(%s) = %s: %s\n", (name), gs_err_name(lt_rc_),                 \
                        tu_dump(lt_err_, lt_buf_, sizeof(lt_buf_)));                               \
            json_decref(lt_err_);                                                                  \
            _fail(__FILE__, __LINE__);                                                             \
        }                                                                                          \
    } while (0)

/* gs_start of the Lua behaviour; returns the code and *reason (new, may be NULL). */
static inline int lt_start_rc(lt_t *f, const char *server, const char *behaviour, const char *args,
                              const gs_start_options_t *opts, json_t **reason)
{
    const gs_behaviour_t *b = gs_behaviour_find(f->rt, behaviour);
    assert_non_null(b);
    json_t *a = args != NULL ? tu_json(args) : NULL;
    json_t *why = NULL;
    int rc = gs_start(f->rt, server, b, a, opts, &why);
    json_decref(a);
    if (reason != NULL)
        *reason = why;
    else
        json_decref(why);
    return rc;
}

static inline void lt_start(lt_t *f, const char *server, const char *behaviour, const char *args)
{
    json_t *why = NULL;
    int rc = lt_start_rc(f, server, behaviour, args, NULL, &why);
    if (rc != 0) {
        char buf[1024];
        print_error("gs_start(%s) = %s: %s\n", server, gs_err_name(rc),
                    tu_dump(why, buf, sizeof(buf)));
        json_decref(why);
        _fail(__FILE__, __LINE__);
    }
}

/* A call that must fail with status want and the reason want_reason (JSON text). */
#define lt_call_fails(f, server, msg, want, want_reason)                                           \
    do {                                                                                           \
        json_t *lt_r_ = NULL;                                                                      \
        int lt_rc_ = tu_call((f)->rt, (server), (msg), TU_WAIT_MS, &lt_r_);                        \
        if (lt_rc_ != (want)) {                                                                    \
            char lt_buf_[1024];                                                                    \
            print_error("call %s %s: %s, want %s (%s)\n", (server), (msg), gs_err_name(lt_rc_),    \
                        gs_err_name(want), tu_dump(lt_r_, lt_buf_, sizeof(lt_buf_)));              \
            json_decref(lt_r_);                                                                    \
            _fail(__FILE__, __LINE__);                                                             \
        }                                                                                          \
        if ((want_reason) != NULL)                                                                 \
            tu_assert_json_eq(lt_r_, (want_reason), __FILE__, __LINE__);                           \
        json_decref(lt_r_);                                                                        \
    } while (0)

/* The last crash reason of server as a new reference (JSON null when none). */
static inline json_t *lt_last_crash(lt_t *f, const char *server)
{
    json_t *v = tu_status_field(f->rt, server, "last_crash_reason");
    return v != NULL ? v : json_null();
}

#endif /* GS_TEST_LUA_H */
