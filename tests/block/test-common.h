/* Helpers shared by the block tests: scratch images in the test's working
 * directory (the build tree), removed when the test ends. */
#ifndef STORMIG_TESTS_BLOCK_COMMON_H
#define STORMIG_TESTS_BLOCK_COMMON_H

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Creates a sparse file of size bytes; returns its malloc'd name. */
static inline char *scratch_image(const char *prefix, uint64_t size)
{
    char *name = NULL;
    if (asprintf(&name, "%s-XXXXXX", prefix) < 0) {
        return NULL;
    }
    int fd = mkstemp(name);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
        free(name);
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    close(fd);
    return name;
}

static inline void remove_image(char *name)
{
    if (name) {
        unlink(name);
        free(name);
    }
}

/* Byte i of pattern 'seed': differs per seed and per position. */
static inline uint8_t pattern_byte(unsigned seed, uint64_t i)
{
    return (uint8_t)(seed * 131u + (unsigned)(i * 7u) + (unsigned)(i >> 9));
}

static inline void fill_pattern(void *buf, size_t len, unsigned seed)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        p[i] = pattern_byte(seed, i);
    }
}

static inline int check_pattern(const void *buf, size_t len, unsigned seed)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != pattern_byte(seed, i)) {
            return -1;
        }
    }
    return 0;
}

static inline int all_zero(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        if (p[i]) {
            return -1;
        }
    }
    return 0;
}

#endif
