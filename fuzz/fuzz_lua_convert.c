/*
 * fuzz_lua_convert.c: JSON -> Lua -> JSON through the Lua host's conversion (runtime/lua/
 * convert.c, its private header), in a sandboxed state as a server has.
 *
 * Input: any bytes. Those that are not one JSON text (jansson, any value, \u0000 allowed) are
 * skipped. For a JSON text:
 *   - pushed into Lua and converted back, it must come out equal (json_equal: same types, an
 *     integer stays an integer, a real a real), unless the push refused it cleanly (nested
 *     deeper than the bound: a Lua error, never a crash);
 *   - the strict (hibernation) conversion must succeed on every value that came from JSON,
 *     and its text, loaded again and pushed with its marks, must convert back equal too.
 * One state serves all inputs; a failed input leaves nothing behind (the stack is reset).
 */
#include "fuzz.h"
#include "lua_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_lua_convert: invariant broken at %s:%d: %s\n", __FILE__,         \
                    __LINE__, #cond);                                                              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static lua_State *L;
static gs__lua_box_t box;
static gs__lua_env_t env;

static void close_state(void)
{
    gs__lua_sandbox_close(L);
    L = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    json_t *reason = NULL;
    (void)argc;
    (void)argv;
    L = gs__lua_sandbox_create(&box, (size_t)256 << 20, 100000000, &env, &reason);
    CHECK(L != NULL);
    atexit(close_state);
    return 0;
}

typedef struct push_s {
    json_t *v;
    const unsigned char *marks;
    size_t nmarks;
} push_t;

static int tramp_push(lua_State *S)
{
    push_t *p = lua_touserdata(S, 1);
    gs__lua_push_json(S, p->v, p->marks, p->nmarks);
    return 1;
}

/* Push v; true when it is on the stack, false when the push refused it (nothing left). */
static bool push(json_t *v, const unsigned char *marks, size_t nmarks)
{
    push_t p = {v, marks, nmarks};
    json_t *reason = NULL;
    lua_pushcfunction(L, tramp_push);
    lua_pushlightuserdata(L, &p);
    if (gs__lua_pcall(L, 1, 1, 0, &reason) != LUA_OK) {
        json_decref(reason);
        return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (in == NULL)
        return 0;
    lua_settop(L, 0);
    if (push(in, NULL, 0)) {
        char err[256];
        json_t *out = gs__lua_to_json(L, -1, "value", 0, NULL, err, sizeof(err));
        if (out == NULL) /* only the size bound may refuse what JSON gave */
            CHECK(strstr(err, "more than") != NULL);
        else
            CHECK(json_equal(in, out));
        json_decref(out);

        gs__lua_marks_t marks = {0};
        json_t *strict = gs__lua_to_json(L, -1, "state", GS__LUA_STRICT, &marks, err, sizeof(err));
        if (strict != NULL) {
            CHECK(json_equal(in, strict));
            char *text = json_dumps(strict, JSON_ENCODE_ANY | JSON_COMPACT);
            CHECK(text != NULL);
            json_t *again = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            CHECK(again != NULL);
            lua_settop(L, 0);
            CHECK(push(again, marks.bits, marks.n));
            gs__lua_marks_t marks2 = {0};
            json_t *back =
                gs__lua_to_json(L, -1, "state", GS__LUA_STRICT, &marks2, err, sizeof(err));
            CHECK(back != NULL && json_equal(in, back));
            CHECK(marks2.n == marks.n &&
                  (marks.n == 0 || memcmp(marks.bits, marks2.bits, (marks.n + 7) / 8) == 0));
            json_decref(back);
            json_decref(again);
            free(marks2.bits);
            free(text);
        } else {
            CHECK(strstr(err, "more than") != NULL);
        }
        free(marks.bits);
        json_decref(strict);
    }
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT);
    json_decref(in);
    return 0;
}
