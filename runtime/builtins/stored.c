/*
 * stored.c: reading back the stored state of a durable built-in (builtins_internal.h). Each
 * built-in that can be durable names its fields and their ranges; the messages here say which
 * field is wrong and why, since whoever reads them is looking at a server that will not start.
 */
#include "builtins_internal.h"

#include <stdio.h>
#include <string.h>

#include <genserv/message.h>

json_t *gs__stored_refused(const char *explanation)
{
    return json_pack("[ss]", "bad_stored_state", explanation);
}

json_t *gs__stored_dump(json_t *v, json_t **reason)
{
    if (v == NULL)
        *reason = json_string(gs_err_name(GS_ENOMEM));
    return v;
}

int gs__stored_fields(const json_t *stored, const char *const fields[], json_t **reason)
{
    char text[160];

    if (!json_is_object(stored)) {
        *reason = gs__stored_refused("the stored state must be an object");
        return -1;
    }
    size_t n = 0;
    for (; fields[n] != NULL; n++) {
        if (json_object_get(stored, fields[n]) == NULL) {
            snprintf(text, sizeof(text), "the stored state has no %s", fields[n]);
            *reason = gs__stored_refused(text);
            return -1;
        }
    }
    /* Every field is present, so a larger object has a key we do not know. */
    if (json_object_size(stored) == n)
        return 0;
    snprintf(text, sizeof(text), "the stored state has unknown keys");
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)stored, key, value)
    {
        (void)value;
        size_t i = 0;
        while (fields[i] != NULL && strcmp(fields[i], key) != 0)
            i++;
        if (fields[i] == NULL) {
            /* The key comes from the row: cut a long one rather than quote it whole. */
            snprintf(text, sizeof(text), "the stored state has an unknown key \"%.64s\"", key);
            break;
        }
    }
    *reason = gs__stored_refused(text);
    return -1;
}

int gs__stored_int(const json_t *stored, const char *key, json_int_t min, json_int_t max,
                   json_int_t *out, json_t **reason)
{
    if (!gs_json_int_in(json_object_get(stored, key), min, max, out)) {
        char text[160];
        snprintf(text, sizeof(text),
                 "%s must be an integer from %" JSON_INTEGER_FORMAT " to %" JSON_INTEGER_FORMAT,
                 key, min, max);
        *reason = gs__stored_refused(text);
        return -1;
    }
    return 0;
}

int gs__stored_array(const json_t *stored, const char *key, size_t max_len, size_t max_bytes,
                     json_t **out, size_t *bytes, json_t **reason)
{
    json_t *a = json_object_get(stored, key);
    char text[160];
    size_t sum = 0, i;
    json_t *v;

    *out = NULL;
    if (!json_is_array(a)) {
        snprintf(text, sizeof(text), "%s must be an array", key);
        *reason = gs__stored_refused(text);
        return -1;
    }
    if (json_array_size(a) > max_len) {
        snprintf(text, sizeof(text), "%s holds more than %zu values", key, max_len);
        *reason = gs__stored_refused(text);
        return -1;
    }
    json_array_foreach(a, i, v)
    {
        sum += gs_json_size(v);
    }
    if (sum > max_bytes) {
        snprintf(text, sizeof(text), "%s takes more than %zu bytes", key, max_bytes);
        *reason = gs__stored_refused(text);
        return -1;
    }
    *out = json_deep_copy(a);
    if (*out == NULL) {
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    *bytes = sum;
    return 0;
}
