/*
 * boot.c: starting the configured servers, and logging runtime events.
 */
#include "boot.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int uint_field(json_t *spec, const char *key, unsigned long long max,
                      unsigned long long *out, char *err, size_t errlen, const char *name)
{
    json_t *v = json_object_get(spec, key);

    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (unsigned long long)json_integer_value(v) > max) {
        snprintf(err, errlen, "server \"%s\": \"%s\" must be an integer in 0..%llu", name, key,
                 max);
        return -1;
    }
    *out = (unsigned long long)json_integer_value(v);
    return 0;
}

static int start_one(gs_runtime_t *rt, json_t *spec, char *err, size_t errlen)
{
    const char *name = json_string_value(json_object_get(spec, "name"));
    const char *bname = json_string_value(json_object_get(spec, "behaviour"));
    json_t *restart = json_object_get(spec, "restart"), *reason = NULL;
    const gs_behaviour_t *b;
    gs_start_options_t so;
    unsigned long long v;
    int rc;

    if (name == NULL || bname == NULL) {
        snprintf(err, errlen, "a server needs string \"name\" and \"behaviour\"");
        return -1;
    }
    b = gs_behaviour_find(rt, bname);
    if (b == NULL) {
        snprintf(err, errlen, "server \"%s\": no behaviour \"%s\" (built-in or plugin)", name,
                 bname);
        return -1;
    }
    gs_start_options_init(&so);
    if (restart != NULL &&
        (!json_is_string(restart) || gs_restart_parse(json_string_value(restart), &so.restart))) {
        snprintf(err, errlen,
                 "server \"%s\": \"restart\" must be \"permanent\", \"transient\" or "
                 "\"temporary\"",
                 name);
        return -1;
    }
    v = so.max_restarts;
    if (uint_field(spec, "max_restarts", 1000000, &v, err, errlen, name) < 0)
        return -1;
    so.max_restarts = (unsigned)v;
    v = so.max_seconds;
    if (uint_field(spec, "max_seconds", 86400, &v, err, errlen, name) < 0)
        return -1;
    so.max_seconds = (unsigned)v;
    v = so.mailbox_limit;
    if (uint_field(spec, "mailbox_limit", 100000000, &v, err, errlen, name) < 0)
        return -1;
    so.mailbox_limit = (size_t)v;

    rc = gs_start(rt, name, b, json_object_get(spec, "args"), &so, &reason);
    if (rc < 0) {
        char *why = reason ? json_dumps(reason, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

        snprintf(err, errlen, "server \"%s\" (%s): %s%s%s", name, bname, gs_strerror(rc),
                 why ? ": " : "", why ? why : "");
        free(why);
        json_decref(reason);
        return -1;
    }
    return 0;
}

int gs_boot_start_servers(gs_runtime_t *rt, json_t *specs, char *err, size_t errlen)
{
    size_t i;
    json_t *spec;

    json_array_foreach(specs, i, spec)
    {
        if (start_one(rt, spec, err, errlen) < 0)
            return -1;
    }
    return 0;
}

int gs_boot_start_tree(gs_runtime_t *rt, json_t *specs, char *err, size_t errlen)
{
    json_t *spec = json_pack("{s:s, s:s, s:O}", "name", GS_BOOT_ROOT, "strategy", "one_for_one",
                             "children", specs);
    json_t *why = NULL;
    int rc;

    if (spec == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rc = gs_supervisor_start(rt, spec, GS_INFINITY, &why);
    json_decref(spec);
    if (rc < 0) {
        char *text = why ? json_dumps(why, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

        snprintf(err, errlen, "supervisor \"%s\": %s%s%s", GS_BOOT_ROOT, gs_strerror(rc),
                 text ? ": " : "", text ? text : "");
        free(text);
        json_decref(why);
        return -1;
    }
    json_decref(why);
    return 0;
}

static void log_event(const gs_event_t *ev, void *arg)
{
    gs_log_level_t level = GS_LOG_INFO;
    char *why = NULL;

    (void)arg;
    if (ev->type == GS_EVENT_STATE_CHANGED)
        return;
    if (ev->type == GS_EVENT_CRASHED || ev->type == GS_EVENT_DOWN)
        level = GS_LOG_WARN;
    if (level > gs_log_level())
        return;
    if (ev->reason != NULL)
        why = json_dumps(ev->reason, JSON_COMPACT | JSON_ENCODE_ANY);
    gs_log(level, "runtime: %s %s (%s)%s%.300s", gs_event_name(ev->type),
           ev->server ? ev->server : "?", ev->behaviour ? ev->behaviour : "?",
           why ? " reason " : "", why ? why : "");
    free(why);
}

int gs_boot_log_events(gs_runtime_t *rt, gs_subscription_t **out)
{
    return gs_subscribe(rt, log_event, NULL, out);
}
