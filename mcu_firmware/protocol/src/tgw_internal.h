/* Little-endian cursor helpers shared by the library's translation units. */
#ifndef TGW_INTERNAL_H
#define TGW_INTERNAL_H

#include <stddef.h>
#include <string.h>

#include "tgw_protocol.h"

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool ok; /* sticky: false after the first overflow */
} tgw_out_t;

typedef struct {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    bool ok; /* sticky: false after the first short read */
} tgw_in_t;

/* Defined in tgw_bytes.c: out of line, because inlined at every field they
 * cost the codec about a kilobyte of flash. */
void tgw_put(tgw_out_t *o, const void *src, size_t n);
void tgw_put_u8(tgw_out_t *o, uint8_t v);
void tgw_put_le(tgw_out_t *o, uint32_t v, size_t n);
const uint8_t *tgw_take(tgw_in_t *in, size_t n);
uint32_t tgw_get_le(tgw_in_t *in, size_t n);
void tgw_store_le(uint8_t *p, uint32_t v, size_t n);
uint32_t tgw_load_le(const uint8_t *p, size_t n);

/* Fixed-layout runs of fields are described by tables and walked by one loop:
 * a call per field costs about 10 bytes of flash, a table entry 2. */
typedef struct {
    uint8_t offset;
    uint8_t size;
} tgw_field_t;

#define TGW_FIELD(type, member)                                                           \
    { (uint8_t) offsetof(type, member), (uint8_t)sizeof(((type *)0)->member) }
#define TGW_COUNT(a) (sizeof(a) / sizeof((a)[0]))

void tgw_put_fields(tgw_out_t *o, const void *s, const tgw_field_t *f, size_t n);
void tgw_get_fields(tgw_in_t *in, void *s, const tgw_field_t *f, size_t n);

#endif
