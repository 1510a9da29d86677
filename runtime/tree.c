/*
 * tree.c: supervision trees. A supervisor is a server like any other (an actor, as an OTP
 * supervisor is a process): it has a name in the registry, a mailbox, and an internal C
 * behaviour whose callbacks make every decision one message at a time. Nothing here blocks a
 * scheduler thread: a child's exit arrives as a message, stops are gs_stop_async, and a
 * child's shutdown time is a timer of the supervisor's own.
 *
 * API:
 *   gs_supervisor_start_async  validate the spec, start the supervisor's server (its init
 *                      only parses), then call it with ["$gs_start_children"]: it starts its
 *                      children in order and answers once they all run, or once the ones it
 *                      started are stopped again (in reverse order) after one failed.
 *   exit notices       supervisor.c sends a tree child's exit to its supervisor as the info
 *                      ["$gs_exit", GEN, REASON, ABNORMAL, REQUESTED]; GEN tells one
 *                      registration of a child from the next, so that a late notice is
 *                      ignored; REQUESTED, a stop someone else asked for (gs_stop, DELETE
 *                      /servers/NAME): the child is then forgotten, not restarted.
 *   jobs               what takes time (stopping children, starting a nested supervisor) is a
 *                      job: a list of STOP and START steps run in order, each STOP waiting for
 *                      its child's exit notice (or its shutdown timer). Whatever arrives while
 *                      a job runs (another child's exit, a request) waits in the backlog and
 *                      is handled, in order, once the job is done: the OTP supervisor's
 *                      "one decision at a time", without blocking a thread.
 *   strategies         one_for_one restarts the child; one_for_all stops the others (reverse
 *                      start order) and restarts all; rest_for_one the same for the children
 *                      started after it. Restarts count against the supervisor's intensity;
 *                      past it the supervisor stops every child (reverse order) and stops with
 *                      {"reason": "reached_max_restart_intensity", ...}, which its parent sees
 *                      as a crash of a child. A supervisor at the top of a tree is temporary:
 *                      it is removed (event "down" with that reason), never restarted.
 * Introspection (gs_supervisor_json) reads the trees under rt->trees_lock, which only the
 * supervisors' decisions and introspection take: calls and casts never see it.
 */
#include "runtime_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Specs                                                                                      */
/* ---------------------------------------------------------------------------------------- */

typedef enum { ONE_FOR_ONE = 0, ONE_FOR_ALL, REST_FOR_ONE } strategy_t;
static const char *const strategy_names[] = {"one_for_one", "one_for_all", "rest_for_one"};

#define DEFAULT_SHUTDOWN_MS 5000 /* Elixir's default for workers; supervisors: infinity */

/* The spec's error, as a new {"message": ...} */
static json_t *spec_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *spec_error(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return json_pack("{s:s}", "message", buf);
}

static bool is_supervisor_spec(const json_t *spec)
{
    return json_object_get(spec, "children") != NULL || json_object_get(spec, "strategy") != NULL;
}

/* Validate one spec (a supervisor's when sup) and its children; names collects every name of
 * the tree (borrowed object) to refuse duplicates. NULL, or the error (new). */
