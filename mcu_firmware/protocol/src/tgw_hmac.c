/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), sized for a microcontroller:
 * one 64-byte block buffer on the stack, no tables besides the round constants. */
#include "tgw_internal.h"

#if TGW_ENABLE_HMAC

typedef struct {
    uint32_t h[8];
    uint8_t block[64];
    uint64_t total;
    size_t fill;
} sha256_t;

static const uint32_t K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
    0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
    0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
    0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
    0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
    0xc67178f2u};

static uint32_t ror(uint32_t x, unsigned n) { return (x >> n) | (x << (32u - n)); }

static void compress(sha256_t *s) {
    uint32_t w[16];
    uint32_t v[8];
    unsigned i;
    for (i = 0; i < 16u; i++) {
        w[i] = (uint32_t)s->block[4u * i] << 24 | (uint32_t)s->block[4u * i + 1u] << 16 |
               (uint32_t)s->block[4u * i + 2u] << 8 | s->block[4u * i + 3u];
    }
    memcpy(v, s->h, sizeof v);
    for (i = 0; i < 64u; i++) {
        uint32_t t1;
        uint32_t t2;
        if (i >= 16u) {
            /* a rolling 16-word schedule keeps the stack at 64 bytes */
            uint32_t w15 = w[(i - 15u) & 15u];
            uint32_t w2 = w[(i - 2u) & 15u];
            w[i & 15u] += (ror(w15, 7) ^ ror(w15, 18) ^ (w15 >> 3)) + w[(i - 7u) & 15u] +
                          (ror(w2, 17) ^ ror(w2, 19) ^ (w2 >> 10));
        }
        t1 = v[7] + (ror(v[4], 6) ^ ror(v[4], 11) ^ ror(v[4], 25)) +
             ((v[4] & v[5]) ^ (~v[4] & v[6])) + K[i] + w[i & 15u];
        t2 = (ror(v[0], 2) ^ ror(v[0], 13) ^ ror(v[0], 22)) +
             ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
        memmove(v + 1, v, 7u * sizeof v[0]);
        v[4] += t1;
        v[0] = t1 + t2;
    }
    for (i = 0; i < 8u; i++) {
        s->h[i] += v[i];
    }
}

static void sha256_init(sha256_t *s) {
    static const uint32_t iv[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                   0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    memcpy(s->h, iv, sizeof iv);
    s->total = 0;
    s->fill = 0;
}

static void sha256_update(sha256_t *s, const uint8_t *data, size_t len) {
    s->total += len;
    while (len > 0u) {
        size_t n = 64u - s->fill < len ? 64u - s->fill : len;
        memcpy(s->block + s->fill, data, n);
        s->fill += n;
        data += n;
        len -= n;
        if (s->fill == 64u) {
            compress(s);
            s->fill = 0;
        }
    }
}

static void sha256_final(sha256_t *s, uint8_t out[32]) {
    static const uint8_t pad = 0x80;
    static const uint8_t zero = 0x00;
    uint64_t bits = s->total * 8u;
    uint8_t len_be[8];
    unsigned i;
    sha256_update(s, &pad, 1);
    while (s->fill != 56u) {
        sha256_update(s, &zero, 1);
    }
    for (i = 0; i < 8u; i++) {
        len_be[i] = (uint8_t)(bits >> (56u - 8u * i));
    }
    sha256_update(s, len_be, 8);
    for (i = 0; i < 32u; i++) {
        out[i] = (uint8_t)(s->h[i / 4u] >> (24u - 8u * (i % 4u)));
    }
}

void tgw_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
                     uint8_t out[32]) {
    uint8_t pad[64];
    uint8_t inner[32];
    sha256_t s;
    unsigned i;
    memset(pad, 0, sizeof pad);
    if (key_len > 64u) {
        sha256_init(&s);
        sha256_update(&s, key, key_len);
        sha256_final(&s, pad);
    } else {
        memcpy(pad, key, key_len);
    }
    for (i = 0; i < 64u; i++) {
        pad[i] ^= 0x36u;
    }
    sha256_init(&s);
    sha256_update(&s, pad, 64);
    sha256_update(&s, data, len);
    sha256_final(&s, inner);
    for (i = 0; i < 64u; i++) {
        pad[i] ^= 0x36u ^ 0x5cu;
    }
    sha256_init(&s);
    sha256_update(&s, pad, 64);
    sha256_update(&s, inner, 32);
    sha256_final(&s, out);
}

#else
typedef int tgw_hmac_disabled; /* ISO C forbids an empty translation unit */
#endif
