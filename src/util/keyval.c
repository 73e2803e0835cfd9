/* "type,key=value,..." option strings. */
#include "util/keyval.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct KeyValPair {
    char *key;
    char *value;
    bool used;
} KeyValPair;

struct KeyVal {
    KeyValPair *pairs;
    int n;
};

/* Reads one element up to an unescaped ',' and un-doubles ",,". */
static char *read_element(const char **p)
{
    const char *s = *p;
    size_t len = strlen(s);
    char *out = malloc(len + 1), *o = out;
    if (!out) {
        return NULL;
    }
    while (*s) {
        if (*s == ',') {
            if (s[1] == ',') {
                *o++ = ',';
                s += 2;
                continue;
            }
            s++;
            break;
        }
        *o++ = *s++;
    }
    *o = 0;
    *p = s;
    return out;
}

static bool add_pair(KeyVal *kv, char *key, char *value, Error **errp)
{
    for (int i = 0; i < kv->n; i++) {
        if (strcmp(kv->pairs[i].key, key) == 0) {
            error_setg(errp, "parameter '%s' given twice", key);
            return false;
        }
    }
    KeyValPair *p = realloc(kv->pairs, sizeof(*p) * (size_t)(kv->n + 1));
    if (!p) {
        error_setg(errp, "out of memory");
        return false;
    }
    kv->pairs = p;
    kv->pairs[kv->n++] = (KeyValPair){ .key = key, .value = value };
    return true;
}

KeyVal *keyval_parse(const char *str, const char *implied_key, Error **errp)
{
    KeyVal *kv = calloc(1, sizeof(*kv));
    const char *p = str;
    bool first = true;
    if (!kv) {
        error_setg(errp, "out of memory");
        return NULL;
    }
    while (*p) {
        char *elem = read_element(&p);
        char *eq = elem ? strchr(elem, '=') : NULL;
        char *key, *value;
        if (!elem) {
            error_setg(errp, "out of memory");
            goto fail;
        }
        if (eq) {
            *eq = 0;
            key = elem;
            value = strdup(eq + 1);
        } else if (first && implied_key) {
            key = strdup(implied_key);
            value = elem;
        } else {
            error_setg(errp, "expected key=value, got '%s'", elem);
            free(elem);
            goto fail;
        }
        first = false;
        if (!*key) {
            error_setg(errp, "empty parameter name in '%s'", str);
            free(key);
            free(value);
            goto fail;
        }
        if (!add_pair(kv, key, value, errp)) {
            free(key);
            free(value);
            goto fail;
        }
    }
    return kv;
fail:
    keyval_free(kv);
    return NULL;
}

void keyval_free(KeyVal *kv)
{
    if (!kv) {
        return;
    }
    for (int i = 0; i < kv->n; i++) {
        free(kv->pairs[i].key);
        free(kv->pairs[i].value);
    }
    free(kv->pairs);
    free(kv);
}

const char *keyval_get(KeyVal *kv, const char *key)
{
    for (int i = 0; i < kv->n; i++) {
        if (strcmp(kv->pairs[i].key, key) == 0) {
            kv->pairs[i].used = true;
            return kv->pairs[i].value;
        }
    }
    return NULL;
}

bool keyval_get_str(KeyVal *kv, const char *key, const char *def,
                    const char **out, Error **errp)
{
    const char *v = keyval_get(kv, key);
    *out = v ? v : def;
    return true;
}

bool keyval_get_bool(KeyVal *kv, const char *key, bool def, bool *out,
                     Error **errp)
{
    const char *v = keyval_get(kv, key);
    if (!v) {
        *out = def;
        return true;
    }
    if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes") ||
        !strcmp(v, "1")) {
        *out = true;
        return true;
    }
    if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no") ||
        !strcmp(v, "0")) {
        *out = false;
        return true;
    }
    error_setg(errp, "parameter '%s' expects on or off, got '%s'", key, v);
    return false;
}

bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == ' ') {
        return false;
    }
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s) {
        return false;
    }
    unsigned shift = 0;
    switch (*end) {
    case 0:
        break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'M': shift = 20; end++; break;
    case 'G': shift = 30; end++; break;
    case 'T': shift = 40; end++; break;
    default:
        return false;
    }
    if (*end || (shift && v > (UINT64_MAX >> shift))) {
        return false;
    }
    *out = (uint64_t)v << shift;
    return true;
}

bool keyval_get_u64(KeyVal *kv, const char *key, uint64_t def,
                    uint64_t *out, Error **errp)
{
    const char *v = keyval_get(kv, key);
    if (!v) {
        *out = def;
        return true;
    }
    if (!parse_u64(v, out)) {
        error_setg(errp, "parameter '%s' expects a number, got '%s'", key, v);
        return false;
    }
    return true;
}

bool keyval_get_u32(KeyVal *kv, const char *key, uint32_t def,
                    uint32_t *out, Error **errp)
{
    uint64_t v;
    if (!keyval_get_u64(kv, key, def, &v, errp)) {
        return false;
    }
    if (v > UINT32_MAX) {
        error_setg(errp, "parameter '%s' is too large: %llu", key,
                   (unsigned long long)v);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

bool keyval_check_all_used(KeyVal *kv, const char *what, Error **errp)
{
    for (int i = 0; i < kv->n; i++) {
        if (!kv->pairs[i].used) {
            error_setg(errp, "%s: unknown parameter '%s'", what,
                       kv->pairs[i].key);
            return false;
        }
    }
    return true;
}

const char *keyval_key_at(const KeyVal *kv, int i)
{
    return i >= 0 && i < kv->n ? kv->pairs[i].key : NULL;
}
