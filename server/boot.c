/*
 * boot.c: starting the configured servers, and logging runtime events.
 */
#include "boot.h"

#include "log.h"

#include <genserv/gateway.h>
#include <genserv/store.h>

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
    v = 0;
    if (uint_field(spec, "memory_limit", 1ull << 40, &v, err, errlen, name) < 0)
        return -1;
    so.memory_limit = v;
    v = 0;
    if (uint_field(spec, "instruction_limit", 1000000000000ull, &v, err, errlen, name) < 0)
        return -1;
    so.instruction_limit = v;
    json_t *flag = json_object_get(spec, "durable");
    if (flag != NULL && !json_is_boolean(flag)) {
        snprintf(err, errlen, "server \"%s\": \"durable\" must be true or false", name);
        return -1;
    }
    so.durable = json_is_true(flag);
    flag = json_object_get(spec, "sensitive");
    if (flag != NULL && !json_is_boolean(flag)) {
        snprintf(err, errlen, "server \"%s\": \"sensitive\" must be true or false", name);
        return -1;
    }
    so.sensitive = json_is_true(flag);

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

/* ---------------------------------------------------------------------------------------- */
/* What the store kept                                                                        */
/* ---------------------------------------------------------------------------------------- */

static bool collect_row(const char *key, const char *val, size_t len, void *arg)
{
    json_t *rows = arg;
    json_t *row = json_loadb(val, len, 0, NULL);
    if (!json_is_object(row)) {
        gs_log(GS_LOG_WARN, "store: the row \"%s\" is not a JSON object; skipped", key);
        json_decref(row);
        return true;
    }
    json_object_set_new(row, "$key", json_string(key));
    json_array_append_new(rows, row);
    return true;
}

static int by_ord(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "ord"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "ord"));
    return (x > y) - (x < y);
}

/* One stored start: -1 with err when it did not start (the caller logs it). */
static int restore_spec(gs_runtime_t *rt, json_t *row, char *err, size_t errlen)
{
    const char *kind = json_string_value(json_object_get(row, "kind"));
    json_t *spec = json_object_get(row, "spec"), *why = NULL;
    int rc;

    if (kind != NULL && strcmp(kind, "server") == 0)
        return start_one(rt, spec, err, errlen);
    if (kind != NULL && strcmp(kind, "supervisor") == 0)
        rc = gs_supervisor_start(rt, spec, GS_INFINITY, &why);
    else if (kind != NULL && strcmp(kind, "child") == 0)
        rc = gs_supervisor_start_child(rt, json_string_value(json_object_get(spec, "supervisor")),
                                       json_object_get(spec, "child"), GS_INFINITY, &why);
    else
        rc = GS_EINVAL;
    if (rc == 0) {
        json_decref(why);
        return 0;
    }
    char *text = why != NULL ? json_dumps(why, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    snprintf(err, errlen, "%s: %s%s%s", kind != NULL ? kind : "unknown kind", gs_strerror(rc),
             text ? ": " : "", text ? text : "");
    free(text);
    json_decref(why);
    return -1;
}

int gs_boot_restore(gs_runtime_t *rt, const struct gs_gateway_code_s *code, char *err,
                    size_t errlen)
{
    gs_store_t *st = gs_runtime_store(rt);
    json_t *rows = NULL, *row, *report = NULL;
    size_t i, started = 0, failed = 0;
    char why[512];
    int rc = -1;

    if (st == NULL)
        return 0;
    /* Behaviours first: the servers that run them come next. */
    rows = json_array();
    if (st->load(st, GS_STORE_BEHAVIOURS, collect_row, rows) != 0)
        goto unreadable;
    json_array_foreach(rows, i, row)
    {
        const char *name = json_string_value(json_object_get(row, "$key"));
        const char *source = json_string_value(json_object_get(row, "source"));
        json_t *lerr = NULL;
        int lrc = code != NULL && code->load != NULL && source != NULL
                      ? code->load(code->ctx, name, json_string_value(json_object_get(row, "vsn")),
                                   source, json_string_length(json_object_get(row, "source")),
                                   json_object_get(row, "limits"), &lerr)
                      : GS_ENOTSUP;
        if (lrc != 0) {
            char *t = lerr != NULL ? json_dumps(lerr, JSON_ENCODE_ANY) : NULL;
            gs_log(GS_LOG_WARN, "store: behaviour \"%s\" did not load again (%s%s%s); kept", name,
                   gs_strerror(lrc), t ? ": " : "", t ? t : "");
            free(t);
        }
        json_decref(lerr);
    }
    json_decref(rows);

    rows = json_array();
    if (st->load(st, GS_STORE_SPECS, collect_row, rows) != 0)
        goto unreadable;
    size_t n = json_array_size(rows);
    json_t **sorted = malloc((n ? n : 1) * sizeof(*sorted));
    if (sorted == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    json_array_foreach(rows, i, row) sorted[i] = row;
    qsort(sorted, n, sizeof(*sorted), by_ord);
    for (i = 0; i < n; i++) {
        if (restore_spec(rt, sorted[i], why, sizeof(why)) == 0) {
            started++;
        } else {
            failed++;
            gs_log(GS_LOG_WARN, "store: \"%s\" did not start again (%s); its spec is kept",
                   json_string_value(json_object_get(sorted[i], "$key")), why);
        }
    }
    free(sorted);
    if (gs_runtime_restore_timers(rt, &report) != 0)
        goto unreadable;
    gs_log(GS_LOG_INFO,
           "store: %s: %zu started again (%zu did not); timers: %lld restored, %lld overdue, "
           "%lld skipped",
           st->location, started, failed,
           (long long)json_integer_value(json_object_get(report, "restored")),
           (long long)json_integer_value(json_object_get(report, "overdue")),
           (long long)json_integer_value(json_object_get(report, "skipped")));
    rc = 0;
    goto out;
unreadable:
    snprintf(err, errlen, "%s", st->last_error(st));
out:
    json_decref(report);
    json_decref(rows);
    return rc;
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
