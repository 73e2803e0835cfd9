/*
 * Logging to stderr with a level, a process tag and a monotonic timestamp.
 *
 * Anything triggered by a guest or a peer must use log_ratelimited(): a
 * misbehaving guest must not be able to flood the log.
 */
#ifndef STORMIG_UTIL_LOG_H
#define STORMIG_UTIL_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum LogLevel {
    LOG_ERROR,
    LOG_WARN,
    LOG_INFO,
    LOG_DEBUG,
} LogLevel;

void log_set_level(LogLevel level);
LogLevel log_get_level(void);
/* A short tag printed on every line, e.g. the daemon's name. */
void log_set_tag(const char *tag);
bool log_parse_level(const char *s, LogLevel *level);

void log_msg(LogLevel level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* Token bucket: at most 'burst' lines, refilled at one line per second. */
typedef struct RateLimit {
    uint64_t last_ns;
    uint32_t tokens;
    uint32_t suppressed;
    bool initialised;
} RateLimit;

/* True when a line may be printed now; counts the lines it suppresses. */
bool ratelimit_ok(RateLimit *rl, uint32_t *suppressed);

#define log_ratelimited(level, ...)                                     \
    do {                                                                \
        static RateLimit rl_;                                           \
        uint32_t dropped_;                                              \
        if (ratelimit_ok(&rl_, &dropped_)) {                            \
            if (dropped_) {                                             \
                log_msg(level, "(%u similar messages suppressed)",      \
                        dropped_);                                      \
            }                                                           \
            log_msg(level, __VA_ARGS__);                                \
        }                                                               \
    } while (0)

#endif
