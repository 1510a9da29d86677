/*
 * behaviour.c: the runtime's table of startable behaviours (built-ins and plugins), so that a
 * gateway can start a server from a behaviour's name and describe what each one accepts.
 * Registration is rare and lookups are cheap, so one mutex guards the table.
 */
#include "runtime_internal.h"

#include <stdlib.h>
#include <string.h>

int gs_behaviour_register(gs_runtime_t *rt, const gs_behaviour_t *b)
{
    int rc = 0;
    if (rt == NULL || b == NULL || b->name == NULL || b->name[0] == '\0' || b->init == NULL)
        return GS_EINVAL;
    uv_mutex_lock(&rt->behaviours_lock);
    for (size_t i = 0; i < rt->nbehaviours; i++) {
        if (strcmp(rt->behaviours[i]->name, b->name) == 0) {
            rc = GS_EEXIST;
            goto out;
        }
    }
    if (rt->nbehaviours == rt->behaviours_cap) {
        size_t cap = rt->behaviours_cap ? rt->behaviours_cap * 2 : 16;
        const gs_behaviour_t **nb = realloc(rt->behaviours, cap * sizeof(*nb));
        if (nb == NULL) {
            rc = GS_ENOMEM;
            goto out;
        }
        rt->behaviours = nb;
        rt->behaviours_cap = cap;
    }
    rt->behaviours[rt->nbehaviours++] = b;
out:
    uv_mutex_unlock(&rt->behaviours_lock);
    return rc;
}

const gs_behaviour_t *gs_behaviour_find(gs_runtime_t *rt, const char *name)
{
    const gs_behaviour_t *found = NULL;
    if (rt == NULL || name == NULL)
        return NULL;
    uv_mutex_lock(&rt->behaviours_lock);
    for (size_t i = 0; i < rt->nbehaviours; i++) {
        if (strcmp(rt->behaviours[i]->name, name) == 0) {
            found = rt->behaviours[i];
            break;
        }
    }
    uv_mutex_unlock(&rt->behaviours_lock);
    return found;
}

static int by_name(const void *a, const void *b)
{
    const gs_behaviour_t *x = *(const gs_behaviour_t *const *)a;
    const gs_behaviour_t *y = *(const gs_behaviour_t *const *)b;
    return strcmp(x->name, y->name);
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

static json_t *behaviour_json(const gs_behaviour_t *b)
{
    json_t *msgs = json_array();
    for (const gs_message_doc_t *m = b->messages; m != NULL && m->kind != NULL; m++) {
        json_array_append_new(msgs, json_pack("{s:s, s:o, s:s}", "kind", m->kind, "example",
                                              doc_json(m->example), "description",
                                              m->description ? m->description : ""));
    }
    return json_pack("{s:s, s:s, s:o, s:o}", "name", b->name, "description",
                     b->description ? b->description : "", "args", doc_json(b->args_doc),
                     "messages", msgs);
}

json_t *gs_behaviours_json(gs_runtime_t *rt)
{
    json_t *out = json_array();
    uv_mutex_lock(&rt->behaviours_lock);
    size_t n = rt->nbehaviours;
    const gs_behaviour_t **copy = malloc((n ? n : 1) * sizeof(*copy));
    if (copy != NULL && n > 0)
        memcpy(copy, rt->behaviours, n * sizeof(*copy));
    uv_mutex_unlock(&rt->behaviours_lock);
    if (copy == NULL)
        return out;
    qsort(copy, n, sizeof(*copy), by_name);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, behaviour_json(copy[i]));
    free(copy);
    return out;
}
