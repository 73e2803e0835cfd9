/* Per-LUN reservation tracking: the gate in front of the LUN, the
 * completion filter that snoops PERSISTENT RESERVE OUT and masks REPORT
 * CAPABILITIES, and the device-state hooks (see scsi-pr-lun.h). */
#include "scsi/scsi-pr-int.h"
#include "device/device.h"
#include "util/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEEN 256        /* guest PR commands in flight we remember */

bool scsi_pr_migrate_default(void)
{
    return !device_compat_before(0, 2);
}

/* scsi_block_sync_commands as a ScsiPrBatchFn. */
static bool sb_batch(void *opaque, ScsiPrCmd *cmds, size_t n, Error **errp)
{
    ScsiBlockCommand c[SCSI_BLOCK_SYNC_MAX];
    if (n > SCSI_BLOCK_SYNC_MAX) {
        error_setg(errp, "%zu commands at once", n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        c[i] = (ScsiBlockCommand){ .cdb = cmds[i].cdb,
                                   .cdb_len = cmds[i].cdb_len,
                                   .dir = cmds[i].dir, .buf = cmds[i].buf,
                                   .len = cmds[i].len };
    }
    bool ok = scsi_block_sync_commands(opaque, c, n, errp);
    for (size_t i = 0; i < n; i++) {
        ScsiPrResult *res = &cmds[i].res;
        res->status = c[i].res.status;
        res->sense_len = c[i].res.sense_len;
        memcpy(res->sense, c[i].res.sense, c[i].res.sense_len);
        res->transferred = c[i].res.transferred;
    }
    return ok;
}

ScsiPrIo scsi_pr_block_io(ScsiBlock *sb, const char *who)
{
    return (ScsiPrIo){ .fn = sb_batch, .opaque = sb, .who = who };
}

ScsiPr *scsi_pr_new(ScsiBlock *sb, ScsiLun *lun, const ScsiPrConfig *cfg,
                    Error **errp)
{
    ScsiPr *pr = calloc(1, sizeof(*pr));
    const char *dir = cfg->journal_dir ? cfg->journal_dir :
                      scsi_pr_journal_default_dir();
    if (!pr || !(pr->dev_id = strdup(cfg->dev_id)) ||
        !(pr->initiator = strdup(cfg->initiator)) ||
        !(pr->journal_dir = strdup(dir))) {
        error_setg(errp, "out of memory");
        scsi_pr_free(pr);
        return NULL;
    }
    pr->sb = sb;
    pr->lun = lun;
    pr->io = cfg->io ? *cfg->io : scsi_pr_block_io(sb, pr->initiator);
    pthread_mutex_init(&pr->lock, NULL);
    pthread_mutex_init(&pr->journal_lock, NULL);
    pr->held_tail = &pr->held;
    pr->gate = PR_OPEN;
    return pr;
}

void scsi_pr_shutdown(ScsiPr *pr)
{
    pthread_mutex_lock(&pr->lock);
    pr->closing = true;
    pthread_mutex_unlock(&pr->lock);
    scsi_pr_open_gate(pr, true);
}

void scsi_pr_free(ScsiPr *pr)
{
    if (!pr) {
        return;
    }
    if (pr->lun && pr->lun->loop) {
        /* A posted read-back still refers to pr. */
        for (int i = 0; i < 100; i++) {
            pthread_mutex_lock(&pr->lock);
            unsigned posts = pr->posts;
            pthread_mutex_unlock(&pr->lock);
            if (!posts) {
                break;
            }
            loop_run_once(pr->lun->loop, 10);
        }
    }
    while (pr->seen) {
        PrSeen *s = pr->seen;
        pr->seen = s->next;
        free(s);
    }
    if (pr->initiator) {
        pthread_mutex_destroy(&pr->lock);
        pthread_mutex_destroy(&pr->journal_lock);
    }
    free(pr->dev_id);
    free(pr->initiator);
    free(pr->journal_dir);
    free(pr);
}

/* ---- The gate ---------------------------------------------------------- */

typedef struct PrRelease {
    ScsiPr *pr;
    PrHeld *list;
    bool failed;
    EventLoop *loop;                /* where it was posted */
} PrRelease;

static void release_list(ScsiPr *pr, PrHeld *list, bool failed)
{
    while (list) {
        PrHeld *h = list;
        list = h->next;
        if (failed) {
            h->req->status = SAM_STAT_BUSY;     /* SAM-5 5.3.1: retry */
            scsi_req_complete(h->req);
        } else {
            scsi_block_resubmit(pr->sb, h->req);
        }
        free(h);
    }
}

static void release_held(void *opaque)
{
    PrRelease *rel = opaque;
    EventLoop *now = rel->pr->lun->loop;
    /* Posted while the VM was stopped, and the LUN moved to the I/O
     * thread's loop since (the VM started): its session is served there.
     * A move runs while both threads wait for it (scsi.h). */
    if (rel->loop && now && now != rel->loop) {
        rel->loop = now;
        if (loop_post(now, release_held, rel)) {
            return;
        }
    }
    release_list(rel->pr, rel->list, rel->failed);
    free(rel);
}

/* Held requests belong to the LUN's loop: they go from there. */
static void release_on_loop(ScsiPr *pr, PrHeld *list, bool failed)
{
    if (!list) {
        return;
    }
    PrRelease *rel = calloc(1, sizeof(*rel));
    if (!rel) {
        release_list(pr, list, true);   /* cannot defer: BUSY, retried */
        return;
    }
    *rel = (PrRelease){ .pr = pr, .list = list, .failed = failed,
                        .loop = pr->lun->loop };
    if (!pr->lun->loop || !loop_post(pr->lun->loop, release_held, rel)) {
        release_held(rel);
    }
}

void scsi_pr_open_gate(ScsiPr *pr, bool failed)
{
    pthread_mutex_lock(&pr->lock);
    pr->gate = failed ? PR_BUSY : PR_OPEN;
    PrHeld *list = pr->held;
    pr->held = NULL;
    pr->held_tail = &pr->held;
    pthread_mutex_unlock(&pr->lock);
    release_on_loop(pr, list, failed);
}

unsigned scsi_pr_check_begin(ScsiPr *pr)
{
    pthread_mutex_lock(&pr->lock);
    unsigned seq = ++pr->takeovers;
    pr->checks_pending++;
    snprintf(pr->check, sizeof(pr->check), "pending");
    pthread_mutex_unlock(&pr->lock);
    return seq;
}

void scsi_pr_check_done(ScsiPr *pr, unsigned seq, const char *result)
{
    PrHeld *list = NULL;
    pthread_mutex_lock(&pr->lock);
    if (seq == pr->takeovers) {
        snprintf(pr->check, sizeof(pr->check), "%s", result);
    }
    if (pr->checks_pending) {
        pr->checks_pending--;
    }
    /* What waited for the check; while the gate holds (inactivated
     * meanwhile) it waits for the next activation instead. */
    if (!pr->checks_pending && pr->gate == PR_OPEN) {
        list = pr->held;
        pr->held = NULL;
        pr->held_tail = &pr->held;
    }
    pthread_mutex_unlock(&pr->lock);
    release_on_loop(pr, list, false);
}

bool scsi_pr_cancel(ScsiPr *pr, ScsiRequest *req)
{
    PrHeld *found = NULL;
    pthread_mutex_lock(&pr->lock);
    for (PrHeld **p = &pr->held; *p; p = &(*p)->next) {
        if ((*p)->req == req) {
            found = *p;
            *p = found->next;
            if (!*p) {
                pr->held_tail = p;
            }
            break;
        }
    }
    pthread_mutex_unlock(&pr->lock);
    if (found) {
        free(found);
        scsi_req_complete(req);     /* req->cancelled: reported aborted */
    }
    return found != NULL;
}

/* Remembers a guest PR command until its completion (replacing a stale
 * entry for the same request, e.g. one whose session was lost). */
static void remember(ScsiPr *pr, ScsiRequest *req, const ScsiPrOut *out)
{
    PrSeen *s = calloc(1, sizeof(*s));
    unsigned n = 0;
    if (!s) {
        return;
    }
    s->req = req;
    s->is_out = out != NULL;
    if (out) {
        s->out = *out;
    }
    pthread_mutex_lock(&pr->lock);
    for (PrSeen **p = &pr->seen; *p;) {
        if ((*p)->req == req || ++n >= MAX_SEEN) {
            PrSeen *old = *p;
            *p = old->next;
            free(old);
        } else {
            p = &(*p)->next;
        }
    }
    s->next = pr->seen;
    pr->seen = s;
    pthread_mutex_unlock(&pr->lock);
}

/* PR OUT is parsed here, from the data-out as the LUN will get it, so
 * the completion snoops what the target executed. */
static ScsiPrGate classify(ScsiPr *pr, ScsiRequest *req)
{
    uint8_t param[SCSI_PR_OUT_PARAM_LEN];
    ScsiPrOut out;

    if (req->cdb[0] == SCSI_OP_PERSISTENT_RESERVE_IN && req->cdb_len >= 2 &&
        (req->cdb[1] & 0x1f) == SCSI_PRIN_REPORT_CAPABILITIES) {
        remember(pr, req, NULL);
        return SCSI_PR_GATE_PASS;
    }
    if (req->cdb[0] != SCSI_OP_PERSISTENT_RESERVE_OUT) {
        return SCSI_PR_GATE_PASS;
    }
    size_t n = req->dir == SCSI_DIR_TO_DEV ?
               scsi_req_get_data(req, param, sizeof(param)) : 0;
    ScsiPrOutStatus st = scsi_pr_out_parse(req->cdb, req->cdb_len, param, n,
                                           &out);
    if (st != SCSI_PR_OUT_OK) {
        log_ratelimited(LOG_WARN, "scsi-block %s: PERSISTENT RESERVE OUT "
                        "refused: %s", pr->dev_id,
                        scsi_pr_out_status_name(st));
        scsi_req_complete_sense(req, scsi_pr_out_status_sense(st));
        return SCSI_PR_GATE_DONE;
    }
    remember(pr, req, &out);
    return SCSI_PR_GATE_PASS;
}

/* SAM-5 5.14: INQUIRY, REPORT LUNS and REQUEST SENSE neither report
 * nor clear a pending UNIT ATTENTION; every other command reports it. */
static bool reports_unit_attention(const ScsiRequest *req)
{
    uint8_t op = req->cdb[0];
    return op != SCSI_OP_INQUIRY && op != SCSI_OP_REPORT_LUNS &&
           op != SCSI_OP_REQUEST_SENSE;
}

ScsiPrGate scsi_pr_gate(ScsiPr *pr, ScsiRequest *req)
{
    PrHeld *h = NULL;
    pthread_mutex_lock(&pr->lock);
    PrGateMode mode = pr->gate;
    /* A fence this nexus inherited: the guest learns of it as the
     * preempted nexus would have (SPC-4 5.13.11.2.4), once. */
    bool fence_ua = mode == PR_OPEN && pr->fence_ua &&
                    reports_unit_attention(req);
    if (fence_ua) {
        pr->fence_ua = false;
        pthread_mutex_unlock(&pr->lock);
        scsi_req_complete_sense(req, SENSE_UA_REGISTRATIONS_PREEMPTED);
        return SCSI_PR_GATE_DONE;
    }
    /* A guest PR OUT waits for a pending outcome check, which must read
     * what the takeover did, not the guest's next change. */
    if (mode == PR_OPEN && pr->checks_pending &&
        req->cdb[0] == SCSI_OP_PERSISTENT_RESERVE_OUT) {
        mode = PR_HOLD;
    }
    if (mode == PR_HOLD && (h = calloc(1, sizeof(*h))) != NULL) {
        h->req = req;
        *pr->held_tail = h;
        pr->held_tail = &h->next;
    }
    pthread_mutex_unlock(&pr->lock);
    if (mode == PR_OPEN) {
        return classify(pr, req);
    }
    if (h) {
        return SCSI_PR_GATE_HELD;
    }
    req->status = SAM_STAT_BUSY;
    scsi_req_complete(req);
    return SCSI_PR_GATE_DONE;
}

/* ---- Completion ------------------------------------------------------- */

static PrSeen *take_seen(ScsiPr *pr, ScsiRequest *req)
{
    PrSeen *found = NULL;
    pthread_mutex_lock(&pr->lock);
    for (PrSeen **p = &pr->seen; *p; p = &(*p)->next) {
        if ((*p)->req == req) {
            found = *p;
            *p = found->next;
            break;
        }
    }
    pthread_mutex_unlock(&pr->lock);
    return found;
}

static void mask_caps(ScsiRequest *req)
{
    uint8_t head[3];
    size_t got = req->data_len - req->residual;
    if (got < sizeof(head) ||
        scsi_iov_to_buf(req->iov, req->iovcnt, 0, head, 3) != 3 ||
        !scsi_pr_caps_mask(head, sizeof(head))) {
        return;
    }
    scsi_iov_from_buf(req->iov, req->iovcnt, 2, &head[2], 1);
}

typedef struct PrReadBack {
    ScsiPr *pr;
    EventLoop *loop;                /* where it was posted */
} PrReadBack;

static void read_back_posted(void *opaque)
{
    PrReadBack *rb = opaque;
    ScsiPr *pr = rb->pr;
    EventLoop *now = pr->lun->loop;
    Error *err = NULL;
    /* The LUN (and its session) may have moved to another thread's loop
     * since the post (the VM stopped or started): read from there. */
    if (now && now != rb->loop) {
        rb->loop = now;
        if (loop_post(now, read_back_posted, rb)) {
            return;
        }
    }
    free(rb);
    if (!scsi_pr_read_back(pr, &err)) {
        log_ratelimited(LOG_WARN, "%s", error_get_pretty(err));
        error_free(err);
    }
    pthread_mutex_lock(&pr->lock);
    pr->posts--;
    pthread_mutex_unlock(&pr->lock);
}

static void snoop(ScsiPr *pr, ScsiRequest *req, const ScsiPrOut *out)
{
    pthread_mutex_lock(&pr->lock);
    ScsiPrSnoop r = scsi_pr_snoop(&pr->st, out);
    ScsiPrState now = pr->st;
    bool post = r == SCSI_PR_SNOOP_READ_BACK && req->lun->loop;
    if (r == SCSI_PR_SNOOP_READ_BACK) {
        pr->read_back_pending = true;
        pr->posts += post;
    }
    pthread_mutex_unlock(&pr->lock);
    log_debug("scsi-block %s: %s -> key 0x%" PRIx64 " type %s", pr->dev_id,
              scsi_pr_out_sa_name(out->service_action), now.key,
              scsi_pr_type_name(now.type));
    if (r == SCSI_PR_SNOOP_CHANGED) {
        scsi_pr_journal_update(pr, true);
    }
    /* Not from inside the session's callback: from the loop, next. */
    PrReadBack *rb = post ? malloc(sizeof(*rb)) : NULL;
    if (rb) {
        *rb = (PrReadBack){ .pr = pr, .loop = req->lun->loop };
    }
    if (post && (!rb || !loop_post(rb->loop, read_back_posted, rb))) {
        /* Still pending: activation reads it back before the takeover. */
        free(rb);
        pthread_mutex_lock(&pr->lock);
        pr->posts--;
        pthread_mutex_unlock(&pr->lock);
    }
}

void scsi_pr_filter(ScsiBlock *sb, ScsiRequest *req, void *opaque)
{
    ScsiPr *pr = opaque;
    PrSeen *s = take_seen(pr, req);
    if (!s) {
        return;                 /* not a guest PR command we track */
    }
    if (req->response == SCSI_RESP_OK && req->status == SAM_STAT_GOOD) {
        if (s->is_out) {
            snoop(pr, req, &s->out);
        } else {
            mask_caps(req);
        }
    }
    free(s);
}

bool scsi_pr_read_back(ScsiPr *pr, Error **errp)
{
    ScsiPrReservation r;
    pthread_mutex_lock(&pr->lock);
    bool pending = pr->read_back_pending;
    pthread_mutex_unlock(&pr->lock);
    if (!pending) {
        return true;
    }
    if (!scsi_pr_io_read_reservation(&pr->io, &r, errp)) {
        error_prepend(errp, "scsi-block %s: after PREEMPT: ", pr->dev_id);
        return false;
    }
    pthread_mutex_lock(&pr->lock);
    scsi_pr_apply_reservation(&pr->st, &r);
    pr->read_back_pending = false;
    pthread_mutex_unlock(&pr->lock);
    scsi_pr_journal_update(pr, true);
    return true;
}

/* ---- State, migration, journal ---------------------------------------- */

ScsiPrState scsi_pr_state(ScsiPr *pr)
{
    pthread_mutex_lock(&pr->lock);
    ScsiPrState st = pr->st;
    pthread_mutex_unlock(&pr->lock);
    return st;
}

bool scsi_pr_is_active(ScsiPr *pr)
{
    pthread_mutex_lock(&pr->lock);
    bool open = pr->gate == PR_OPEN;
    pthread_mutex_unlock(&pr->lock);
    return open;
}

bool scsi_pr_needed(ScsiPr *pr)
{
    return scsi_pr_state(pr).key != 0;
}

bool scsi_pr_pre_save(ScsiPr *pr, ScsiPrWire *wire, Error **errp)
{
    /* A PREEMPT whose outcome was not read yet: the VM is stopped, read
     * it now rather than hand over a guess. */
    if (!scsi_pr_read_back(pr, errp)) {
        return false;
    }
    ScsiPrState st = scsi_pr_state(pr);
    wire->key = st.key;
    wire->type = st.type;
    return true;
}

bool scsi_pr_post_load_sub(ScsiPr *pr, const ScsiPrWire *wire, Error **errp)
{
    ScsiPrState st = { .key = wire->key, .type = wire->type };
    /* Sent only with a key; key and type must be a state SPC-4 allows. */
    if (st.key == 0 || !scsi_pr_state_valid(&st)) {
        error_setg(errp, "scsi-block %s: migrated reservation state is "
                   "impossible (key 0x%" PRIx64 ", type %u)", pr->dev_id,
                   st.key, st.type);
        log_ratelimited(LOG_WARN, "%s", error_get_pretty(*errp));
        return false;
    }
    pthread_mutex_lock(&pr->lock);
    pr->loaded = *wire;
    pr->loaded_sub = true;
    pthread_mutex_unlock(&pr->lock);
    return true;
}

bool scsi_pr_fence_needed(ScsiPr *pr, uint64_t *key)
{
    pthread_mutex_lock(&pr->lock);
    bool needed = pr->fence_ua && pr->fenced_key;
    *key = pr->fenced_key;
    pthread_mutex_unlock(&pr->lock);
    return needed;
}

bool scsi_pr_post_load_fence(ScsiPr *pr, uint64_t key, Error **errp)
{
    if (key == 0) {
        error_setg(errp, "scsi-block %s: migrated fence names key 0",
                   pr->dev_id);
        log_ratelimited(LOG_WARN, "%s", error_get_pretty(*errp));
        return false;
    }
    pthread_mutex_lock(&pr->lock);
    pr->loaded_fence = key;
    pthread_mutex_unlock(&pr->lock);
    return true;
}

void scsi_pr_save_nexus(ScsiPr *pr, char name[SCSI_PR_NAME_MAX])
{
    memset(name, 0, SCSI_PR_NAME_MAX);
    snprintf(name, SCSI_PR_NAME_MAX, "%s", pr->initiator);
}

bool scsi_pr_post_load_nexus(ScsiPr *pr, const char name[SCSI_PR_NAME_MAX],
                             Error **errp)
{
    if (!memchr(name, '\0', SCSI_PR_NAME_MAX) || !name[0]) {
        error_setg(errp, "scsi-block %s: migrated initiator name is empty "
                   "or not terminated", pr->dev_id);
        log_ratelimited(LOG_WARN, "%s", error_get_pretty(*errp));
        return false;
    }
    pthread_mutex_lock(&pr->lock);
    memcpy(pr->loaded_source, name, SCSI_PR_NAME_MAX);
    pthread_mutex_unlock(&pr->lock);
    return true;
}

void scsi_pr_post_load(ScsiPr *pr)
{
    pthread_mutex_lock(&pr->lock);
    pr->st = pr->loaded_sub ?
             (ScsiPrState){ .key = pr->loaded.key, .type = pr->loaded.type } :
             (ScsiPrState){ 0 };
    /* A guest fenced on the source, not told yet: it is told here. */
    pr->fenced_key = pr->loaded_sub ? 0 : pr->loaded_fence;
    pr->fence_ua = pr->fenced_key != 0;
    pr->loaded_fence = 0;
    if (pr->loaded_sub) {
        memcpy(pr->source, pr->loaded_source, sizeof(pr->source));
    } else {
        pr->source[0] = '\0';
    }
    memset(pr->loaded_source, 0, sizeof(pr->loaded_source));
    pr->loaded_sub = false;
    pr->read_back_pending = false;
    /* The reservation is still the source's: hold guest I/O until the
     * activation took it over. */
    pr->gate = PR_HOLD;
    pthread_mutex_unlock(&pr->lock);
}

void scsi_pr_journal_update(ScsiPr *pr, bool active)
{
    ScsiPrJournal j = { .active = active };
    Error *err = NULL;
    pthread_mutex_lock(&pr->journal_lock);
    j.st = scsi_pr_state(pr);
    snprintf(j.initiator, sizeof(j.initiator), "%s", pr->initiator);
    /* No file for a LUN that never had a key: nothing to remember. */
    if (j.st.key == 0 && !pr->journal_exists) {
        pthread_mutex_unlock(&pr->journal_lock);
        return;
    }
    if (scsi_pr_journal_write(pr->journal_dir, pr->dev_id, &j, &err)) {
        pr->journal_exists = true;
    } else {
        log_ratelimited(LOG_WARN, "scsi-block %s: reservation journal: %s",
                        pr->dev_id, error_get_pretty(err));
        error_free(err);
    }
    pthread_mutex_unlock(&pr->journal_lock);
}

void scsi_pr_query(ScsiPr *pr, json_object *info)
{
    char key[24];
    pthread_mutex_lock(&pr->lock);
    ScsiPrState st = pr->st;
    bool active = pr->gate == PR_OPEN;
    uint64_t takeover_ns = pr->takeover_ns;
    unsigned round_trips = pr->takeover_round_trips;
    json_object *note = pr->startup_note[0] ?
                        json_object_new_string(pr->startup_note) : NULL;
    json_object *check = pr->check[0] ?
                         json_object_new_string(pr->check) : NULL;
    uint64_t fenced = pr->fenced_key;
    pthread_mutex_unlock(&pr->lock);
    if (fenced) {
        char k[24];
        snprintf(k, sizeof(k), "0x%016" PRIx64, fenced);
        json_object_object_add(info, "pr-fenced", json_object_new_string(k));
    }
    snprintf(key, sizeof(key), "0x%016" PRIx64, st.key);
    json_object_object_add(info, "migrate-pr", json_object_new_boolean(1));
    json_object_object_add(info, "pr-key", json_object_new_string(key));
    json_object_object_add(info, "pr-type",
                           json_object_new_string(scsi_pr_type_short(st.type)));
    json_object_object_add(info, "pr-active", json_object_new_boolean(active));
    if (takeover_ns) {
        json_object_object_add(info, "pr-takeover-ms",
                               json_object_new_double(
                                   (double)takeover_ns / 1e6));
        json_object_object_add(info, "pr-takeover-round-trips",
                               json_object_new_int((int)round_trips));
    }
    if (check) {
        json_object_object_add(info, "pr-check", check);
    }
    if (note) {
        json_object_object_add(info, "pr-startup", note);
    }
}

bool scsi_pr_probe_access(ScsiBlock *sb, bool write, uint8_t *status,
                          Error **errp)
{
    /* SBC-3 5.10/5.35: TRANSFER LENGTH 0 transfers nothing and is not an
     * error; LBA 0 is always in range. */
    uint8_t cdb[10] = { write ? SCSI_OP_WRITE_10 : SCSI_OP_READ_10 };
    /* The nexus that just lost its registration reports that first as a
     * UNIT ATTENTION (SPC-4 5.13.11.2.4): the helper retries those. */
    ScsiPrIo io = scsi_pr_block_io(sb, "probe");
    ScsiPrResult r;
    if (!scsi_pr_io_command(&io, cdb, sizeof(cdb), SCSI_DIR_NONE, NULL, 0,
                            &r, errp)) {
        return false;
    }
    *status = r.status;
    return true;
}
