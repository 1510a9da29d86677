/*
 * timer_ref.c: the references the HTTP API gives for timers, which a client cannot forge.
 *
 * A runtime timer reference is a small sequential integer, shared with the servers' own timers,
 * so handing it out as it is would let any client read or cancel timers it was never given
 * (Erlang's references are unforgeable). The gateway hands out instead the id followed by a
 * keyed MAC over it: 16 hex digits of the id, then 32 of two SipHash-2-4 tags (128 bits) under
 * a 256-bit key drawn from the kernel's CSPRNG (getrandom) when the gateway starts. A reference
 * is accepted only if its MAC checks (compared in constant time), so guessing one means
 * guessing 128 bits; and the runtime is asked only about external timers (those made over
 * HTTP), so even a valid id of a server's own timer is "no such timer".
 */
#include "api_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

/* SipHash-2-4 (Aumasson and Bernstein) of one 64-bit word under the key k0, k1. */
static uint64_t siphash_u64(uint64_t k0, uint64_t k1, uint64_t m)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    uint64_t last = (uint64_t)8 << 56; /* the message's length in the final block */

    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

int gs__timer_key_init(gs_timer_key_t *key)
{
    size_t got = 0;

    while (got < sizeof(key->k)) {
        ssize_t n = getrandom((char *)key->k + got, sizeof(key->k) - got, 0);
        if (n < 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

void gs__timer_ref_format(const gs_timer_key_t *key, gs_timer_ref_t ref,
                          char out[GS_TIMER_REF_LEN + 1])
{
    snprintf(out, GS_TIMER_REF_LEN + 1, "%016llx%016llx%016llx", (unsigned long long)ref,
             (unsigned long long)siphash_u64(key->k[0], key->k[1], ref),
             (unsigned long long)siphash_u64(key->k[2], key->k[3], ref));
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int gs__timer_ref_parse(const gs_timer_key_t *key, const char *s, gs_timer_ref_t *ref)
{
    char expect[GS_TIMER_REF_LEN + 1];
    uint64_t id = 0;
    unsigned char diff = 0;

    if (s == NULL || strlen(s) != GS_TIMER_REF_LEN)
        return -1;
    for (size_t i = 0; i < 16; i++) {
        int d = hex_value(s[i]);
        if (d < 0)
            return -1;
        id = id << 4 | (uint64_t)d;
    }
    gs__timer_ref_format(key, id, expect);
    for (size_t i = 16; i < GS_TIMER_REF_LEN; i++) /* constant time in the MAC */
        diff |= (unsigned char)(s[i] ^ expect[i]);
    if (diff != 0 || id == 0)
        return -1;
    *ref = id;
    return 0;
}
