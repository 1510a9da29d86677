/*
 * http.c: HTTP helpers that know no route: the path of a request target, percent-decoding,
 * method names and the Allow header.
 */
#include "api_internal.h"

#include <stdio.h>
#include <string.h>

char *gs__route_raw_path(const char *uri)
{
    /* Absolute-form targets ("http://host/path") route on their path. */
    if (strncmp(uri, "http://", 7) == 0 || strncmp(uri, "https://", 8) == 0) {
        const char *p = strchr(strstr(uri, "//") + 2, '/');

        uri = p != NULL ? p : "/";
    }
    return strndup(uri, strcspn(uri, "?#"));
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int gs__percent_decode(char *s)
{
    char *out = s;

    for (; *s; s++) {
        if (*s != '%') {
            *out++ = *s;
            continue;
        }
        int hi = hex_digit(s[1]), lo = hi >= 0 ? hex_digit(s[2]) : -1;
        if (lo < 0 || (hi == 0 && lo == 0))
            return -1;
        *out++ = (char)(hi * 16 + lo);
        s += 2;
    }
    *out = '\0';
    return 0;
}

const char *gs__method_name(unsigned method)
{
    switch (method) {
    case GS_METHOD_GET:
        return "GET";
    case GS_METHOD_HEAD:
        return "HEAD";
    case GS_METHOD_POST:
        return "POST";
    case GS_METHOD_DELETE:
        return "DELETE";
    case GS_METHOD_PUT:
        return "PUT";
    default:
        return "other";
    }
}

const char *gs__allow_header(unsigned allowed, char *buf, size_t len)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{GS_METHOD_GET, "GET"},
                 {GS_METHOD_HEAD, "HEAD"},
                 {GS_METHOD_POST, "POST"},
                 {GS_METHOD_PUT, "PUT"},
                 {GS_METHOD_DELETE, "DELETE"}};
    size_t i, used = 0;

    buf[0] = '\0';
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if ((allowed & names[i].bit) == 0)
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", names[i].name);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    return buf;
}
