/*
 * fuzz_headers.c: the request-framing checks (api/framing.c) on arbitrary header lines.
 *
 * Input: a first line "VERSION PATH", then header lines "NAME:VALUE" separated by '\n' (bytes
 * as they come, NULs and all: a NUL ends the C string the check sees, as in libmicrohttpd).
 * Each line is split at its first ':' like libmicrohttpd does (a line without one is given
 * with an empty value). Invariants: no crash or leak, a refusal is a non-empty static
 * sentence, and the verdict does not depend on the order of checks: the same head checked
 * twice gives the same answer.
 */
#include "api_internal.h"
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_headers: invariant broken at %s:%d: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char *verdict(char *text, size_t len)
{
    gs_framing_t f;
    char *version = text, *path = NULL, *line, *next;

    gs__framing_init(&f);
    next = memchr(text, '\n', len);
    if (next != NULL)
        *next++ = '\0';
    path = strchr(version, ' ');
    if (path != NULL)
        *path++ = '\0';
    for (line = next; line != NULL && line < text + len; line = next) {
        next = memchr(line, '\n', (size_t)(text + len - line));
        if (next != NULL)
            *next++ = '\0';
        char *colon = strchr(line, ':');
        if (colon != NULL)
            *colon = '\0';
        gs__framing_header(&f, line, colon != NULL ? colon + 1 : "");
    }
    return gs__framing_check(&f, version, path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *a = malloc(size + 1), *b = malloc(size + 1);

    CHECK(a != NULL && b != NULL);
    memcpy(a, data, size);
    memcpy(b, data, size);
    a[size] = b[size] = '\0';
    const char *x = verdict(a, size);
    const char *y = verdict(b, size);
    CHECK(x == y);
    CHECK(x == NULL || strlen(x) > 0);
    free(a);
    free(b);
    return 0;
}
