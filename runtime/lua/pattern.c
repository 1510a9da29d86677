/*
 * pattern.c: string.find, string.match, string.gmatch and string.gsub for the sandbox, with a
 * bound on their work.
 *
 * Why not Lua's own: its matcher backtracks, so a pattern such as ".-.-.-.-b" over a long
 * subject takes time polynomial in the subject's length with the pattern's number of
 * quantifiers as the exponent, and the count hook never runs inside a C function: one call
 * could hold a scheduler thread for minutes. This is an implementation of the same language
 * (Lua 5.4 manual, section 6.4.1: classes %a %c %d %g %l %p %s %u %w %x and their complements,
 * sets, the quantifiers * + - ?, anchors, captures and position captures, back-references
 * %1-%9, %b and %f) and of the four functions' contracts (6.4), written for genserv, in which
 * every step of the matcher (an attempt at a position, a character a quantifier takes, a
 * character %b scans, a candidate position of a plain find) counts. Every STEP_CHUNK steps
 * the count is charged to the callback's instruction budget (gs__lua_charge), which raises
 * cpu_limit past it, so a match costs what as many VM instructions would. Error messages
 * follow Lua's.
 */
#include "lua_internal.h"

#include <ctype.h>
#include <string.h>

#define MAX_CAPTURES 32   /* LUA_MAXCAPTURES */
#define MAX_DEPTH    200  /* recursion of the matcher (Lua's MAXCCALLS) */
#define STEP_CHUNK   1024 /* steps between two charges to the budget */
#define CAP_OPEN     (-1) /* a capture not closed yet */
#define CAP_POS      (-2) /* a position capture () */
#define SPECIALS     "^$*+?.([%-"

typedef struct pm_s {
    lua_State *L;
    const char *src, *src_end; /* the subject */
    const char *pat_end;       /* the pattern ends here (a NUL follows: Lua strings have one) */
    int depth;                 /* recursion left */
    int level;                 /* captures opened */
    unsigned steps;            /* not charged yet */
    struct {
        const char *init;
        ptrdiff_t len; /* or CAP_OPEN, CAP_POS */
    } cap[MAX_CAPTURES];
} pm_t;

static void step(pm_t *m)
{
    if (++m->steps >= STEP_CHUNK) {
        gs__lua_charge(m->L, m->steps);
        m->steps = 0;
    }
}

/* Start (or restart, at another subject position) a match. */
static void pm_reset(pm_t *m)
{
    m->level = 0;
    m->depth = MAX_DEPTH;
}

static void pm_done(pm_t *m)
{
    if (m->steps > 0)
        gs__lua_charge(m->L, m->steps);
    m->steps = 0;
}

/* Whether c is in class cl (the letter after %); any other cl stands for itself. */
static bool in_class(int c, int cl)
{
    bool r;
    switch (tolower(cl)) {
    case 'a':
        r = isalpha(c);
        break;
    case 'c':
        r = iscntrl(c);
        break;
    case 'd':
        r = isdigit(c);
        break;
    case 'g':
        r = isgraph(c);
        break;
    case 'l':
        r = islower(c);
        break;
    case 'p':
        r = ispunct(c);
        break;
    case 's':
        r = isspace(c);
        break;
    case 'u':
        r = isupper(c);
        break;
    case 'w':
        r = isalnum(c);
        break;
    case 'x':
        r = isxdigit(c);
        break;
    default:
        return cl == c;
    }
    return isupper(cl) ? !r : r;
}

/* The end of the single-character class at p (one past it). */
static const char *class_end(pm_t *m, const char *p)
{
    char c = *p++;
    if (c == '%') {
        if (p >= m->pat_end)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (p < m->pat_end && *p == '^')
            p++;
        /* The first character of a set is itself even when it is ']'. */
        do {
            if (p >= m->pat_end)
                luaL_error(m->L, "malformed pattern (missing ']')");
            c = *p++;
            if (c == '%' && p < m->pat_end)
                p++;
        } while (p >= m->pat_end || *p != ']');
        return p + 1;
    }
    return p;
}

