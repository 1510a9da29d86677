/*
 * behaviour.c: the runtime's table of startable behaviours (built-ins, plugins, Lua code), so
 * that a gateway can start a server from a behaviour's name, describe what each one accepts,
 * replace one with a new version and forget one nobody runs. Registration is rare and lookups
 * are cheap, so one mutex guards the table.
 */
#include "runtime_internal.h"

#include <stdlib.h>
#include <string.h>

/* The entry for name, under the lock, or NULL. */
static gs__behaviour_entry_t *find_locked(gs_runtime_t *rt, const char *name)
{
    for (size_t i = 0; i < rt->nbehaviours; i++)
        if (strcmp(rt->behaviours[i].b->name, name) == 0)
            return &rt->behaviours[i];
    return NULL;
}

int gs_behaviour_register_as(gs_runtime_t *rt, const gs_behaviour_t *b, const char *kind)
{
    int rc = 0;
    if (rt == NULL || b == NULL || b->name == NULL || b->name[0] == '\0' || b->init == NULL)
        return GS_EINVAL;
    uv_mutex_lock(&rt->behaviours_lock);
    if (find_locked(rt, b->name) != NULL) {
        rc = GS_EEXIST;
        goto out;
    }
    if (rt->nbehaviours == rt->behaviours_cap) {
        size_t cap = rt->behaviours_cap ? rt->behaviours_cap * 2 : 16;
        gs__behaviour_entry_t *nb = realloc(rt->behaviours, cap * sizeof(*nb));
        if (nb == NULL) {
            rc = GS_ENOMEM;
            goto out;
        }
        rt->behaviours = nb;
        rt->behaviours_cap = cap;
    }
    rt->behaviours[rt->nbehaviours++] = (gs__behaviour_entry_t){b, kind != NULL ? kind : "c"};
out:
    uv_mutex_unlock(&rt->behaviours_lock);
    return rc;
}

int gs_behaviour_register(gs_runtime_t *rt, const gs_behaviour_t *b)
{
    return gs_behaviour_register_as(rt, b, "c");
}

const gs_behaviour_t *gs_behaviour_find(gs_runtime_t *rt, const char *name)
{
    const gs_behaviour_t *found = NULL;
    if (rt == NULL || name == NULL)
        return NULL;
    uv_mutex_lock(&rt->behaviours_lock);
    gs__behaviour_entry_t *e = find_locked(rt, name);
    if (e != NULL)
        found = e->b;
    uv_mutex_unlock(&rt->behaviours_lock);
    return found;
}

const char *gs_behaviour_kind(gs_runtime_t *rt, const char *name)
{
    const char *kind = NULL;
    if (rt == NULL || name == NULL)
        return NULL;
    uv_mutex_lock(&rt->behaviours_lock);
    gs__behaviour_entry_t *e = find_locked(rt, name);
    if (e != NULL)
        kind = e->kind;
    uv_mutex_unlock(&rt->behaviours_lock);
    return kind;
}

int gs_behaviour_replace(gs_runtime_t *rt, const gs_behaviour_t *b, const gs_behaviour_t **old)
{
    int rc = GS_ENOBEHAVIOUR;
    if (old != NULL)
        *old = NULL;
    if (rt == NULL || b == NULL || b->name == NULL || b->init == NULL)
        return GS_EINVAL;
    uv_mutex_lock(&rt->behaviours_lock);
    gs__behaviour_entry_t *e = find_locked(rt, b->name);
    if (e != NULL) {
        if (old != NULL)
            *old = e->b;
        e->b = b;
        rc = 0;
    }
    uv_mutex_unlock(&rt->behaviours_lock);
    return rc;
}

