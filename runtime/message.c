/*
 * message.c: the helpers of genserv/message.h, for behaviours that read Elixir-shaped JSON
 * messages and init arguments and answer in the same shape. Part of the runtime library, so
 * that a plugin resolves them from the genserv binary like every other gs_* function.
 */
#include <genserv/message.h>

#include <stdio.h>
#include <string.h>

/* What jansson allocates for each kind of value (64-bit), with 16 bytes of allocator header
 * per allocation: json_integer_t and json_real_t are 24, json_string_t 32 plus its text,
 * json_array_t 40 plus a table of pointers, json_object_t about 88 plus its hashtable's
 * buckets and a pair record (about 56 bytes plus the key) per entry. */
#define GS__ALLOC       16u
#define GS__SCALAR      (24u + GS__ALLOC)
#define GS__STRING      (32u + GS__ALLOC + GS__ALLOC)
#define GS__ARRAY       (40u + GS__ALLOC + GS__ALLOC)
#define GS__OBJECT      (88u + GS__ALLOC + GS__ALLOC)
#define GS__OBJECT_PAIR (56u + 16u + GS__ALLOC) /* pair and its bucket share */

size_t gs_json_size(const json_t *v)
{
    size_t n = 0, i;
    const char *key;
    json_t *e;

    if (v == NULL)
        return 0;
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_TRUE:
    case JSON_FALSE:
        return 0; /* shared singletons */
    case JSON_INTEGER:
    case JSON_REAL:
        return GS__SCALAR;
    case JSON_STRING:
        return GS__STRING + json_string_length(v) + 1;
    case JSON_ARRAY:
        n = GS__ARRAY + json_array_size(v) * sizeof(json_t *);
        json_array_foreach((json_t *)v, i, e)
        {
            n += gs_json_size(e);
        }
        return n;
    case JSON_OBJECT:
        n = GS__OBJECT;
        json_object_foreach((json_t *)v, key, e)
        {
            n += GS__OBJECT_PAIR + strlen(key) + gs_json_size(e);
        }
        return n;
    }
    return 0;
}

bool gs_msg_is_atom(const json_t *msg, const char *atom)
{
    return json_is_string(msg) && strcmp(json_string_value(msg), atom) == 0;
}

bool gs_msg_is_tuple(const json_t *msg, const char *tag, size_t arity)
{
    return json_is_array(msg) && json_array_size(msg) == arity &&
           gs_msg_is_atom(json_array_get(msg, 0), tag);
}

bool gs_json_int_in(const json_t *v, json_int_t min, json_int_t max, json_int_t *out)
{
    if (!json_is_integer(v))
        return false;
    json_int_t n = json_integer_value(v);
    if (n < min || n > max)
        return false;
    *out = n;
    return true;
}

bool gs_json_int_add(json_int_t a, json_int_t b, json_int_t *out)
{
    /* Checked before adding, because signed overflow is undefined behaviour in C. */
    if ((b > 0 && a > GS_JSON_INT_MAX - b) || (b < 0 && a < GS_JSON_INT_MIN - b))
        return false;
    *out = a + b;
    return true;
}

json_t *gs_msg_error(const char *code)
{
    return json_pack("[ss]", "error", code);
}

gs_result_t gs_reply_unknown_message(void)
{
    return GS_REPLY(gs_msg_error("unknown_message"));
}

gs_result_t gs_reply_bad_argument(void)
{
    return GS_REPLY(gs_msg_error(gs_err_name(GS_EINVAL)));
}

gs_result_t gs_ignore_message(gs_server_t *self, void *state, json_t *msg)
{
    (void)self;
    (void)state;
    (void)msg;
    return GS_NOREPLY;
}

json_t *gs_bad_args(const char *explanation)
{
    return json_pack("[ss]", "bad_args", explanation);
}

int gs_args_check(const json_t *args, const char *const allowed[], json_t **reason)
{
    if (args == NULL || json_is_null(args))
        return 0;
    if (!json_is_object(args)) {
        *reason = gs_bad_args("init args must be an object or null");
        return -1;
    }
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)args, key, value)
    {
        (void)value;
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], key) != 0)
            i++;
        if (allowed[i] == NULL) {
            char text[160];
            /* Keys come from the user: cut long ones rather than quote them whole. */
            snprintf(text, sizeof(text), "unknown key \"%.64s\"", key);
            *reason = gs_bad_args(text);
            return -1;
        }
    }
    return 0;
}

int gs_args_int(const json_t *args, const char *key, json_int_t min, json_int_t max,
                json_int_t *out, json_t **reason)
{
    json_t *v = json_is_object(args) ? json_object_get(args, key) : NULL;
    if (v == NULL)
        return 0;
    if (!gs_json_int_in(v, min, max, out)) {
        char text[160];
        snprintf(text, sizeof(text),
                 "%s must be an integer from %" JSON_INTEGER_FORMAT " to %" JSON_INTEGER_FORMAT,
                 key, min, max);
        *reason = gs_bad_args(text);
        return -1;
    }
    return 0;
}

int gs_args_bool(const json_t *args, const char *key, bool *out, json_t **reason)
{
    json_t *v = json_is_object(args) ? json_object_get(args, key) : NULL;
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v)) {
        char text[160];
        snprintf(text, sizeof(text), "%s must be true or false", key);
        *reason = gs_bad_args(text);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}
