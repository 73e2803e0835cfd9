/* Logging: one line per message, to stderr, with level and tag. */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define RATELIMIT_BURST 10

static LogLevel log_level = LOG_INFO;
static char log_tag[32] = "stormig";
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_set_level(LogLevel level)
{
    log_level = level;
}

LogLevel log_get_level(void)
{
    return log_level;
}

void log_set_tag(const char *tag)
{
    snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

bool log_parse_level(const char *s, LogLevel *level)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i]) == 0) {
            *level = (LogLevel)i;
            return true;
        }
    }
    return false;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void log_msg(LogLevel level, const char *fmt, ...)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    if (level > log_level) {
        return;
    }
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    uint64_t t = now_ns();
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "[%llu.%06llu] %s %s: %s\n",
            (unsigned long long)(t / 1000000000ull),
            (unsigned long long)(t % 1000000000ull / 1000),
            log_tag, names[level], line);
    pthread_mutex_unlock(&log_lock);
}

bool ratelimit_ok(RateLimit *rl, uint32_t *suppressed)
{
    bool ok;
    uint64_t t = now_ns();
    pthread_mutex_lock(&log_lock);
    if (!rl->initialised) {
        rl->initialised = true;
        rl->tokens = RATELIMIT_BURST;
        rl->last_ns = t;
    }
    uint64_t refill = (t - rl->last_ns) / 1000000000ull;
    if (refill) {
        uint64_t tokens = rl->tokens + refill;
        rl->tokens = tokens > RATELIMIT_BURST ? RATELIMIT_BURST : (uint32_t)tokens;
        rl->last_ns = t;
    }
    *suppressed = 0;
    if (rl->tokens) {
        rl->tokens--;
        *suppressed = rl->suppressed;
        rl->suppressed = 0;
        ok = true;
    } else {
        rl->suppressed++;
        ok = false;
    }
    pthread_mutex_unlock(&log_lock);
    return ok;
}
