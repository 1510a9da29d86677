/*
 * framing.c: what RFC 9112 says a server must refuse in a request's head, and libmicrohttpd
 * 0.9.75 lets through: requests that a proxy in front and genserv could frame differently
 * (request smuggling), or that libmicrohttpd would answer twice or never.
 *
 * It runs on the first call of the access handler, when every header line of the request is
 * known (duplicates included), over the headers as a list of (name, value) pairs: pure code,
 * which fuzz/fuzz_headers.c drives. A refused head is answered 400 (or 431) with Connection: close
 * by dispatch.c, and nothing of its body is read as a request.
 *
 * Refused:
 *   - both Content-Length and Transfer-Encoding (RFC 9112 6.1: "ought to be handled as an
 *     error"; a front end that frames by one and genserv by the other is how a request is
 *     smuggled);
 *   - two Content-Length values that differ, or one that is not digits only (-1, +42, 0x2a);
 *   - a Transfer-Encoding other than chunked (libmicrohttpd would wait for the connection to
 *     close: no answer until the request timeout);
 *   - an HTTP/1.1 request without Host, or with more than one (RFC 9112 3.2);
 *   - a header name that is not a token: whitespace before the colon ("Name : v"), control
 *     characters, separators (RFC 9110 5.1, 5.6.2);
 *   - a NUL (%00) in the path: no file has one, and a path cut at it names another resource.
 */
#include "api_internal.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 * "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return false;
    return true;
}

static bool all_digits(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* The Content-Length value without leading zeros, for comparing two of them. */
static const char *significant(const char *s)
{
    while (s[0] == '0' && s[1] != '\0')
        s++;
    return s;
}

void gs__framing_init(gs_framing_t *f)
{
    memset(f, 0, sizeof(*f));
}

void gs__framing_header(gs_framing_t *f, const char *name, const char *value)
{
    if (f->error != NULL)
        return;
    if (!is_token(name)) {
        f->error = "a header name is not a token (whitespace before its colon, a control "
                   "character or a separator)";
        return;
    }
    if (strcasecmp(name, "Content-Length") == 0) {
        if (!all_digits(value)) {
            f->error = "Content-Length must be a decimal number";
            return;
        }
        if (f->content_length != NULL &&
            strcmp(significant(f->content_length), significant(value)) != 0) {
            f->error = "two Content-Length headers disagree";
            return;
        }
        f->content_length = value;
    } else if (strcasecmp(name, "Transfer-Encoding") == 0) {
        if (f->transfer_encoding != NULL || value == NULL || strcasecmp(value, "chunked") != 0) {
            f->error = "the only Transfer-Encoding accepted is a single chunked";
            return;
        }
        f->transfer_encoding = value;
    } else if (strcasecmp(name, "Host") == 0) {
        f->hosts++;
    }
}

const char *gs__framing_check(gs_framing_t *f, const char *version, const char *raw_path)
{
    if (f->error != NULL)
        return f->error;
    if (f->content_length != NULL && f->transfer_encoding != NULL)
        return "a request must not have both Content-Length and Transfer-Encoding";
    if (version != NULL && strcmp(version, "HTTP/1.1") == 0 && f->hosts != 1)
        return f->hosts == 0 ? "an HTTP/1.1 request needs a Host header"
                             : "a request must not have two Host headers";
    if (raw_path != NULL && strcasestr(raw_path, "%00") != NULL)
        return "a path must not hold an encoded NUL (%00)";
    return NULL;
}
