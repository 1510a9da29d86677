/*
 * convert.c: JSON <-> Lua, exactly as README.md's table says.
 *
 *   JSON                      Lua
 *   null                  <-> gs.null (a light userdata, so that it survives in a table)
 *   true, false           <-> true, false
 *   integer               <-> integer (jansson's json_int_t is lua_Integer: both 64 bits)
 *   real                  <-> float (2.0 stays a float and is written 2.0; NaN, inf: error)
 *   string                <-> string (bytes; only valid UTF-8 goes into JSON)
 *   array                  -> sequence 1..n with metatable gs.array_mt
 *   object                 -> table with string keys, no metatable
 *   array                 <-  table whose keys are exactly 1..n (n >= 1), or an empty table
 *                             whose metatable is gs.array_mt
 *   object                <-  any other table: string keys as they are, integer keys as
 *                             their decimal text (two keys with one text: error)
 * A function, userdata, thread, float/boolean/table key, cycle, or nesting deeper than
 * GS__LUA_MAX_DEPTH fails the conversion with a sentence naming the value's path; nothing is
 * half-built. Metatables are not consulted (no Lua code runs), save to tell gs.array_mt.
 *
 * STRICT (hibernation): lossless or fail. Fails besides on what JSON would change: an integer
 * key of an object, a table reached twice (its identity), a metatable other than
 * gs.array_mt, a gs.array_mt table that is not a sequence. Which arrays carried gs.array_mt
 * is recorded in marks (one bit per array, in document order), so that a non-empty sequence
 * built in Lua comes back without it.
 *
 * SORTED (dump_state): every object's keys in byte order (shorter first on a common prefix).
 * Lua's traversal order is no property of a value: it follows the table's insertion history,
 * and string hashes are seeded per state (luai_makeseed), so the same value rebuilt in another
 * state, a restored one say, traverses differently. The runtime compares one dump's text with
 * the last to see whether a message changed the state, and needs one text per value. The keys
 * are gathered and their values converted in Lua's order, then sorted: marks, which follow
 * the traversal, are therefore not recorded with it. gs__lua_json_sorted gives JSON read
 * back from a text the same order.
 */
#include "lua_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char gs__lua_array_mt_key = 0;
const char gs__lua_null = 0;

void gs__lua_push_array_mt(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &gs__lua_array_mt_key) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "gs.array");
    lua_setfield(L, -2, "__name");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &gs__lua_array_mt_key);
}

/* ---------------------------------------------------------------------------------------- */
/* JSON -> Lua                                                                                */
/* ---------------------------------------------------------------------------------------- */

typedef struct push_s {
    const unsigned char *marks;
    size_t nmarks, next;
} push_t;

static void push(lua_State *L, json_t *v, int depth, push_t *c)
{
    /* The bound enc_table applies on the way back: at most GS__LUA_MAX_DEPTH nested tables,
     * so that whatever a server was given it can also answer or store. */
    if (depth >= GS__LUA_MAX_DEPTH && (json_is_array(v) || json_is_object(v)))
        luaL_error(L, "bad_value: JSON nested deeper than %d levels", GS__LUA_MAX_DEPTH);
    luaL_checkstack(L, 4, "JSON nested too deep");
    switch (json_typeof(v)) {
    case JSON_NULL:
        lua_pushlightuserdata(L, (void *)&gs__lua_null);
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        break;
    case JSON_REAL:
        lua_pushnumber(L, (lua_Number)json_real_value(v));
        break;
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        break;
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        bool mark = c->marks == NULL ||
                    (c->next < c->nmarks && (c->marks[c->next / 8] >> (c->next % 8) & 1));
        c->next++; /* document order: the array before its elements */
        lua_createtable(L, n < INT32_MAX ? (int)n : 0, 0);
        for (size_t i = 0; i < n; i++) {
            push(L, json_array_get(v, i), depth + 1, c);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        if (mark) {
            gs__lua_push_array_mt(L);
            lua_setmetatable(L, -2);
        }
        break;
    }
    case JSON_OBJECT: {
        const char *key;
        size_t klen;
        json_t *value;
        size_t n = json_object_size(v);
        lua_createtable(L, 0, n < INT32_MAX ? (int)n : 0);
        json_object_keylen_foreach(v, key, klen, value)
        {
            lua_pushlstring(L, key, klen);
            push(L, value, depth + 1, c);
            lua_rawset(L, -3);
        }
        break;
    }
    }
}

