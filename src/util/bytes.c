/* Growable byte buffer. */
#include "util/bytes.h"

#include <stdlib.h>
#include <string.h>

void bytebuf_init(ByteBuf *b)
{
    memset(b, 0, sizeof(*b));
}

void bytebuf_free(ByteBuf *b)
{
    free(b->data);
    bytebuf_init(b);
}

void bytebuf_reset(ByteBuf *b)
{
    b->len = 0;
    b->failed = false;
}

bool bytebuf_reserve(ByteBuf *b, size_t extra)
{
    if (b->failed) {
        return false;
    }
    if (extra > SIZE_MAX - b->len) {
        b->failed = true;
        return false;
    }
    size_t need = b->len + extra;
    if (need <= b->cap) {
        return true;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void bytebuf_append(ByteBuf *b, const void *data, size_t len)
{
    if (len && bytebuf_reserve(b, len)) {
        memcpy(b->data + b->len, data, len);
        b->len += len;
    }
}

void bytebuf_put_u8(ByteBuf *b, uint8_t v)
{
    bytebuf_append(b, &v, 1);
}

void bytebuf_put_be16(ByteBuf *b, uint16_t v)
{
    uint8_t t[2];
    st_be16(t, v);
    bytebuf_append(b, t, sizeof(t));
}

void bytebuf_put_be32(ByteBuf *b, uint32_t v)
{
    uint8_t t[4];
    st_be32(t, v);
    bytebuf_append(b, t, sizeof(t));
}

void bytebuf_put_be64(ByteBuf *b, uint64_t v)
{
    uint8_t t[8];
    st_be64(t, v);
    bytebuf_append(b, t, sizeof(t));
}

uint8_t *bytebuf_steal(ByteBuf *b, size_t *len)
{
    uint8_t *d = b->data;
    if (len) {
        *len = b->len;
    }
    bytebuf_init(b);
    return d;
}