/* Whether c is in the set [ ... ] that starts at p and whose ']' is at close. */
static bool in_set(int c, const char *p, const char *close)
{
    bool want = true;
    p++; /* '[' */
    if (*p == '^') {
        want = false;
        p++;
    }
    for (; p < close; p++) {
        if (*p == '%') {
            p++;
            if (in_class(c, (unsigned char)*p))
                return want;
        } else if (p + 2 < close && p[1] == '-') {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return want;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return want;
        }
    }
    return !want;
}

/* Whether the subject character at s matches the class [p, ep). */
static bool single(pm_t *m, const char *s, const char *p, const char *ep)
{
    if (s >= m->src_end)
        return false;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return true;
    case '%':
        return in_class(c, (unsigned char)p[1]);
    case '[':
        return in_set(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

static const char *match(pm_t *m, const char *s, const char *p);

static const char *greedy(pm_t *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t n = 0;
    while (single(m, s + n, p, ep)) {
        step(m);
        n++;
    }
    for (; n >= 0; n--) { /* the longest first, then shorter */
        const char *r = match(m, s + n, ep + 1);
        if (r != NULL)
            return r;
    }
    return NULL;
}

static const char *lazy(pm_t *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = match(m, s, ep + 1);
        if (r != NULL)
            return r;
        if (!single(m, s, p, ep))
            return NULL;
        step(m);
        s++;
    }
}

static const char *open_capture(pm_t *m, const char *s, const char *p, ptrdiff_t what)
{
    if (m->level >= MAX_CAPTURES)
        luaL_error(m->L, "too many captures");
    m->cap[m->level].init = s;
    m->cap[m->level].len = what;
    m->level++;
    const char *r = match(m, s, p);
    if (r == NULL)
        m->level--;
    return r;
}

static const char *close_capture(pm_t *m, const char *s, const char *p)
{
    int l = m->level - 1;
    while (l >= 0 && m->cap[l].len != CAP_OPEN)
        l--;
    if (l < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[l].len = s - m->cap[l].init;
    const char *r = match(m, s, p);
    if (r == NULL)
        m->cap[l].len = CAP_OPEN;
    return r;
}

/* %bxy at p (p points at 'x'): a balanced run from x to its y. */
static const char *balance(pm_t *m, const char *s, const char *p)
{
    if (p + 1 >= m->pat_end)
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->src_end || *s != p[0])
        return NULL;
    int open = 1;
    while (++s < m->src_end) {
        step(m);
        if (*s == p[1]) {
            if (--open == 0)
                return s + 1;
        } else if (*s == p[0]) {
            open++;
        }
    }
    return NULL;
}

/* %n: the text of capture n again. */
static const char *backref(pm_t *m, const char *s, int digit)
{
    int l = digit - '1';
    if (l < 0 || l >= m->level || m->cap[l].len == CAP_OPEN)
        luaL_error(m->L, "invalid capture index %%%d", l + 1);
    ptrdiff_t len = m->cap[l].len;
    if (len == CAP_POS || m->src_end - s < len || memcmp(m->cap[l].init, s, (size_t)len) != 0)
        return NULL;
    m->steps += (unsigned)(len / 64);
    return s + len;
}

/* Match pattern p at subject position s: the end of the match, or NULL. */
static const char *match(pm_t *m, const char *s, const char *p)
{
    if (m->depth-- == 0)
        luaL_error(m->L, "pattern too complex");
    step(m);
    while (s != NULL && p < m->pat_end) {
        if (*p == '(') {
            s = p + 1 < m->pat_end && p[1] == ')' ? open_capture(m, s, p + 2, CAP_POS)
                                                  : open_capture(m, s, p + 1, CAP_OPEN);
            break;
        }
        if (*p == ')') {
            s = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->pat_end) {
            s = s == m->src_end ? s : NULL;
            break;
        }
        if (*p == '%' && p + 1 < m->pat_end && p[1] == 'b') {
            s = balance(m, s, p + 2);
            p += 4;
            continue;
        }
        if (*p == '%' && p + 1 < m->pat_end && p[1] == 'f') {
            p += 2;
            if (p >= m->pat_end || *p != '[')
                luaL_error(m->L, "missing '[' after '%%f' in pattern");
            const char *ep = class_end(m, p);
            int before = s == m->src ? 0 : (unsigned char)s[-1];
            int at = s < m->src_end ? (unsigned char)*s : 0;
            if (in_set(before, p, ep - 1) || !in_set(at, p, ep - 1)) {
                s = NULL;
                break;
            }
            p = ep;
            continue;
        }
        if (*p == '%' && p + 1 < m->pat_end && isdigit((unsigned char)p[1])) {
            s = backref(m, s, (unsigned char)p[1]);
            p += 2;
            continue;
        }
        /* A single-character class, perhaps with a quantifier. */
        const char *ep = class_end(m, p);
        char q = 0;
        if (ep < m->pat_end)
            q = *ep;
        if (!single(m, s, p, ep)) {
            if (q == '*' || q == '?' || q == '-') {
                p = ep + 1; /* zero of it is fine */
                continue;
            }
            s = NULL;
            break;
        }
        if (q == '?') {
            const char *r = match(m, s + 1, ep + 1);
            if (r != NULL) {
                s = r;
                break;
            }
            p = ep + 1;
            continue;
        }
        if (q == '+') {
            s = greedy(m, s + 1, p, ep);
            break;
        }
        if (q == '*') {
            s = greedy(m, s, p, ep);
            break;
        }
        if (q == '-') {
            s = lazy(m, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    m->depth++;
    return s;
}

/* ---------------------------------------------------------------------------------------- */
/* Captures                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Push capture i (the whole match s..e when there are none and i is 0). */
static void push_capture(pm_t *m, int i, const char *s, const char *e)
{
    if (i >= m->level) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_OPEN)
        luaL_error(m->L, "unfinished capture");
    if (len == CAP_POS)
        lua_pushinteger(m->L, (lua_Integer)(m->cap[i].init - m->src) + 1);
    else
        lua_pushlstring(m->L, m->cap[i].init, (size_t)len);
}

/* Push every capture, or the whole match when there is none (and s is not NULL). */
static int push_captures(pm_t *m, const char *s, const char *e)
{
    int n = m->level == 0 && s != NULL ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

static void pm_init(pm_t *m, lua_State *L, const char *s, size_t ls, const char *p, size_t lp)
{
    m->L = L;
    m->src = s;
    m->src_end = s + ls;
    m->pat_end = p + lp;
    m->steps = 0;
    pm_reset(m);
}

/* ---------------------------------------------------------------------------------------- */
/* find, match                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* A 1-based start position: negative counts from the end, 0 is 1; the result may be ls + 1. */
static size_t start_pos(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 1;
    return len + (size_t)pos + 1;
}

/* A plain search of p in s, its work charged: the first occurrence or NULL. */
static const char *plain_find(pm_t *m, const char *s, size_t ls, const char *p, size_t lp)
{
    if (lp == 0)
        return s;
    if (lp > ls)
        return NULL;
    const char *end = s + (ls - lp) + 1; /* candidates are before it */
    while (s < end) {
        const char *c = memchr(s, *p, (size_t)(end - s));
        if (c == NULL)
            return NULL;
        m->steps += 1 + (unsigned)(lp / 64); /* memcmp's bytes, as instructions */
        if (m->steps >= STEP_CHUNK) {
            gs__lua_charge(m->L, m->steps);
            m->steps = 0;
        }
        if (memcmp(c + 1, p + 1, lp - 1) == 0)
            return c;
        s = c + 1;
    }
    return NULL;
}

static int find_aux(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_pos(luaL_optinteger(L, 3, 1), ls);
    pm_t m;

    if (init > ls + 1) {
        luaL_pushfail(L);
        return 1;
    }
    pm_init(&m, L, s, ls, p, lp);
    bool plain = find && lua_toboolean(L, 4);
    if (find && !plain) { /* no special character: a plain search (a NUL is not special) */
        plain = true;
        for (size_t i = 0; i < lp && plain; i++)
            plain = p[i] == '\0' || strchr(SPECIALS, p[i]) == NULL;
    }
    if (plain) {
        const char *at = plain_find(&m, s + init - 1, ls - init + 1, p, lp);
        pm_done(&m);
        if (at != NULL) {
            lua_pushinteger(L, (lua_Integer)(at - s) + 1);
            lua_pushinteger(L, (lua_Integer)(at - s) + (lua_Integer)lp);
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }
    bool anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    pm_init(&m, L, s, ls, p, lp);
    const char *at = s + init - 1;
    do {
        pm_reset(&m);
        const char *e = match(&m, at, p);
        if (e != NULL) {
            pm_done(&m);
            if (find) {
                lua_pushinteger(L, (lua_Integer)(at - s) + 1);
                lua_pushinteger(L, (lua_Integer)(e - s));
                return push_captures(&m, NULL, NULL) + 2;
            }
            return push_captures(&m, at, e);
        }
    } while (at++ < m.src_end && !anchor);
    pm_done(&m);
    luaL_pushfail(L);
    return 1;
}

int gs__lua_str_find(lua_State *L)
{
    return find_aux(L, true);
}

int gs__lua_str_match(lua_State *L)
{
    return find_aux(L, false);
}

/* ---------------------------------------------------------------------------------------- */
/* gmatch                                                                                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct gm_s {
    size_t pos;  /* where the next search starts (0-based) */
    size_t last; /* the end of the last match + 1, or 0: an empty match there is skipped */
} gm_t;

static int gmatch_next(lua_State *L)
{
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    gm_t *g = lua_touserdata(L, lua_upvalueindex(3));
    pm_t m;

    pm_init(&m, L, s, ls, p, lp);
    for (size_t at = g->pos; at <= ls; at++) {
        pm_reset(&m);
        const char *e = match(&m, s + at, p);
        if (e != NULL && (g->last == 0 || (size_t)(e - s) + 1 != g->last)) {
            g->pos = (size_t)(e - s);
            g->last = g->pos + 1;
            pm_done(&m);
            return push_captures(&m, s + at, e);
        }
    }
    pm_done(&m);
    g->pos = ls + 1;
    return 0;
}

int gs__lua_str_gmatch(lua_State *L)
{
    size_t ls;
    luaL_checklstring(L, 1, &ls);
    luaL_checkstring(L, 2);
    size_t init = start_pos(luaL_optinteger(L, 3, 1), ls);
    lua_settop(L, 2);
    gm_t *g = lua_newuserdatauv(L, sizeof(*g), 0);
    g->pos = init > ls + 1 ? ls + 1 : init - 1;
    g->last = 0;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* gsub                                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* A replacement string: %0 the match, %1-%9 captures, %% a percent sign. */
static void add_template(pm_t *m, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = m->L;
    size_t l;
    const char *r = lua_tolstring(L, 3, &l);
    const char *end = r + l;
    while (r < end) {
        const char *pc = memchr(r, '%', (size_t)(end - r));
        if (pc == NULL) {
            luaL_addlstring(b, r, (size_t)(end - r));
            break;
        }
        luaL_addlstring(b, r, (size_t)(pc - r));
        int c = pc + 1 < end ? (unsigned char)pc[1] : '\0';
        if (c == '%') {
            luaL_addchar(b, '%');
        } else if (c == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit(c)) {
            push_capture(m, c - '1', s, e);
            luaL_tolstring(L, -1, NULL); /* a position capture is a number */
            lua_remove(L, -2);
            luaL_addvalue(b);
        } else {
            luaL_error(L, "invalid use of '%%' in replacement string");
        }
        r = pc + 2;
    }
}

/* Add the replacement of match s..e; returns whether it changed anything. */
static bool add_replacement(pm_t *m, luaL_Buffer *b, const char *s, const char *e, int kind)
{
    lua_State *L = m->L;
    if (kind == LUA_TSTRING || kind == LUA_TNUMBER) {
        add_template(m, b, s, e);
        return true;
    }
    if (kind == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        lua_call(L, n, 1);
    } else { /* a table, indexed by the first capture */
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: keep the original text */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return false;
    }
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return true;
}

int gs__lua_str_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int kind = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L,
                     kind == LUA_TNUMBER || kind == LUA_TSTRING || kind == LUA_TFUNCTION ||
                         kind == LUA_TTABLE,
                     3, "string/function/table");
    bool anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    pm_t m;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    pm_init(&m, L, src, ls, p, lp);
    const char *s = src, *last = NULL;
    lua_Integer n = 0;
    bool changed = false;
    while (n < max) {
        pm_reset(&m);
        const char *e = match(&m, s, p);
        if (e != NULL && e != last) {
            n++;
            changed = add_replacement(&m, &b, s, e, kind) || changed;
            s = last = e;
        } else if (s < m.src_end) {
            luaL_addchar(&b, *s++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    pm_done(&m);
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, s, (size_t)(m.src_end - s));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}