void gs__lua_push_json(lua_State *L, json_t *v, const unsigned char *marks, size_t nmarks)
{
    push_t c = {marks, nmarks, 0};
    if (v == NULL)
        lua_pushnil(L);
    else
        push(L, v, 0, &c);
}

/* ---------------------------------------------------------------------------------------- */
/* Lua -> JSON                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* A set of table addresses (STRICT: a table reached twice is refused). Open addressing. */
typedef struct ptrset_s {
    const void **slots;
    size_t cap, count;
} ptrset_t;

static size_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

/* Add p: 1 added, 0 already there, -1 out of memory. */
static int ptrset_add(ptrset_t *s, const void *p)
{
    if ((s->count + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        const void **slots = calloc(cap, sizeof(*slots));
        if (slots == NULL)
            return -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (s->slots[i] == NULL)
                continue;
            size_t j = ptr_hash(s->slots[i]) & (cap - 1);
            while (slots[j] != NULL)
                j = (j + 1) & (cap - 1);
            slots[j] = s->slots[i];
        }
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    size_t j = ptr_hash(p) & (s->cap - 1);
    while (s->slots[j] != NULL) {
        if (s->slots[j] == p)
            return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = p;
    s->count++;
    return 1;
}

typedef struct seg_s {
    const char *key; /* NULL: index */
    size_t klen;
    lua_Integer index;
} seg_t;

typedef struct enc_s {
    lua_State *L;
    unsigned flags;
    gs__lua_marks_t *marks;
    const char *root;
    char *err;
    size_t errlen;
    bool failed;
    uint64_t cost, max_cost; /* values and string bytes made, and their bound */
    int64_t deadline_ns;     /* the callback's backstop, or 0 */
    int depth;
    seg_t path[GS__LUA_MAX_DEPTH + 1];
    const void *tables[GS__LUA_MAX_DEPTH + 1];
    ptrset_t seen;
} enc_t;

static bool ident(const char *s, size_t n)
{
    if (n == 0 || n > 64 || !(s[0] == '_' || ((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z')))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(s[i] == '_' || (s[i] >= '0' && s[i] <= '9') ||
              ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z')))
            return false;
    return true;
}

/* Record why the conversion fails: "<what> at <root><path>". Returns NULL. */
static json_t *fail(enc_t *e, const char *fmt, ...)
{
    if (e->failed || e->err == NULL || e->errlen == 0) {
        e->failed = true;
        return NULL;
    }
    e->failed = true;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->err, e->errlen, fmt, ap);
    va_end(ap);
    size_t o = n < 0 ? 0 : (size_t)n < e->errlen ? (size_t)n : e->errlen - 1;
    o += (size_t)snprintf(e->err + o, e->errlen - o, " at %s", e->root);
    for (int i = 0; i < e->depth && o + 1 < e->errlen; i++) {
        const seg_t *s = &e->path[i];
        size_t left = e->errlen - o;
        if (s->key == NULL)
            n = snprintf(e->err + o, left, "[%lld]", (long long)s->index);
        else if (ident(s->key, s->klen))
            n = snprintf(e->err + o, left, ".%.*s", (int)s->klen, s->key);
        else
            n = snprintf(e->err + o, left, "[\"%.*s\"]", (int)(s->klen < 40 ? s->klen : 40),
                         s->key);
        if (n < 0 || (size_t)n >= left)
            break;
        o += (size_t)n;
    }
    /* The path holds the script's bytes: keep the sentence valid UTF-8 for a JSON reason. */
    for (size_t i = 0; e->err[i] != '\0'; i++)
        if ((unsigned char)e->err[i] >= 0x80 || (unsigned char)e->err[i] < 0x20)
            e->err[i] = '?';
    return NULL;
}

static json_t *enc(enc_t *e, int idx);

static bool is_array_mt(lua_State *L, int idx, bool *has_mt)
{
    *has_mt = lua_getmetatable(L, idx) != 0;
    if (!*has_mt)
        return false;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &gs__lua_array_mt_key);
    bool same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

static bool mark_add(gs__lua_marks_t *m, bool bit)
{
    if (m->n / 8 >= m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        unsigned char *bits = realloc(m->bits, cap);
        if (bits == NULL)
            return false;
        memset(bits + m->cap, 0, cap - m->cap);
        m->bits = bits;
        m->cap = cap;
    }
    if (bit)
        m->bits[m->n / 8] |= (unsigned char)(1u << (m->n % 8));
    m->n++;
    return true;
}

static json_t *enc_array(enc_t *e, int idx, lua_Integer n)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return fail(e, "out of memory");
    for (lua_Integer i = 1; i <= n; i++) {
        e->path[e->depth - 1] = (seg_t){NULL, 0, i};
        lua_rawgeti(e->L, idx, i);
        json_t *v = enc(e, lua_gettop(e->L));
        lua_pop(e->L, 1);
        if (v == NULL || json_array_append_new(arr, v) != 0) {
            json_decref(arr);
            return v == NULL ? NULL : fail(e, "out of memory");
        }
    }
    return arr;
}

static json_t *enc_object(enc_t *e, int idx)
{
    lua_State *L = e->L;
    json_t *obj = json_object();
    if (obj == NULL)
        return fail(e, "out of memory");
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        char num[32];
        const char *k;
        size_t klen;
        seg_t *seg = &e->path[e->depth - 1];
        if (lua_type(L, -2) == LUA_TSTRING) {
            k = lua_tolstring(L, -2, &klen);
            *seg = (seg_t){k, klen, 0};
        } else if (lua_isinteger(L, -2)) {
            lua_Integer i = lua_tointeger(L, -2);
            *seg = (seg_t){NULL, 0, i};
            if (e->flags & GS__LUA_STRICT) {
                json_decref(obj);
                return fail(e, "integer key (JSON would make it a string)");
            }
            klen = (size_t)snprintf(num, sizeof(num), "%lld", (long long)i);
            k = num;
        } else {
            int t = lua_type(L, -2);
            json_decref(obj);
            e->depth--; /* the path is the table's, not a key's */
            json_t *r = fail(e, "%s key", t == LUA_TNUMBER ? "float" : lua_typename(L, t));
            e->depth++;
            return r;
        }
        if (json_object_getn(obj, k, klen) != NULL) {
            json_decref(obj);
            return fail(e, "duplicate key \"%.*s\"", (int)(klen < 40 ? klen : 40), k);
        }
        json_t *v = enc(e, lua_gettop(L));
        if (v == NULL) {
            json_decref(obj);
            return NULL;
        }
        if (json_object_setn_new(obj, k, klen, v) != 0) {
            json_decref(obj);
            return fail(e, "invalid UTF-8 key");
        }
        lua_pop(L, 1);
    }
    return obj;
}

/* The order of SORTED: bytes, then length. */
static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

/* One key of an object being sorted, and its value once converted. */
typedef struct entry_s {
    const char *key; /* a string key's bytes, held by the table (no collection runs in a
                        conversion); NULL for an integer key, whose text is num */
    size_t klen;
    json_t *value; /* new, until it moves into the object */
    char num[24];
} entry_t;

static const char *entry_key(const entry_t *en)
{
    return en->key != NULL ? en->key : en->num;
}

static int entry_cmp(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    return key_cmp(entry_key(x), x->klen, entry_key(y), y->klen);
}

/* enc_object with SORTED: the table at idx has count keys (enc_table counted them). */
static json_t *enc_object_sorted(enc_t *e, int idx, size_t count)
{
    lua_State *L = e->L;
    json_t *obj = NULL;
    size_t n = 0;
    entry_t *ents = count > 0 ? malloc(count * sizeof(*ents)) : NULL;
    seg_t *seg = &e->path[e->depth - 1];

    if (count > 0 && ents == NULL)
        return fail(e, "out of memory");
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (n == count) { /* no Lua code runs: the table cannot have grown since counted */
            fail(e, "table changed during its conversion");
            goto out;
        }
        entry_t *en = &ents[n];
        if (lua_type(L, -2) == LUA_TSTRING) {
            en->key = lua_tolstring(L, -2, &en->klen);
            *seg = (seg_t){en->key, en->klen, 0};
        } else if (lua_isinteger(L, -2)) {
            lua_Integer i = lua_tointeger(L, -2);
            *seg = (seg_t){NULL, 0, i};
            if (e->flags & GS__LUA_STRICT) {
                fail(e, "integer key (JSON would make it a string)");
                goto out;
            }
            en->key = NULL;
            en->klen = (size_t)snprintf(en->num, sizeof(en->num), "%lld", (long long)i);
        } else {
            int t = lua_type(L, -2);
            e->depth--; /* the path is the table's, not a key's */
            fail(e, "%s key", t == LUA_TNUMBER ? "float" : lua_typename(L, t));
            e->depth++;
            goto out;
        }
        if ((en->value = enc(e, lua_gettop(L))) == NULL)
            goto out;
        n++;
        lua_pop(L, 1);
    }
    if (n > 1)
        qsort(ents, n, sizeof(*ents), entry_cmp);
    e->cost += n; /* the sort, roughly: a key's comparisons are few next to its conversion */
    if ((obj = json_object()) == NULL) {
        fail(e, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *k = entry_key(&ents[i]);
        *seg = (seg_t){k, ents[i].klen, 0}; /* for the sentence of a failure */
        json_t *v = ents[i].value;
        ents[i].value = NULL;
        /* Sorted, two keys with one text ([1] and ["1"]) are neighbours. */
        if (i > 0 && entry_cmp(&ents[i - 1], &ents[i]) == 0) {
            json_decref(v);
            fail(e, "duplicate key \"%.*s\"", (int)(ents[i].klen < 40 ? ents[i].klen : 40), k);
        } else if (json_object_setn_new(obj, k, ents[i].klen, v) != 0) {
            fail(e, "invalid UTF-8 key");
        } else {
            continue;
        }
        json_decref(obj);
        obj = NULL;
        break;
    }
out:
    for (size_t i = 0; i < n; i++)
        json_decref(ents[i].value);
    free(ents);
    return obj;
}

static json_t *enc_table(enc_t *e, int idx)
{
    lua_State *L = e->L;
    const void *p = lua_topointer(L, idx);

    if (e->depth >= GS__LUA_MAX_DEPTH)
        return fail(e, "table nested deeper than %d levels", GS__LUA_MAX_DEPTH);
    for (int i = 0; i < e->depth; i++)
        if (e->tables[i] == p)
            return fail(e, "cyclic table");
    if (e->flags & GS__LUA_STRICT) {
        int added = ptrset_add(&e->seen, p);
        if (added <= 0)
            return fail(e, added < 0 ? "out of memory" : "table reached twice");
    }
    if (!lua_checkstack(L, 6))
        return fail(e, "out of memory");
    bool has_mt, arr_mt = is_array_mt(L, idx, &has_mt);
    if ((e->flags & GS__LUA_STRICT) && has_mt && !arr_mt)
        return fail(e, "table with a metatable");

    /* Its kind, from its keys: exactly 1..n is a sequence. */
    lua_Integer count = 0, maxk = 0;
    bool seq = true;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        count++;
        if (lua_isinteger(L, -2)) {
            lua_Integer k = lua_tointeger(L, -2);
            if (k < 1)
                seq = false;
            else if (k > maxk)
                maxk = k;
        } else {
            seq = false;
        }
        lua_pop(L, 1);
    }
    bool array = (count > 0 && seq && maxk == count) || (count == 0 && arr_mt);
    if ((e->flags & GS__LUA_STRICT) && arr_mt && !array)
        return fail(e, "gs.array with keys other than 1..n");
    if (array && e->marks != NULL && !mark_add(e->marks, arr_mt))
        return fail(e, "out of memory");

    e->tables[e->depth] = p;
    e->path[e->depth] = (seg_t){NULL, 0, 0};
    e->depth++;
    int top = lua_gettop(L);
    json_t *out = array                       ? enc_array(e, idx, count)
                  : e->flags & GS__LUA_SORTED ? enc_object_sorted(e, idx, (size_t)count)
                                              : enc_object(e, idx);
    lua_settop(L, top);
    if (out != NULL)
        e->depth--; /* a failure keeps the path where it happened for the sentence */
    return out;
}

static json_t *enc(enc_t *e, int idx)
{
    lua_State *L = e->L;
    /* A table reached many times is converted as many times (JSON has no references): a
     * few tables nested in pairs make an exponential document. Bounded like the state. */
    if (++e->cost > e->max_cost)
        return fail(e, "more than %llu values (a table reached many times?)",
                    (unsigned long long)e->max_cost);
    /* And in time: the callback's wall-clock backstop (sandbox.c) holds here too. */
    if ((e->cost & 4095) == 0 && e->deadline_ns != 0 && gs__lua_now_ns() > e->deadline_ns)
        return fail(e, "a conversion past the callback's time");
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return json_null();
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == (void *)&gs__lua_null)
            return json_null();
        return fail(e, "userdata");
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return json_integer((json_int_t)lua_tointeger(L, idx));
        lua_Number d = lua_tonumber(L, idx);
        if (isnan(d))
            return fail(e, "NaN");
        if (isinf(d))
            return fail(e, "infinite number");
        return json_real((double)d);
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        e->cost += len / 64;
        if (e->cost > e->max_cost)
            return fail(e, "more than %llu bytes of strings", (unsigned long long)e->max_cost * 64);
        json_t *j = json_stringn(s, len);
        return j != NULL ? j : fail(e, "invalid UTF-8 string");
    }
    case LUA_TTABLE:
        return enc_table(e, idx);
    default:
        return fail(e, "%s", lua_typename(L, lua_type(L, idx)));
    }
}

