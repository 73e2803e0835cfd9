/* Big-endian load/store helpers (the device-state wire order) and a
 * growable byte buffer. */
#ifndef STORMIG_UTIL_BYTES_H
#define STORMIG_UTIL_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline void st_be16(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}

static inline void st_be32(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static inline void st_be64(void *p, uint64_t v)
{
    st_be32(p, (uint32_t)(v >> 32));
    st_be32((uint8_t *)p + 4, (uint32_t)v);
}

static inline uint16_t ld_be16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)((b[0] << 8) | b[1]);
}

static inline uint32_t ld_be32(const void *p)
{
    const uint8_t *b = p;
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) |
           ((uint32_t)b[2] << 8) | b[3];
}

static inline uint64_t ld_be64(const void *p)
{
    return ((uint64_t)ld_be32(p) << 32) | ld_be32((const uint8_t *)p + 4);
}

/* Growable buffer. On allocation failure 'failed' is set and appends are
 * dropped, so a caller can append many times and check once. */
typedef struct ByteBuf {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool failed;
} ByteBuf;

void bytebuf_init(ByteBuf *b);
void bytebuf_free(ByteBuf *b);
void bytebuf_reset(ByteBuf *b);
bool bytebuf_reserve(ByteBuf *b, size_t extra);
void bytebuf_append(ByteBuf *b, const void *data, size_t len);
void bytebuf_put_u8(ByteBuf *b, uint8_t v);
void bytebuf_put_be16(ByteBuf *b, uint16_t v);
void bytebuf_put_be32(ByteBuf *b, uint32_t v);
void bytebuf_put_be64(ByteBuf *b, uint64_t v);
/* Detaches the data; the caller frees it. */
uint8_t *bytebuf_steal(ByteBuf *b, size_t *len);

#endif
