/* The reservation journal (see scsi-pr-journal.h). */
#include "scsi/scsi-pr-journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOURNAL_VERSION 1
#define JOURNAL_MAX 4096        /* a journal is ~200 bytes; refuse more */

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static char *default_dir;

void scsi_pr_journal_set_default_dir(const char *dir)
{
    pthread_mutex_lock(&default_lock);
    free(default_dir);
    default_dir = dir ? strdup(dir) : NULL;
    pthread_mutex_unlock(&default_lock);
}

const char *scsi_pr_journal_default_dir(void)
{
    pthread_mutex_lock(&default_lock);
    const char *d = default_dir ? default_dir : SCSI_PR_JOURNAL_DEFAULT_DIR;
    pthread_mutex_unlock(&default_lock);
    return d;
}

static bool path_of(const char *dir, const char *name, const char *suffix,
                    char *out, size_t size, Error **errp)
{
    int n = snprintf(out, size, "%s/%s.json%s", dir, name, suffix);
    if (n < 0 || (size_t)n >= size) {
        error_setg(errp, "journal path for '%s' too long", name);
        return false;
    }
    return true;
}

/* mkdir -p of dir (one level at a time). */
static bool make_dir(const char *dir, Error **errp)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp)) {
        error_setg(errp, "journal directory name too long");
        return false;
    }
    for (char *p = tmp + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, 0700) < 0 && errno != EEXIST) {
                error_setg_errno(errp, errno, "cannot create %s", tmp);
                return false;
            }
            *p = c;
            if (c == '\0') {
                return true;
            }
        }
    }
}

static char *journal_text(const char *name, const ScsiPrJournal *j)
{
    char key[24];
    json_object *o = json_object_new_object();
    snprintf(key, sizeof(key), "0x%016" PRIx64, j->st.key);
    json_object_object_add(o, "version", json_object_new_int(JOURNAL_VERSION));
    json_object_object_add(o, "device", json_object_new_string(name));
    json_object_object_add(o, "initiator",
                           json_object_new_string(j->initiator));
    json_object_object_add(o, "key", json_object_new_string(key));
    json_object_object_add(o, "type", json_object_new_int(j->st.type));
    json_object_object_add(o, "active", json_object_new_boolean(j->active));
    char *text = strdup(json_object_to_json_string_ext(
        o, JSON_C_TO_STRING_PRETTY));
    json_object_put(o);
    return text;
}

static bool write_all_sync(int fd, const char *text, Error **errp)
{
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "journal write");
            return false;
        }
        off += (size_t)n;
    }
    if (fsync(fd) < 0) {
        error_setg_errno(errp, errno, "journal fsync");
        return false;
    }
    return true;
}

static bool fsync_dir(const char *dir, Error **errp)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0) {
        error_setg_errno(errp, errno, "cannot fsync directory %s", dir);
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    close(fd);
    return true;
}

bool scsi_pr_journal_write(const char *dir, const char *name,
                           const ScsiPrJournal *j, Error **errp)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (!path_of(dir, name, "", path, sizeof(path), errp) ||
        !path_of(dir, name, ".tmp", tmp, sizeof(tmp), errp) ||
        !make_dir(dir, errp)) {
        return false;
    }
    char *text = journal_text(name, j);
    if (!text) {
        error_setg(errp, "out of memory");
        return false;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot create %s", tmp);
        free(text);
        return false;
    }
    bool ok = write_all_sync(fd, text, errp);
    close(fd);
    free(text);
    /* rename(2) replaces the old file atomically; the directory fsync
     * makes the new name itself durable. */
    if (ok && rename(tmp, path) < 0) {
        error_setg_errno(errp, errno, "cannot rename %s", tmp);
        ok = false;
    }
    if (!ok) {
        unlink(tmp);
        return false;
    }
    return fsync_dir(dir, errp);
}

static bool parse_journal(json_object *o, ScsiPrJournal *j, Error **errp)
{
    json_object *v, *key, *type, *active, *init;
    const char *ks;
    char *end;
    if (!json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, "version", &v) ||
        json_object_get_int(v) != JOURNAL_VERSION ||
        !json_object_object_get_ex(o, "key", &key) ||
        !json_object_object_get_ex(o, "type", &type) ||
        !json_object_object_get_ex(o, "active", &active) ||
        !json_object_object_get_ex(o, "initiator", &init)) {
        error_setg(errp, "not a version %d journal", JOURNAL_VERSION);
        return false;
    }
    ks = json_object_get_string(key);
    errno = 0;
    j->st.key = strtoull(ks ? ks : "", &end, 16);
    int t = json_object_get_int(type);
    if (!ks || strncmp(ks, "0x", 2) != 0 || *end || errno ||
        t < 0 || t > 15) {
        error_setg(errp, "bad key or type");
        return false;
    }
    j->st.type = (uint8_t)t;
    j->active = json_object_get_boolean(active);
    snprintf(j->initiator, sizeof(j->initiator), "%s",
             json_object_get_string(init) ? json_object_get_string(init) : "");
    if (!scsi_pr_state_valid(&j->st)) {
        error_setg(errp, "impossible state: key 0x%" PRIx64 " type %u",
                   j->st.key, j->st.type);
        return false;
    }
    return true;
}

bool scsi_pr_journal_parse(const char *text, size_t len, ScsiPrJournal *j,
                           Error **errp)
{
    memset(j, 0, sizeof(*j));
    if (len > JOURNAL_MAX) {
        error_setg(errp, "larger than %d bytes", JOURNAL_MAX);
        return false;
    }
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        error_setg(errp, "out of memory");
        return false;
    }
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    /* Only whitespace may follow the object (a torn or doubled write is
     * an error, not half a journal). */
    while (o && used < len && strchr(" \t\r\n", text[used]) && text[used]) {
        used++;
    }
    bool ok = o && used == len && parse_journal(o, j, errp);
    if (!o || used != len) {
        error_setg(errp, "not JSON");
    }
    json_object_put(o);
    if (!ok) {
        memset(j, 0, sizeof(*j));
    }
    return ok;
}

bool scsi_pr_journal_read(const char *dir, const char *name,
                          ScsiPrJournal *j, bool *found, Error **errp)
{
    char path[PATH_MAX], buf[JOURNAL_MAX + 1];
    memset(j, 0, sizeof(*j));
    *found = false;
    if (!path_of(dir, name, "", path, sizeof(path), errp)) {
        return false;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        return true;
    }
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot open %s", path);
        return false;
    }
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < 0 || n > JOURNAL_MAX) {
        error_setg(errp, "%s: unreadable or larger than %d bytes", path,
                   JOURNAL_MAX);
        return false;
    }
    if (!scsi_pr_journal_parse(buf, (size_t)n, j, errp)) {
        error_prepend(errp, "journal %s: ", path);
        return false;
    }
    *found = true;
    return true;
}
