/* Little-endian cursors with sticky overflow flags (see tgw_internal.h). */
#include "tgw_internal.h"

void tgw_put(tgw_out_t *o, const void *src, size_t n) {
    if (!o->ok || o->cap - o->len < n) {
        o->ok = false;
        return;
    }
    if (n > 0u) {
        memcpy(o->buf + o->len, src, n);
    }
    o->len += n;
}

void tgw_put_u8(tgw_out_t *o, uint8_t v) { tgw_put(o, &v, 1u); }

void tgw_put_le(tgw_out_t *o, uint32_t v, size_t n) {
    uint8_t b[4];
    tgw_store_le(b, v, n);
    tgw_put(o, b, n);
}

const uint8_t *tgw_take(tgw_in_t *in, size_t n) {
    const uint8_t *p;
    if (!in->ok || in->len - in->pos < n) {
        in->ok = false;
        return NULL;
    }
    p = in->buf + in->pos;
    in->pos += n;
    return p;
}

uint32_t tgw_get_le(tgw_in_t *in, size_t n) {
    const uint8_t *p = tgw_take(in, n);
    return p == NULL ? 0u : tgw_load_le(p, n);
}

void tgw_store_le(uint8_t *p, uint32_t v, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint32_t tgw_load_le(const uint8_t *p, size_t n) {
    uint32_t v = 0;
    while (n-- > 0u) {
        v = (v << 8) | p[n];
    }
    return v;
}

/* Integers of 1, 2, 4 or 8 bytes go little-endian (8: two 32-bit halves, so a
 * 32-bit core never does 64-bit shifts); larger fields are byte arrays. */
void tgw_put_fields(tgw_out_t *o, const void *s, const tgw_field_t *f, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        const uint8_t *p = (const uint8_t *)s + f[i].offset;
        uint8_t sz = f[i].size;
        uint16_t v16;
        uint32_t v32[2];
        switch (sz) {
        case 1: tgw_put_u8(o, *p); break;
        case 2: memcpy(&v16, p, 2); tgw_put_le(o, v16, 2); break;
        case 4: memcpy(v32, p, 4); tgw_put_le(o, v32[0], 4); break;
        case 8: {
            uint64_t v64;
            memcpy(&v64, p, 8);
            tgw_put_le(o, (uint32_t)v64, 4);
            tgw_put_le(o, (uint32_t)(v64 >> 32), 4);
            break;
        }
        default: tgw_put(o, p, sz); break;
        }
    }
}

void tgw_get_fields(tgw_in_t *in, void *s, const tgw_field_t *f, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        uint8_t *p = (uint8_t *)s + f[i].offset;
        uint8_t sz = f[i].size;
        uint16_t v16;
        uint32_t v32;
        uint64_t v64;
        const uint8_t *src;
        switch (sz) {
        case 1: *p = (uint8_t)tgw_get_le(in, 1); break;
        case 2: v16 = (uint16_t)tgw_get_le(in, 2); memcpy(p, &v16, 2); break;
        case 4: v32 = tgw_get_le(in, 4); memcpy(p, &v32, 4); break;
        case 8:
            v64 = tgw_get_le(in, 4);
            v64 |= (uint64_t)tgw_get_le(in, 4) << 32;
            memcpy(p, &v64, 8);
            break;
        default:
            src = tgw_take(in, sz);
            if (src != NULL) {
                memcpy(p, src, sz);
            }
            break;
        }
    }
}
