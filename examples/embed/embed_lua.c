/*
 * embed_lua.c: a C program that runs a GenServer written in Lua, built out of tree against an
 * installed genserv with its public headers and pkg-config:
 *
 *   cc -o embed_lua examples/embed/embed_lua.c $(pkg-config --cflags --libs genserv-lua)
 *   ./embed_lua        # prints "lua count 3", then "lua v2 {...}" after a hot upgrade
 *
 * The Elixir lesson's Counter as Lua source, three casts and a call, then a new version whose
 * code_change turns the count into an object while the server runs.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */

#include <genserv/genserv.h>
#include <genserv/lua.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char v1[] = "return {\n"
                         "  vsn = '1',\n"
                         "  init = function(args) return {'ok', 0} end,\n"
                         "  handle_cast = function(msg, n) return {'noreply', n + 1} end,\n"
                         "  handle_call = function(msg, from, n) return {'reply', n, n} end,\n"
                         "}\n";

static const char v2[] =
    "return {\n"
    "  vsn = '2',\n"
    "  init = function(args) return {'ok', {count = 0}} end,\n"
    "  handle_call = function(msg, from, s) return {'reply', s, s} end,\n"
    "  code_change = function(old, n, extra) return {'ok', {count = n, was = old}} end,\n"
    "}\n";

static atomic_int upgraded; /* set once by the upgrade's callback, on a runtime thread */

static void on_upgraded(json_t *outcomes, void *arg)
{
    (void)arg;
    json_decref(outcomes);
    atomic_store(&upgraded, 1);
}

static int fail(const char *what, int rc, json_t *err)
{
    char *text = err != NULL ? json_dumps(err, JSON_ENCODE_ANY) : NULL;
    fprintf(stderr, "%s: %s %s\n", what, gs_strerror(rc), text != NULL ? text : "");
    free(text);
    json_decref(err);
    return 1;
}

int main(void)
{
    gs_runtime_t *rt = NULL;
    gs_lua_t *lua = NULL;
    json_t *err = NULL, *reply = NULL;
    int rc, status = 1;

    if ((rc = gs_runtime_create(NULL, &rt)) < 0)
        return fail("runtime", rc, NULL);
    if ((rc = gs_lua_create(rt, NULL, &lua)) < 0) {
        status = fail("lua host", rc, NULL);
        goto out;
    }
    if ((rc = gs_lua_load(lua, "counter", NULL, v1, strlen(v1), NULL, &err)) < 0) {
        status = fail("load", rc, err);
        goto out;
    }
    if ((rc = gs_start(rt, "c", gs_behaviour_find(rt, "counter"), NULL, NULL, NULL)) < 0) {
        status = fail("start", rc, NULL);
        goto out;
    }
    for (int i = 0; i < 3; i++)
        gs_cast(rt, "c", json_string("increment"));
    if ((rc = gs_call(rt, "c", json_string("get"), 5000, &reply)) < 0) {
        status = fail("call", rc, reply);
        goto out;
    }
    printf("lua count %lld\n", (long long)json_integer_value(reply));
    json_decref(reply);

    rc = gs_lua_upgrade(lua, "counter", NULL, v2, strlen(v2), NULL, NULL, on_upgraded, NULL, &err);
    if (rc < 0) {
        status = fail("upgrade", rc, err);
        goto out;
    }
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 5000 && !atomic_load(&upgraded); i++)
        nanosleep(&ms, NULL);
    if ((rc = gs_call(rt, "c", json_string("get"), 5000, &reply)) < 0) {
        status = fail("call", rc, reply);
        goto out;
    }
    char *text = json_dumps(reply, JSON_COMPACT | JSON_SORT_KEYS);
    printf("lua v2 %s\n", text != NULL ? text : "?");
    free(text);
    json_decref(reply);
    status = 0;
out:
    gs_runtime_destroy(rt); /* first: no server runs Lua code after it */
    gs_lua_destroy(lua);
    return status;
}