json_t *gs__lua_to_json(lua_State *L, int idx, const char *root, unsigned flags,
                        gs__lua_marks_t *marks, char *err, size_t errlen)
{
    enc_t *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->L = L;
    e->flags = flags;
    e->marks = (flags & GS__LUA_STRICT) ? marks : NULL;
    e->root = root;
    e->err = err;
    e->errlen = errlen;
    /* At most about the state's memory limit in values of 64 bytes (a box may be absent
     * only in a state that is not a server's: then a generous fixed bound). */
    gs__lua_box_t *box = gs__lua_box(L);
    e->max_cost = box != NULL && box->limit / 64 > 65536 ? box->limit / 64 : 1u << 18;
    e->deadline_ns = box != NULL ? box->deadline_ns : 0;
    int top = lua_gettop(L);
    json_t *out = enc(e, lua_absindex(L, idx));
    lua_settop(L, top);
    if (box != NULL)
        box->steps += e->cost; /* the work, seen by the next run of the count hook */
    free(e->seen.slots);
    free(e);
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* JSON -> JSON in SORTED's order                                                            */
/* ---------------------------------------------------------------------------------------- */

/* One key of an object being copied in order (key and value borrowed from it). */
typedef struct jkey_s {
    const char *key;
    size_t klen;
    json_t *value;
} jkey_t;

static int jkey_cmp(const void *a, const void *b)
{
    const jkey_t *x = a, *y = b;
    return key_cmp(x->key, x->klen, y->key, y->klen);
}

json_t *gs__lua_json_sorted(json_t *v)
{
    json_t *out = NULL;
    switch (json_typeof(v)) {
    case JSON_ARRAY: {
        size_t i;
        json_t *item;
        if ((out = json_array()) == NULL)
            return NULL;
        json_array_foreach(v, i, item)
        {
            if (json_array_append_new(out, gs__lua_json_sorted(item)) != 0) {
                json_decref(out);
                return NULL; /* append_new took (and freed) the copy, or NULL */
            }
        }
        return out;
    }
    case JSON_OBJECT: {
        /* The recursion is as deep as the document, which was ours: at most
         * GS__LUA_MAX_DEPTH levels. */
        size_t n = json_object_size(v), i = 0;
        const char *key;
        size_t klen;
        json_t *item;
        jkey_t *keys = malloc((n > 0 ? n : 1) * sizeof(*keys));
        if (keys == NULL || (out = json_object()) == NULL) {
            free(keys);
            return NULL;
        }
        json_object_keylen_foreach(v, key, klen, item)
        {
            keys[i++] = (jkey_t){key, klen, item};
        }
        qsort(keys, n, sizeof(*keys), jkey_cmp);
        for (i = 0; i < n; i++) {
            if (json_object_setn_new(out, keys[i].key, keys[i].klen,
                                     gs__lua_json_sorted(keys[i].value)) != 0) {
                json_decref(out);
                out = NULL;
                break;
            }
        }
        free(keys);
        return out;
    }
    default:
        return json_incref(v);
    }
}