/* The named servers whose code is b, referenced (the caller unrefs each and frees). */
static gs__child_t **users(gs_runtime_t *rt, const gs_behaviour_t *b, size_t *count)
{
    size_t n = 0, k = 0;
    gs__child_t **all = gs__registry_snapshot(rt, &n);
    for (size_t i = 0; all != NULL && i < n; i++) {
        /* acquire: pairs with the upgrade's release store */
        if (atomic_load_explicit(&all[i]->b, memory_order_acquire) == b)
            all[k++] = all[i];
        else
            gs__child_unref(all[i]);
    }
    *count = k;
    return all;
}

size_t gs_behaviour_users(gs_runtime_t *rt, const gs_behaviour_t *b)
{
    size_t n = 0;
    gs__child_t **u = users(rt, b, &n);
    for (size_t i = 0; i < n; i++)
        gs__child_unref(u[i]);
    free(u);
    return n;
}

static int child_by_name(const void *a, const void *b)
{
    return strcmp((*(gs__child_t *const *)a)->name, (*(gs__child_t *const *)b)->name);
}

json_t *gs_behaviour_servers(gs_runtime_t *rt, const gs_behaviour_t *b)
{
    size_t n = 0;
    gs__child_t **u = users(rt, b, &n);
    json_t *names = json_array();
    if (n > 1)
        qsort(u, n, sizeof(*u), child_by_name);
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(names, json_string(u[i]->name));
        gs__child_unref(u[i]);
    }
    free(u);
    return names;
}

int gs_behaviour_unregister(gs_runtime_t *rt, const char *name)
{
    int rc = GS_ENOBEHAVIOUR;
    if (rt == NULL || name == NULL)
        return GS_EINVAL;
    uv_mutex_lock(&rt->behaviours_lock);
    gs__behaviour_entry_t *e = find_locked(rt, name);
    if (e != NULL) {
        /* Under the lock, so that no start picks it up while servers are counted. A start
         * that already found it and is running init is counted: it is registered by then. */
        if (gs_behaviour_users(rt, e->b) > 0) {
            rc = GS_EINUSE;
        } else {
            *e = rt->behaviours[--rt->nbehaviours];
            rc = 0;
        }
    }
    uv_mutex_unlock(&rt->behaviours_lock);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    const gs__behaviour_entry_t *x = a, *y = b;
    return strcmp(x->b->name, y->b->name);
}

/* JSON text from a behaviour's static docs; falls back to the raw text if it does not parse,
 * so that a plugin's typo shows up in GET /behaviours instead of hiding the behaviour. */
static json_t *doc_json(const char *text)
{
    if (text == NULL)
        return json_null();
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    return v != NULL ? v : json_string(text);
}

static json_t *behaviour_json(const gs__behaviour_entry_t *e)
{
    const gs_behaviour_t *b = e->b;
    json_t *msgs = json_array();
    for (const gs_message_doc_t *m = b->messages; m != NULL && m->kind != NULL; m++) {
        json_array_append_new(msgs, json_pack("{s:s, s:o, s:s}", "kind", m->kind, "example",
                                              doc_json(m->example), "description",
                                              m->description ? m->description : ""));
    }
    return json_pack("{s:s, s:s, s:s?, s:s, s:o, s:o}", "name", b->name, "kind", e->kind, "vsn",
                     b->vsn, "description", b->description ? b->description : "", "args",
                     doc_json(b->args_doc), "messages", msgs);
}

json_t *gs_behaviours_json(gs_runtime_t *rt)
{
    json_t *out = json_array();
    uv_mutex_lock(&rt->behaviours_lock);
    size_t n = rt->nbehaviours;
    gs__behaviour_entry_t *copy = malloc((n ? n : 1) * sizeof(*copy));
    if (copy != NULL && n > 0)
        memcpy(copy, rt->behaviours, n * sizeof(*copy));
    uv_mutex_unlock(&rt->behaviours_lock);
    if (copy == NULL)
        return out;
    qsort(copy, n, sizeof(*copy), by_name);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, behaviour_json(&copy[i]));
    free(copy);
    return out;
}