static json_t *check_spec(gs_runtime_t *rt, const json_t *spec, bool sup, json_t *names)
{
    static const char *const sup_keys[] = {"name",     "strategy", "max_restarts", "max_seconds",
                                           "children", "restart",  "shutdown",     NULL};
    static const char *const srv_keys[] = {"name",     "behaviour", "args", "restart",
                                           "shutdown", "durable",   NULL};
    const char *key;
    json_t *v;

    if (!json_is_object(spec))
        return spec_error("a child spec must be a JSON object");
    const char *name = json_string_value(json_object_get(spec, "name"));
    if (name == NULL || name[0] == '\0' || strlen(name) > GS__NAME_MAX)
        return spec_error("every spec needs a \"name\": a string of 1 to 255 bytes");
    if (json_object_get(names, name) != NULL)
        return spec_error("the name \"%s\" appears twice in the tree", name);
    json_object_set_new(names, name, json_true());
    json_object_foreach((json_t *)spec, key, v)
    {
        bool known = false;
        for (const char *const *k = sup ? sup_keys : srv_keys; *k != NULL; k++)
            known = known || strcmp(*k, key) == 0;
        if (!known)
            return spec_error(sup ? "supervisor \"%s\": unknown field \"%s\""
                                  : "server \"%s\": unknown field \"%s\" (a nested supervisor "
                                    "has \"children\")",
                              name, key);
    }
    gs_restart_t r;
    v = json_object_get(spec, "restart");
    if (v != NULL && gs_restart_parse(json_string_value(v), &r) != 0)
        return spec_error("\"%s\": restart must be permanent, transient or temporary", name);
    v = json_object_get(spec, "shutdown");
    if (v != NULL &&
        !(json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= INT32_MAX) &&
        !(json_is_string(v) && strcmp(json_string_value(v), "infinity") == 0))
        return spec_error("\"%s\": shutdown must be milliseconds (0 to 2147483647) or "
                          "\"infinity\"",
                          name);
    if (!sup) {
        const char *b = json_string_value(json_object_get(spec, "behaviour"));
        if (b == NULL)
            return spec_error("server \"%s\" needs a \"behaviour\" (a nested supervisor has "
                              "\"children\")",
                              name);
        if (gs_behaviour_find(rt, b) == NULL)
            return spec_error("server \"%s\": no behaviour is registered under \"%s\"", name, b);
        v = json_object_get(spec, "durable");
        if (v != NULL && !json_is_boolean(v))
            return spec_error("server \"%s\": durable must be true or false", name);
        return NULL;
    }
    v = json_object_get(spec, "strategy");
    if (v != NULL) {
        bool ok = false;
        for (int i = 0; i < 3; i++)
            ok = ok || (json_is_string(v) && strcmp(json_string_value(v), strategy_names[i]) == 0);
        if (!ok)
            return spec_error("supervisor \"%s\": strategy must be one_for_one, one_for_all or "
                              "rest_for_one",
                              name);
    }
    v = json_object_get(spec, "max_restarts");
    if (v != NULL &&
        !(json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 1000000))
        return spec_error("supervisor \"%s\": max_restarts must be an integer from 0 to 1000000",
                          name);
    v = json_object_get(spec, "max_seconds");
    if (v != NULL &&
        !(json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 86400 * 365))
        return spec_error("supervisor \"%s\": max_seconds must be an integer from 1 to 31536000",
                          name);
    json_t *children = json_object_get(spec, "children");
    if (children != NULL && !json_is_array(children))
        return spec_error("supervisor \"%s\": children must be an array", name);
    size_t i;
    json_array_foreach(children, i, v)
    {
        json_t *err = check_spec(rt, v, is_supervisor_spec(v), names);
        if (err != NULL)
            return err;
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* A supervisor's state                                                                       */
/* ---------------------------------------------------------------------------------------- */

typedef enum {
    KID_STOPPED = 0, /* not running: terminated, not restarted, or init said :ignore */
    KID_STARTING,    /* a nested supervisor starting its children */
    KID_RUNNING,
    KID_TERMINATING, /* asked to stop; waiting for its exit or its shutdown time */
    KID_RESTARTING,  /* exited; its supervisor is about to restart it */
} kid_status_t;
static const char *const kid_status_names[] = {"stopped", "starting", "running", "terminating",
                                               "restarting"};

typedef struct kid_s {
    char *name;
    json_t *spec; /* owned: as given (a nested supervisor's init args) */
    bool sup;     /* a nested supervisor */
    gs_start_options_t opts;
    int64_t shutdown_ms; /* GS_INFINITY: wait as long as it takes */
    gs__child_t *c;      /* referenced: the registration it last had, or NULL */
    uint64_t gen;        /* that registration's id while it runs; 0 once it exited */
    uint32_t restarts;   /* trees lock for writes */
    kid_status_t status; /* trees lock for writes */
    bool exit_pending;   /* it exited by itself; its supervisor has not decided yet */
    bool exit_abnormal;
    bool exit_requested; /* a stop someone else asked for (gs_stop, DELETE /servers/NAME) */
    json_t *exit_reason; /* owned while exit_pending */
    bool kill_armed;
    gs_timer_ref_t kill_ref;
} kid_t;

typedef enum { STEP_STOP = 1, STEP_START } step_op_t;
typedef struct step_s {
    step_op_t op;
    size_t kid;
} step_t;

typedef enum {
    JOB_NONE = 0,
    JOB_START_ALL,
    JOB_START_CHILD,
    JOB_RESTART, /* a strategy after an exit */
    JOB_TERMINATE_CHILD,
    JOB_RESTART_CHILD,
    JOB_SHUTDOWN, /* stop the tree: on request, or past the intensity */
} job_kind_t;

typedef struct job_s {
    job_kind_t kind;
    step_t *steps;
    size_t n, at;
    bool waiting;  /* the step at `at` waits for a message */
    bool has_from; /* a request waits for the job's outcome */
    gs_from_t from;
    json_t *error; /* owned: the job failed: what to answer ({"error": code, ...}) */
    json_t *die;   /* owned: once done, the supervisor stops with this reason */
} job_t;

typedef struct gs__tree_s {
    struct gs__tree_s *next; /* rt->trees (trees lock) */
    gs_runtime_t *rt;
    gs_server_t *self; /* borrowed: the incarnation whose state this is */
    char *name;
    strategy_t strategy;
    unsigned max_restarts, max_seconds;
    uint64_t *restart_times; /* ring of max_restarts timestamps (ms) */
    unsigned restart_next;
    kid_t *kids; /* in start order; trees lock for writes */
    size_t nkids, cap;
    uint64_t next_gen;
    job_t job;
    json_t *backlog; /* owned array: what waits for the job to end */
    bool top;        /* no parent: the top of a tree */
    bool started;    /* its children were started once */
} gs__tree_t;

static uint64_t gen_counter(gs__tree_t *t)
{
    return ++t->next_gen;
}

static void tree_lock(gs_runtime_t *rt)
{
    uv_mutex_lock(&rt->trees_lock);
}

static void tree_unlock(gs_runtime_t *rt)
{
    uv_mutex_unlock(&rt->trees_lock);
}

static void kid_set_status(gs__tree_t *t, kid_t *k, kid_status_t st)
{
    tree_lock(t->rt);
    k->status = st;
    tree_unlock(t->rt);
}

static void kid_close(kid_t *k)
{
    free(k->name);
    json_decref(k->spec);
    json_decref(k->exit_reason);
    gs__child_unref(k->c);
}

/* Fill k from a checked spec (borrowed; k keeps a copy). */
static void kid_init(kid_t *k, const json_t *spec)
{
    memset(k, 0, sizeof(*k));
    k->spec = json_deep_copy(spec);
    k->name = strdup(json_string_value(json_object_get(spec, "name")));
    if (k->name == NULL || k->spec == NULL)
        abort(); /* tiny internal allocation */
    k->sup = is_supervisor_spec(spec);
    gs_start_options_init(&k->opts);
    json_t *v = json_object_get(spec, "restart");
    if (v != NULL)
        gs_restart_parse(json_string_value(v), &k->opts.restart);
    k->opts.durable = json_is_true(json_object_get(spec, "durable"));
    v = json_object_get(spec, "shutdown");
    if (json_is_integer(v))
        k->shutdown_ms = json_integer_value(v);
    else if (v != NULL || k->sup)
        k->shutdown_ms = GS_INFINITY; /* OTP's default for supervisors */
    else
        k->shutdown_ms = DEFAULT_SHUTDOWN_MS;
}

/* Append a kid (trees lock); its index. */
static size_t kids_append(gs__tree_t *t, const json_t *spec)
{
    tree_lock(t->rt);
    if (t->nkids == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        kid_t *kids = realloc(t->kids, cap * sizeof(*kids));
        if (kids == NULL)
            abort(); /* tiny internal allocation */
        t->kids = kids;
        t->cap = cap;
    }
    kid_init(&t->kids[t->nkids], spec);
    size_t i = t->nkids++;
    tree_unlock(t->rt);
    return i;
}

static void kids_remove(gs__tree_t *t, size_t i)
{
    tree_lock(t->rt);
    kid_t gone = t->kids[i];
    memmove(&t->kids[i], &t->kids[i + 1], (t->nkids - i - 1) * sizeof(kid_t));
    t->nkids--;
    tree_unlock(t->rt);
    kid_close(&gone);
}

static kid_t *kid_by_name(gs__tree_t *t, const char *name, size_t *index)
{
    for (size_t i = 0; name != NULL && i < t->nkids; i++) {
        if (strcmp(t->kids[i].name, name) == 0) {
            if (index != NULL)
                *index = i;
            return &t->kids[i];
        }
    }
    return NULL;
}

static kid_t *kid_by_gen(gs__tree_t *t, uint64_t gen, size_t *index)
{
    for (size_t i = 0; gen != 0 && i < t->nkids; i++) {
        if (t->kids[i].gen == gen) {
            *index = i;
            return &t->kids[i];
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Introspection                                                                              */
/* ---------------------------------------------------------------------------------------- */

static gs__tree_t *tree_find_locked(gs_runtime_t *rt, const char *name)
{
    for (gs__tree_t *t = rt->trees; t != NULL; t = t->next)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

static const char *tree_status(const gs__tree_t *t)
{
    switch (t->job.kind) {
    case JOB_START_ALL:
        return "starting";
    case JOB_SHUTDOWN:
        return "stopping";
    case JOB_RESTART:
        return "restarting";
    default:
        return "running";
    }
}

static json_t *tree_json_locked(gs_runtime_t *rt, const gs__tree_t *t, int depth);

static json_t *kid_json_locked(gs_runtime_t *rt, const kid_t *k, int depth)
{
    json_t *j;
    const gs__tree_t *nested = NULL;
    if (k->sup && depth < 64 && k->status != KID_STOPPED)
        nested = tree_find_locked(rt, k->name);
    if (nested != NULL) {
        j = tree_json_locked(rt, nested, depth + 1);
    } else if (k->sup) {
        j = json_pack("{s:s, s:s, s:[]}", "name", k->name, "kind", "supervisor", "children");
        const char *strategy = json_string_value(json_object_get(k->spec, "strategy"));
        json_object_set_new(j, "strategy", json_string(strategy ? strategy : "one_for_one"));
    } else {
        /* Copied, not shared: the spec belongs to the supervisor's thread. */
        j = json_pack("{s:s, s:s, s:s, s:b}", "name", k->name, "kind", "server", "behaviour",
                      json_string_value(json_object_get(k->spec, "behaviour")), "durable",
                      k->opts.durable);
    }
    json_object_set_new(j, "status", json_string(kid_status_names[k->status]));
    json_object_set_new(j, "restarts", json_integer(k->restarts));
    json_object_set_new(j, "restart", json_string(gs_restart_name(k->opts.restart)));
    json_object_set_new(j, "shutdown",
                        k->shutdown_ms == GS_INFINITY ? json_string("infinity")
                                                      : json_integer(k->shutdown_ms));
    return j;
}

static json_t *tree_json_locked(gs_runtime_t *rt, const gs__tree_t *t, int depth)
{
    json_t *children = json_array();
    for (size_t i = 0; i < t->nkids; i++)
        json_array_append_new(children, kid_json_locked(rt, &t->kids[i], depth));
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:o}", "name", t->name, "kind",
                     "supervisor", "status", tree_status(t), "strategy",
                     strategy_names[t->strategy], "restarts", (json_int_t)0, "max_restarts",
                     (json_int_t)t->max_restarts, "max_seconds", (json_int_t)t->max_seconds,
                     "children", children);
}

json_t *gs_supervisor_json(gs_runtime_t *rt, const char *name)
{
    if (rt == NULL || name == NULL)
        return NULL;
    tree_lock(rt);
    gs__tree_t *t = tree_find_locked(rt, name);
    json_t *j = t != NULL ? tree_json_locked(rt, t, 0) : NULL;
    tree_unlock(rt);
    return j;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
                  json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

json_t *gs_supervisors_json(gs_runtime_t *rt)
{
    json_t *list = json_array();
    size_t n = 0;
    tree_lock(rt);
    for (gs__tree_t *t = rt->trees; t != NULL; t = t->next)
        if (t->top)
            json_array_append_new(list, tree_json_locked(rt, t, 0));
    tree_unlock(rt);
    n = json_array_size(list);
    json_t **items = malloc((n ? n : 1) * sizeof(*items));
    if (items == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        items[i] = json_incref(json_array_get(list, i));
    qsort(items, n, sizeof(*items), by_name);
    json_array_clear(list);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, items[i]);
    free(items);
    return json_pack("{s:o}", "supervisors", list);
}

/* ---------------------------------------------------------------------------------------- */
/* Jobs                                                                                       */
/* ---------------------------------------------------------------------------------------- */

static json_t *run_job(gs__tree_t *t);

/* Take t out of the listings (idempotent). */
static void tree_unlink(gs__tree_t *t)
{
    tree_lock(t->rt);
    for (gs__tree_t **p = &t->rt->trees; *p != NULL; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    tree_unlock(t->rt);
}

static void job_push(job_t *j, step_op_t op, size_t kid)
{
    step_t *steps = realloc(j->steps, (j->n + 1) * sizeof(*steps));
    if (steps == NULL)
        abort(); /* tiny internal allocation */
    j->steps = steps;
    j->steps[j->n++] = (step_t){op, kid};
}

static void job_begin(gs__tree_t *t, job_kind_t kind, const gs_from_t *from)
{
    tree_lock(t->rt);
    t->job = (job_t){.kind = kind};
    tree_unlock(t->rt);
    if (from != NULL) {
        t->job.has_from = true;
        t->job.from = *from;
    }
}

static json_t *error_reply(int code, json_t *reason)
{
    return json_pack("{s:I, s:o}", "error", (json_int_t)code, "reason",
                     reason != NULL ? reason : json_null());
}

static json_t *ok_reply(json_t *result)
{
    return json_pack("{s:o}", "ok", result != NULL ? result : json_true());
}

/* Stop kid i: gs_stop_async_opts with its shutdown time, past which the runtime kills the
 * incarnation as soon as the handler it runs returns (for a nested supervisor, a stop of its
 * tree); and the same time as a timer of ours, which takes the name back from a child whose
 * handler does not return. Its exit notice ends the wait. */
static void stop_done(int status, void *arg)
{
    (void)status; /* the exit notice is what counts; a child already gone sends one too */
    (void)arg;
}

static void kid_stop(gs__tree_t *t, kid_t *k)
{
    gs_stop_options_t so;
    gs_stop_options_init(&so);
    so.timeout_ms = (int)k->shutdown_ms; /* GS_INFINITY, or checked to fit at parse */
    kid_set_status(t, k, KID_TERMINATING);
    gs_stop_async_opts(t->rt, k->name, json_string("shutdown"), &so, stop_done, NULL);
    if (k->shutdown_ms != GS_INFINITY) {
        json_t *msg = json_pack("[s, I]", "$gs_kill", (json_int_t)k->gen);
        k->kill_armed =
            gs_send_after_server(t->self, msg, (uint64_t)k->shutdown_ms, &k->kill_ref) == 0;
    }
}

/* Start kid i now. 0 (*async: a nested supervisor whose children are starting: its answer
 * comes as a message), or an error with *why (new). */
static int kid_start(gs__tree_t *t, size_t i, bool restart, json_t **why, bool *async)
{
    kid_t *k = &t->kids[i];
    const gs_behaviour_t *b = &gs__tree_behaviour;
    *why = NULL;
    *async = false;
    if (!k->sup) {
        const char *bname = json_string_value(json_object_get(k->spec, "behaviour"));
        b = gs_behaviour_find(t->rt, bname);
        if (b == NULL) {
            *why = json_string(bname);
            return GS_ENOBEHAVIOUR;
        }
    }
    gs__child_unref(k->c);
    k->c = NULL;
    k->exit_pending = false;
    json_decref(k->exit_reason);
    k->exit_reason = NULL;
    k->gen = gen_counter(t);
    gs__tree_link_t link = {.parent = t->self,
                            .gen = k->gen,
                            .restarts = k->restarts,
                            .tree = k->sup,
                            .restart = restart};
    json_t *args = k->sup ? k->spec : json_object_get(k->spec, "args");
    int rc = gs__start_child(t->rt, k->name, b, args, &k->opts, &link, why, &k->c);
    if (rc != 0) {
        k->gen = 0;
        kid_set_status(t, k, KID_STOPPED);
        return rc;
    }
    if (!k->sup) {
        kid_set_status(t, k, KID_RUNNING);
        return 0;
    }
    kid_set_status(t, k, KID_STARTING);
    json_t *tag = json_pack("[s, I]", "$gs_started", (json_int_t)k->gen);
    rc =
        gs_send_request(t->self, k->name, json_pack("[s]", "$gs_start_children"), GS_INFINITY, tag);
    if (rc != 0) {
        /* It died already: its exit notice is on the way and will be ignored (gen 0). */
        k->gen = 0;
        kid_set_status(t, k, KID_STOPPED);
        *why = json_string(gs_err_name(rc));
        return rc;
    }
    *async = true;
    return 0;
}

static void backlog_push(gs__tree_t *t, json_t *item)
{
    json_array_append_new(t->backlog, item);
}

/* A START step failed (rc, why taken) for kid i. */
static void start_failed(gs__tree_t *t, size_t i, int rc, json_t *why)
{
    job_t *j = &t->job;
    kid_t *k = &t->kids[i];
    json_t *details = json_pack("{s:s, s:s, s:o}", "child", k->name, "error", gs_err_name(rc),
                                "reason", why != NULL ? why : json_null());
    switch (j->kind) {
    case JOB_START_ALL:
        /* Stop the ones already started, in reverse order, then stop: as OTP's supervisor
         * init does when a child's start fails. */
        j->error = error_reply(GS_ESTARTCHILD, details);
        j->n = j->at + 1;
        for (size_t s = j->at; s-- > 0;)
            if (j->steps[s].op == STEP_START)
                job_push(j, STEP_STOP, j->steps[s].kid);
        j->die = json_string("normal");
        break;
    case JOB_START_CHILD:
    case JOB_RESTART_CHILD:
        j->error = error_reply(GS_ESTARTCHILD, details);
        break;
    default:
        /* A restart that failed is another crash of that child: decided once this job is
         * done (counting against the intensity), as OTP retries a failed restart. */
        json_decref(details);
        k->exit_pending = true;
        k->exit_abnormal = true;
        k->exit_requested = false;
        json_decref(k->exit_reason);
        k->exit_reason =
            json_pack("{s:s, s:s}", "reason", "restart_failed", "error", gs_err_name(rc));
        kid_set_status(t, k, KID_RESTARTING);
        backlog_push(t, json_pack("[s, s]", "exit", k->name));
        break;
    }
}

static json_t *handle_backlog(gs__tree_t *t);

/* The job is done: answer, clean up, then what waited. Stop reason (new) or NULL. */
static json_t *finish_job(gs__tree_t *t)
{
    job_t j = t->job;
    json_t *answer;
    job_begin(t, JOB_NONE, NULL);
    if (j.error != NULL) {
        answer = j.error;
        if (j.kind == JOB_START_CHILD)
            kids_remove(t, t->nkids - 1);
    } else if (j.kind == JOB_START_ALL) {
        answer = ok_reply(gs_supervisor_json(t->rt, t->name));
    } else if (j.kind == JOB_START_CHILD) {
        tree_lock(t->rt);
        answer = ok_reply(kid_json_locked(t->rt, &t->kids[t->nkids - 1], 0));
        tree_unlock(t->rt);
    } else {
        answer = ok_reply(NULL);
    }
    free(j.steps);
    if (j.die != NULL) {
        /* Gone from the listings and from the registry before the answer, so that whoever
         * gets it (a failed POST /supervisors, a DELETE) may use the name again at once; the
         * exit that follows finds the name already free (gs__child_forget does nothing then). */
        tree_unlink(t);
        gs__child_forget(t->rt, t->self->child);
    }
    if (j.has_from)
        gs_reply(j.from, answer);
    else
        json_decref(answer);
    if (j.die != NULL)
        return j.die;
    return handle_backlog(t);
}

static json_t *run_job(gs__tree_t *t)
{
    job_t *j = &t->job;
    while (j->at < j->n) {
        step_t st = j->steps[j->at];
        kid_t *k = &t->kids[st.kid];
        if (st.op == STEP_STOP) {
            if (k->gen == 0 || k->status == KID_STOPPED) {
                j->at++;
                continue;
            }
            if (k->status != KID_TERMINATING)
                kid_stop(t, k);
            j->waiting = true;
            return NULL;
        }
        json_t *why;
        bool async;
        bool restart = j->kind == JOB_RESTART || j->kind == JOB_RESTART_CHILD;
        if (restart) {
            tree_lock(t->rt);
            k->restarts++;
            tree_unlock(t->rt);
        }
        int rc = kid_start(t, st.kid, restart, &why, &async);
        if (rc == GS_EIGNORED) {
            json_decref(why); /* :ignore: kept as a stopped child, as OTP keeps its spec */
        } else if (rc != 0) {
            start_failed(t, st.kid, rc, why);
        } else if (async) {
            j->waiting = true;
            return NULL;
        }
        j->at++;
    }
    return finish_job(t);
}

/* The step at `at` is done: go on. */
static json_t *job_step_done(gs__tree_t *t)
{
    t->job.waiting = false;
    t->job.at++;
    return run_job(t);
}

/* Is the job's current step waiting for kid i with op? */
static bool job_waits_for(const gs__tree_t *t, size_t i, step_op_t op)
{
    const job_t *j = &t->job;
    return j->kind != JOB_NONE && j->waiting && j->at < j->n && j->steps[j->at].kid == i &&
           j->steps[j->at].op == op;
}

/* ---------------------------------------------------------------------------------------- */
/* Restart intensity and strategies                                                           */
/* ---------------------------------------------------------------------------------------- */

static bool intensity_allows(gs__tree_t *t, uint64_t now_ms)
{
    unsigned max = t->max_restarts;
    if (max == 0)
        return false;
    uint64_t period = (uint64_t)t->max_seconds * 1000u;
    unsigned recent = 0;
    for (unsigned i = 0; i < max; i++)
        if (t->restart_times[i] != UINT64_MAX && now_ms - t->restart_times[i] < period)
            recent++;
    if (recent >= max)
        return false;
    t->restart_times[t->restart_next] = now_ms;
    t->restart_next = (t->restart_next + 1) % max;
    return true;
}

/* Stop every running child in reverse start order, then stop with reason (taken). */
static json_t *shutdown_tree(gs__tree_t *t, json_t *reason, const gs_from_t *from)
{
    job_begin(t, JOB_SHUTDOWN, from);
    for (size_t i = t->nkids; i-- > 0;)
        job_push(&t->job, STEP_STOP, i);
    t->job.die = reason;
    return run_job(t);
}

/* Kid i exited by itself and no job is running: apply its restart type and the strategy. */
static json_t *handle_exit(gs__tree_t *t, size_t i)
{
    kid_t *k = &t->kids[i];
    json_t *reason = k->exit_reason;
    bool abnormal = k->exit_abnormal;
    k->exit_pending = false;
    k->exit_reason = NULL;
    if (k->exit_requested) {
        /* Stopped by someone else (gs_stop, DELETE /servers/NAME): as terminate_child then
         * delete_child, whatever its restart type, and not counted against the intensity, so
         * that stopping a child can never take its tree down (docs/runtime.md). */
        k->exit_requested = false;
        json_decref(reason);
        kid_set_status(t, k, KID_STOPPED);
        kids_remove(t, i);
        return handle_backlog(t);
    }
    bool restart = k->opts.restart == GS_PERMANENT || (k->opts.restart == GS_TRANSIENT && abnormal);
    if (!restart) {
        kid_set_status(t, k, KID_STOPPED);
        if (abnormal && k->c != NULL)
            gs__emit(t->rt, GS_EVENT_DOWN, k->c, reason);
        json_decref(reason);
        if (k->opts.restart == GS_TEMPORARY)
            kids_remove(t, i); /* as OTP forgets a temporary child */
        return handle_backlog(t);
    }
    if (!intensity_allows(t, gs__now_ms())) {
        json_t *why =
            json_pack("{s:s, s:s, s:I, s:I, s:s, s:o}", "reason", "reached_max_restart_intensity",
                      "supervisor", t->name, "max_restarts", (json_int_t)t->max_restarts,
                      "max_seconds", (json_int_t)t->max_seconds, "child", k->name, "last_reason",
                      reason != NULL ? reason : json_null());
        return shutdown_tree(t, why, NULL);
    }
    json_decref(reason);
    job_begin(t, JOB_RESTART, NULL);
    kid_set_status(t, k, KID_RESTARTING);
    size_t first = t->strategy == ONE_FOR_ALL ? 0 : i;
    bool others = t->strategy != ONE_FOR_ONE;
    bool *again = calloc(t->nkids, sizeof(bool));
    if (again == NULL)
        abort();
    again[i] = true;
    for (size_t s = t->nkids; others && s-- > first;) {
        if (s == i || t->kids[s].gen == 0)
            continue;
        job_push(&t->job, STEP_STOP, s);
        /* A temporary sibling is not started again (OTP deletes it); it stays, stopped. */
        again[s] = t->kids[s].opts.restart != GS_TEMPORARY;
    }
    for (size_t s = first; s < t->nkids; s++)
        if (again[s])
            job_push(&t->job, STEP_START, s);
    free(again);
    return run_job(t);
}

/* ---------------------------------------------------------------------------------------- */
/* Requests                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static const char *req_child(json_t *msg)
{
    return json_string_value(json_array_get(msg, 1));
}

/* A request from handle_call (or the backlog); from answered now or when its job is done. */
static json_t *handle_request(gs__tree_t *t, json_t *msg, gs_from_t from)
{
    const char *op = json_string_value(json_array_get(msg, 0));
    size_t i = 0;
    kid_t *k;

    if (strcmp(op, "$gs_start_children") == 0) {
        if (t->started) {
            gs_reply(from, error_reply(GS_EALREADY, NULL));
            return NULL;
        }
        t->started = true;
        job_begin(t, JOB_START_ALL, &from);
        for (size_t s = 0; s < t->nkids; s++)
            job_push(&t->job, STEP_START, s);
        return run_job(t);
    }
    if (strcmp(op, "$gs_stop_tree") == 0) {
        json_t *reason = json_array_get(msg, 1);
        /* A stop asked for (gs_stop, DELETE): its exit notice says so to its own parent, which
         * then forgets it rather than restarting it (this thread runs the incarnation). */
        t->self->child->stopping = true;
        return shutdown_tree(t, reason != NULL ? json_deep_copy(reason) : json_string("shutdown"),
                             &from);
    }
    if (strcmp(op, "$gs_start_child") == 0) {
        json_t *spec = json_array_get(msg, 1);
        json_t *names = json_object();
        json_t *err = check_spec(t->rt, spec, is_supervisor_spec(spec), names);
        json_decref(names);
        if (err != NULL) {
            gs_reply(from, error_reply(GS_EINVAL, err));
            return NULL;
        }
        if (kid_by_name(t, json_string_value(json_object_get(spec, "name")), NULL) != NULL) {
            gs_reply(from, error_reply(GS_EALREADY, NULL));
            return NULL;
        }
        i = kids_append(t, spec);
        job_begin(t, JOB_START_CHILD, &from);
        job_push(&t->job, STEP_START, i);
        return run_job(t);
    }
    k = kid_by_name(t, req_child(msg), &i);
    if (k == NULL) {
        gs_reply(from, error_reply(GS_ENOCHILD, json_string(req_child(msg) ? req_child(msg) : "")));
        return NULL;
    }
    if (strcmp(op, "$gs_terminate_child") == 0) {
        job_begin(t, JOB_TERMINATE_CHILD, &from);
        job_push(&t->job, STEP_STOP, i);
        return run_job(t);
    }
    if (strcmp(op, "$gs_restart_child") == 0 || strcmp(op, "$gs_delete_child") == 0) {
        if (k->gen != 0) {
            gs_reply(from, error_reply(GS_ERUNNING, NULL));
            return NULL;
        }
        if (strcmp(op, "$gs_delete_child") == 0) {
            kids_remove(t, i);
            gs_reply(from, ok_reply(NULL));
            return NULL;
        }
        job_begin(t, JOB_RESTART_CHILD, &from);
        job_push(&t->job, STEP_START, i);
        return run_job(t);
    }
    gs_reply(from, error_reply(GS_EINVAL, json_string(op)));
    return NULL;
}

/* What waited for the last job, in order, until one starts a job of its own. */
static json_t *handle_backlog(gs__tree_t *t)
{
    while (t->job.kind == JOB_NONE && json_array_size(t->backlog) > 0) {
        json_t *item = json_incref(json_array_get(t->backlog, 0));
        json_array_remove(t->backlog, 0);
        const char *what = json_string_value(json_array_get(item, 0));
        json_t *stop = NULL;
        size_t i;
        if (strcmp(what, "exit") == 0) {
            kid_t *k = kid_by_name(t, req_child(item), &i);
            if (k != NULL && k->exit_pending)
                stop = handle_exit(t, i);
        } else {
            gs_from_t from = {t->rt, (uint64_t)json_integer_value(json_array_get(item, 2))};
            stop = handle_request(t, json_array_get(item, 1), from);
        }
        json_decref(item);
        if (stop != NULL)
            return stop;
    }
    return NULL;
}

/* A child's exit notice: ["$gs_exit", GEN, REASON, ABNORMAL, REQUESTED]. */
static json_t *on_exit_notice(gs__tree_t *t, json_t *msg)
{
    size_t i;
    kid_t *k = kid_by_gen(t, (uint64_t)json_integer_value(json_array_get(msg, 1)), &i);
    if (k == NULL)
        return NULL; /* a registration we forgot already */
    k->gen = 0;
    if (k->kill_armed) {
        gs_cancel_timer(t->rt, k->kill_ref, NULL);
        k->kill_armed = false;
    }
    if (k->status == KID_TERMINATING) {
        kid_set_status(t, k, KID_STOPPED);
        return job_waits_for(t, i, STEP_STOP) ? job_step_done(t) : NULL;
    }
    if (k->status == KID_STARTING) {
        /* A nested supervisor that died before it answered: its start failed. */
        kid_set_status(t, k, KID_STOPPED);
        start_failed(t, i, GS_ESTARTCHILD, json_deep_copy(json_array_get(msg, 2)));
        return job_waits_for(t, i, STEP_START) ? job_step_done(t) : NULL;
    }
    /* By itself: a crash, a normal exit, or a stop someone else asked for. */
    k->exit_pending = true;
    k->exit_abnormal = json_is_true(json_array_get(msg, 3));
    k->exit_requested = json_is_true(json_array_get(msg, 4));
    json_decref(k->exit_reason);
    k->exit_reason = json_deep_copy(json_array_get(msg, 2));
    kid_set_status(t, k, KID_RESTARTING);
    if (t->job.kind != JOB_NONE) {
        backlog_push(t, json_pack("[s, s]", "exit", k->name));
        return NULL;
    }
    return handle_exit(t, i);
}

/* A child's shutdown time passed: ["$gs_kill", GEN]. */
static json_t *on_kill(gs__tree_t *t, json_t *msg)
{
    size_t i;
    kid_t *k = kid_by_gen(t, (uint64_t)json_integer_value(json_array_get(msg, 1)), &i);
    if (k == NULL || k->status != KID_TERMINATING)
        return NULL;
    k->kill_armed = false;
    /* The runtime's kill (gs_stop_async_opts above) ends the incarnation when its handler
     * returns; this one has not returned yet. No thread can interrupt a C callback: it
     * finishes on its own, but its name is taken from it now, so that a restart can have it;
     * its late exit notice is ignored (its gen is gone). */
    json_t *why =
        json_pack("{s:s, s:I}", "reason", "killed", "shutdown_ms", (json_int_t)k->shutdown_ms);
    fprintf(stderr,
            "genserv: supervisor \"%s\": child \"%s\" did not stop within %lld ms: "
            "treated as killed\n",
            t->name, k->name, (long long)k->shutdown_ms);
    if (k->c != NULL) {
        gs__child_forget(t->rt, k->c);
        gs__emit(t->rt, GS_EVENT_STOPPED, k->c, why);
    }
    json_decref(why);
    k->gen = 0;
    kid_set_status(t, k, KID_STOPPED);
    return job_waits_for(t, i, STEP_STOP) ? job_step_done(t) : NULL;
}

/* A nested supervisor's answer to ["$gs_start_children"]:
 * ["gs_reply", ["$gs_started", GEN], REPLY] or ["gs_error", TAG, CODE, REASON]. */
static json_t *on_started(gs__tree_t *t, json_t *msg)
{
    json_t *tag = json_array_get(msg, 1);
    size_t i;
    kid_t *k = kid_by_gen(t, (uint64_t)json_integer_value(json_array_get(tag, 1)), &i);
    if (k == NULL || k->status != KID_STARTING)
        return NULL;
    bool ok = strcmp(json_string_value(json_array_get(msg, 0)), "gs_reply") == 0 &&
              json_object_get(json_array_get(msg, 2), "ok") != NULL;
    if (ok) {
        kid_set_status(t, k, KID_RUNNING);
    } else {
        json_t *why = strcmp(json_string_value(json_array_get(msg, 0)), "gs_reply") == 0
                          ? json_deep_copy(json_object_get(json_array_get(msg, 2), "reason"))
                          : json_deep_copy(json_array_get(msg, 3));
        k->gen = 0; /* its exit notice will be ignored */
        kid_set_status(t, k, KID_STOPPED);
        start_failed(t, i, GS_ESTARTCHILD, why);
    }
    return job_waits_for(t, i, STEP_START) ? job_step_done(t) : NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* The behaviour                                                                              */
/* ---------------------------------------------------------------------------------------- */

static int sup_init(gs_server_t *self, json_t *spec, void **state, json_t **reason)
{
    gs_runtime_t *rt = gs_server_runtime(self);
    json_t *names = json_object();
    *reason = check_spec(rt, spec, true, names);
    json_decref(names);
    if (*reason != NULL)
        return -1;
    gs__tree_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -1;
    t->rt = rt;
    t->self = self;
    t->name = strdup(gs_server_name(self));
    t->backlog = json_array();
    t->top = self->child->parent == NULL;
    const char *strategy = json_string_value(json_object_get(spec, "strategy"));
    for (int i = 0; strategy != NULL && i < 3; i++)
        if (strcmp(strategy, strategy_names[i]) == 0)
            t->strategy = (strategy_t)i;
    json_t *v = json_object_get(spec, "max_restarts");
    t->max_restarts = v != NULL ? (unsigned)json_integer_value(v) : 3;
    v = json_object_get(spec, "max_seconds");
    t->max_seconds = v != NULL ? (unsigned)json_integer_value(v) : 5;
    t->restart_times = calloc(t->max_restarts ? t->max_restarts : 1, sizeof(uint64_t));
    if (t->name == NULL || t->backlog == NULL || t->restart_times == NULL)
        abort(); /* tiny internal allocations */
    for (unsigned i = 0; i < t->max_restarts; i++)
        t->restart_times[i] = UINT64_MAX; /* never */
    size_t i;
    json_t *child;
    json_array_foreach(json_object_get(spec, "children"), i, child)
    {
        kids_append(t, child);
    }
    tree_lock(rt);
    t->next = rt->trees;
    rt->trees = t;
    tree_unlock(rt);
    *state = t;
    return 0;
}

static gs_result_t stop_or_not(json_t *stop)
{
    return stop != NULL ? GS_STOP(stop) : GS_NOREPLY;
}

static gs_result_t sup_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    (void)self;
    gs__tree_t *t = state;
    const char *op = json_string_value(json_array_get(msg, 0));
    if (op == NULL || strncmp(op, "$gs_", 4) != 0)
        return GS_REPLY(json_pack("{s:s}", "error", "a supervisor answers its own requests only"));
    if (t->job.kind != JOB_NONE) {
        backlog_push(t, json_pack("[s, O, I]", "call", msg, (json_int_t)from.id));
        return GS_NOREPLY;
    }
    return stop_or_not(handle_request(t, msg, from));
}

static gs_result_t sup_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    (void)self;
    gs__tree_t *t = state;
    const char *op = json_string_value(json_array_get(msg, 0));
    if (op == NULL)
        return GS_NOREPLY;
    if (strcmp(op, "$gs_exit") == 0)
        return stop_or_not(on_exit_notice(t, msg));
    if (strcmp(op, "$gs_kill") == 0)
        return stop_or_not(on_kill(t, msg));
    if ((strcmp(op, "gs_reply") == 0 || strcmp(op, "gs_error") == 0) &&
        json_is_array(json_array_get(msg, 1)) &&
        json_is_string(json_array_get(json_array_get(msg, 1), 0)) &&
        strcmp(json_string_value(json_array_get(json_array_get(msg, 1), 0)), "$gs_started") == 0)
        return stop_or_not(on_started(t, msg));
    return GS_NOREPLY;
}

static void sup_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    gs__tree_t *t = state;
    gs_runtime_t *rt = t->rt;
    /* Normally every child is stopped already. If the supervisor is stopped some other way
     * (runtime shutdown stops every server; a bug), its children must not be orphans. */
    for (size_t i = t->nkids; i-- > 0;)
        if (t->kids[i].gen != 0 && t->kids[i].status != KID_TERMINATING)
            gs_stop_async(rt, t->kids[i].name, json_string("shutdown"), stop_done, NULL);
    tree_unlink(t);
    for (size_t i = 0; i < t->nkids; i++)
        kid_close(&t->kids[i]);
    free(t->kids);
    free(t->job.steps);
    json_decref(t->job.error);
    json_decref(t->job.die);
    if (t->job.has_from)
        gs_reply(t->job.from, error_reply(GS_ESTOPPED, json_deep_copy(reason)));
    json_decref(t->backlog);
    free(t->restart_times);
    free(t->name);
    free(t);
}

static json_t *sup_format_state(gs_server_t *self, void *state)
{
    gs__tree_t *t = state;
    (void)self;
    tree_lock(t->rt);
    json_t *j = tree_json_locked(t->rt, t, 0);
    tree_unlock(t->rt);
    return j;
}

const gs_behaviour_t gs__tree_behaviour = {
    .name = "supervisor",
    .description = "A supervisor: starts its children in order and restarts them by its "
                   "strategy (internal; started with gs_supervisor_start or POST /supervisors).",
    .init = sup_init,
    .handle_call = sup_handle_call,
    .handle_info = sup_handle_info,
    .terminate = sup_terminate,
    .format_state = sup_format_state,
};

/* ---------------------------------------------------------------------------------------- */
/* The public API                                                                             */
/* ---------------------------------------------------------------------------------------- */

typedef struct adapt_s {
    gs_reply_cb cb;
    void *arg;
} adapt_t;

/* {"ok": X} -> status 0 and X; {"error": code, "reason": R} -> code and R (taken). */
static int unwrap(int status, json_t *result, json_t **out)
{
    *out = NULL;
    if (status != 0) {
        *out = result;
        return status;
    }
    json_t *ok = json_object_get(result, "ok");
    if (ok != NULL) {
        *out = json_incref(ok);
        status = 0;
    } else if (json_is_integer(json_object_get(result, "error"))) {
        status = (int)json_integer_value(json_object_get(result, "error"));
        json_t *r = json_object_get(result, "reason");
        *out = json_is_null(r) ? NULL : json_incref(r);
    } else {
        status = GS_EINVAL;
    }
    json_decref(result);
    return status;
}

static void adapt_cb(int status, json_t *result, void *arg)
{
    adapt_t a = *(adapt_t *)arg;
    free(arg);
    json_t *out;
    status = unwrap(status, result, &out);
    a.cb(status, out, a.arg);
}

/* Is name a supervisor? 0, or GS_ENOSUPERVISOR. */
static int check_supervisor(gs_runtime_t *rt, const char *name)
{
    gs__child_t *c = gs__registry_child(rt, name);
    bool yes = c != NULL && c->tree;
    gs__child_unref(c);
    return yes ? 0 : GS_ENOSUPERVISOR;
}

static int ask_async(gs_runtime_t *rt, const char *sup, json_t *msg, gs_reply_cb cb, void *arg)
{
    int rc;
    if (rt == NULL || sup == NULL || cb == NULL) {
        json_decref(msg);
        return GS_EINVAL;
    }
    if ((rc = check_supervisor(rt, sup)) != 0) {
        json_decref(msg);
        return rc;
    }
    adapt_t *a = malloc(sizeof(*a));
    if (a == NULL) {
        json_decref(msg);
        return GS_ENOMEM;
    }
    a->cb = cb;
    a->arg = arg;
    rc = gs_call_async(rt, sup, msg, GS_INFINITY, adapt_cb, a);
    if (rc != 0)
        free(a);
    return rc;
}

static int ask(gs_runtime_t *rt, const char *sup, json_t *msg, int timeout_ms, json_t **result)
{
    json_t *res = NULL;
    int rc;
    if (result != NULL)
        *result = NULL;
    if (rt == NULL || sup == NULL) {
        json_decref(msg);
        return GS_EINVAL;
    }
    if ((rc = check_supervisor(rt, sup)) != 0) {
        json_decref(msg);
        return rc;
    }
    rc = gs_call(rt, sup, msg, timeout_ms, &res);
    rc = unwrap(rc, res, &res);
    if (result != NULL)
        *result = res;
    else
        json_decref(res);
    return rc;
}

/* Check spec and start the supervisor's server; 0 or an error with *reason. */
static int start_server(gs_runtime_t *rt, json_t *spec, const char **name, json_t **reason)
{
    json_t *why = NULL;
    if (reason != NULL)
        *reason = NULL;
    if (rt == NULL || spec == NULL)
        return GS_EINVAL;
    json_t *names = json_object();
    why = check_spec(rt, spec, true, names);
    json_decref(names);
    if (why == NULL) {
        gs_start_options_t opts;
        gs_start_options_init(&opts);
        opts.restart = GS_TEMPORARY; /* the top of a tree is never restarted */
        gs__tree_link_t link = {.tree = true};
        *name = json_string_value(json_object_get(spec, "name"));
        int rc = gs__start_child(rt, *name, &gs__tree_behaviour, spec, &opts, &link, &why, NULL);
        if (rc != GS_EINIT) {
            if (reason != NULL)
                *reason = why;
            else
                json_decref(why);
            return rc;
        }
    }
    if (reason != NULL)
        *reason = why;
    else
        json_decref(why);
    return GS_EINVAL;
}

int gs_supervisor_start_async(gs_runtime_t *rt, json_t *spec, gs_reply_cb cb, void *arg,
                              json_t **reason)
{
    const char *name = NULL;
    if (cb == NULL)
        return GS_EINVAL;
    int rc = start_server(rt, spec, &name, reason);
    if (rc != 0)
        return rc;
    return ask_async(rt, name, json_pack("[s]", "$gs_start_children"), cb, arg);
}

int gs_supervisor_start(gs_runtime_t *rt, json_t *spec, int timeout_ms, json_t **result)
{
    const char *name = NULL;
    if (gs__tls.runtime_thread)
        return GS_EWOULDBLOCK;
    int rc = start_server(rt, spec, &name, result);
    if (rc != 0)
        return rc;
    return ask(rt, name, json_pack("[s]", "$gs_start_children"), timeout_ms, result);
}

static json_t *child_msg(const char *op, const char *child)
{
    return json_pack("[s, s]", op, child != NULL ? child : "");
}

int gs_supervisor_start_child_async(gs_runtime_t *rt, const char *sup, json_t *spec, gs_reply_cb cb,
                                    void *arg)
{
    if (spec == NULL)
        return GS_EINVAL;
    return ask_async(rt, sup, json_pack("[s, o]", "$gs_start_child", json_deep_copy(spec)), cb,
                     arg);
}

int gs_supervisor_terminate_child_async(gs_runtime_t *rt, const char *sup, const char *child,
                                        gs_reply_cb cb, void *arg)
{
    return ask_async(rt, sup, child_msg("$gs_terminate_child", child), cb, arg);
}

int gs_supervisor_delete_child_async(gs_runtime_t *rt, const char *sup, const char *child,
                                     gs_reply_cb cb, void *arg)
{
    return ask_async(rt, sup, child_msg("$gs_delete_child", child), cb, arg);
}

int gs_supervisor_restart_child_async(gs_runtime_t *rt, const char *sup, const char *child,
                                      gs_reply_cb cb, void *arg)
{
    return ask_async(rt, sup, child_msg("$gs_restart_child", child), cb, arg);
}

int gs_supervisor_start_child(gs_runtime_t *rt, const char *sup, json_t *spec, int timeout_ms,
                              json_t **result)
{
    if (spec == NULL)
        return GS_EINVAL;
    return ask(rt, sup, json_pack("[s, o]", "$gs_start_child", json_deep_copy(spec)), timeout_ms,
               result);
}

int gs_supervisor_terminate_child(gs_runtime_t *rt, const char *sup, const char *child,
                                  int timeout_ms)
{
    return ask(rt, sup, child_msg("$gs_terminate_child", child), timeout_ms, NULL);
}

int gs_supervisor_delete_child(gs_runtime_t *rt, const char *sup, const char *child, int timeout_ms)
{
    return ask(rt, sup, child_msg("$gs_delete_child", child), timeout_ms, NULL);
}

int gs_supervisor_restart_child(gs_runtime_t *rt, const char *sup, const char *child,
                                int timeout_ms)
{
    return ask(rt, sup, child_msg("$gs_restart_child", child), timeout_ms, NULL);
}
