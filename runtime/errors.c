/*
 * errors.c: gs_strerror() and gs_err_name(), generated from GS_ERRNO_MAP so that the codes,
 * their stable names and their messages can never drift apart.
 */
#include <genserv/genserv.h>

const char *gs_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define GS__STRERROR(sym, val, code, msg)                                                          \
    case GS_##sym:                                                                                 \
        return msg;
        GS_ERRNO_MAP(GS__STRERROR)
#undef GS__STRERROR
    default:
        return "unknown error";
    }
}

const char *gs_err_name(int err)
{
    switch (err) {
    case 0:
        return "ok";
#define GS__ERRNAME(sym, val, code, msg)                                                           \
    case GS_##sym:                                                                                 \
        return code;
        GS_ERRNO_MAP(GS__ERRNAME)
#undef GS__ERRNAME
    default:
        return "unknown";
    }
}
