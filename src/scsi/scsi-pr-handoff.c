/* Taking a reservation over: on the destination after a migration, back
 * on the source after a failed one (rollback), and at start-up from the
 * journal (see scsi-pr-lun.h). */
#include "scsi/scsi-pr-int.h"
#include "block/ownership.h"
#include "util/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FULL_STATUS_MAX 64

static void describe_lun(const ScsiPrKeys *k, const ScsiPrReservation *r,
                         char *buf, size_t size)
{
    int n = snprintf(buf, size, "registered keys:");
    for (uint32_t i = 0; i < k->n && n >= 0 && (size_t)n < size; i++) {
        n += snprintf(buf + n, size - (size_t)n, " 0x%" PRIx64, k->keys[i]);
    }
    if (n >= 0 && (size_t)n < size && !k->n) {
        n += snprintf(buf + n, size - (size_t)n, " none");
    }
    if (n >= 0 && (size_t)n < size) {
        if (r->held) {
            snprintf(buf + n, size - (size_t)n, "; reservation %s by key 0x%"
                     PRIx64, scsi_pr_type_name(r->type), r->key);
        } else {
            snprintf(buf + n, size - (size_t)n, "; no reservation");
        }
    }
}

/* Why the LUN contradicts st, or NULL when it agrees. Before a PREEMPT
 * the previous holder's registration carries the key (SPC-4 5.13.7); the
 * reservation is st's (5.13.10: ALL REGISTRANTS report key 0). */
static const char *contradiction(const ScsiPrState *st, const ScsiPrKeys *k,
                                 const ScsiPrReservation *r)
{
    if (!scsi_pr_keys_contain(k, st->key)) {
        return "the key is no longer registered";
    }
    if (st->type == SCSI_PR_TYPE_NONE) {
        if (r->held && !scsi_pr_type_all_registrants(r->type) &&
            r->key == st->key) {
            return "a reservation the handed-over state does not have is "
                   "held with the key";
        }
        return NULL;
    }
    if (!r->held) {
        return "the reservation was released";
    }
    if (r->type != st->type) {
        return "the reservation has another type";
    }
    if (!scsi_pr_type_all_registrants(r->type) && r->key != st->key) {
        return "the reservation is held with another key";
    }
    /* SPC-4 5.13.10: every registrant holds an ALL REGISTRANTS
     * reservation, and READ RESERVATION reports its key as zero. */
    if (scsi_pr_type_all_registrants(r->type) && r->key != 0) {
        return "an ALL REGISTRANTS reservation reports a nonzero key";
    }
    return NULL;
}

/* A TransportID of initiator name: the name, alone or with ",i,0x" and
 * an ISID (SPC-4 7.6.4.6). */
static bool names_initiator(const ScsiPrFullStatus *e, const char *name)
{
    size_t n = strlen(name);
    return e->protocol == 5 && strncmp(e->name, name, n) == 0 &&
           (e->name[n] == '\0' || e->name[n] == ',');
}

/* With READ FULL STATUS: whether the key is still registered by source,
 * the nexus that handed the state over. Another nexus may have
 * registered the same key and preempted the source with it (SPC-4
 * 5.13.11.2.4 keeps the preempting nexus registered): READ KEYS cannot
 * tell, the TransportIDs can. A list cut short proves nothing. */
static bool source_lost_key(const ScsiPrFullStatus *fs, size_t n,
                            uint64_t key, const char *source)
{
    if (n >= FULL_STATUS_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (fs[i].key == key && names_initiator(&fs[i], source)) {
            return false;
        }
    }
    return true;
}

/* Reads the LUN for verify: READ KEYS and READ RESERVATION, with READ
 * FULL STATUS in the same round trip when the source's initiator name
 * is known; *lost is set when that shows the source's registration gone. */
static bool read_lun(ScsiPr *pr, const ScsiPrIo *io, uint64_t key,
                     ScsiPrKeys *k, ScsiPrReservation *r, bool *lost,
                     Error **errp)
{
    char source[SCSI_PR_NAME_MAX];
    pthread_mutex_lock(&pr->lock);
    memcpy(source, pr->source, sizeof(source));
    pthread_mutex_unlock(&pr->lock);
    *lost = false;
    if (!source[0]) {
        return scsi_pr_io_read_keys_and_reservation(io, k, r, errp);
    }
    ScsiPrFullStatus *fs = calloc(FULL_STATUS_MAX, sizeof(*fs));
    size_t n = 0;
    bool supported = false;
    if (!fs) {
        error_setg(errp, "%s: out of memory", io->who);
        return false;
    }
    bool ok = scsi_pr_io_read_with_full_status(io, k, r, fs, FULL_STATUS_MAX,
                                               &n, &supported, errp);
    *lost = ok && supported && source_lost_key(fs, n, key, source);
    free(fs);
    return ok;
}

/* Round trip 1: READ KEYS and READ RESERVATION together (and READ FULL
 * STATUS, see read_lun). *fenced: the key is registered by no nexus any
 * more, or (READ FULL STATUS) not by the source's. Only a PREEMPT (or
 * PREEMPT AND ABORT, or CLEAR) from another nexus removes a registration
 * the guest did not remove itself (SPC-4 5.13.11.2.4, 5.13.11.5): the
 * guest was fenced before the handoff, and that is its truth, not an
 * error. */
static bool verify(ScsiPr *pr, const ScsiPrIo *io, const ScsiPrState *st,
                   bool *fenced, Error **errp)
{
    ScsiPrKeys k;
    ScsiPrReservation r;
    char lun[512];
    bool lost;
    if (!read_lun(pr, io, st->key, &k, &r, &lost, errp)) {
        return false;
    }
    *fenced = lost || !scsi_pr_keys_contain(&k, st->key);
    if (*fenced) {
        return true;
    }
    const char *why = contradiction(st, &k, &r);
    if (why) {
        describe_lun(&k, &r, lun, sizeof(lun));
        error_setg(errp, "expected key 0x%" PRIx64 " with %s, but %s (%s); "
                   "another initiator changed the reservation, refusing "
                   "to take it over", st->key,
                   st->type ? scsi_pr_type_name(st->type) : "no reservation",
                   why, lun);
        return false;
    }
    return true;
}

/* The outcome check, after the device is ready (see run_check). After
 * the PREEMPT only this nexus carries the key (SPC-4 5.13.11.4: every
 * other registration with it was removed). */
static bool check_outcome(const ScsiPrIo *io, const ScsiPrState *st,
                          Error **errp)
{
    ScsiPrKeys k;
    ScsiPrReservation r;
    char lun[512];
    if (!scsi_pr_io_read_keys_and_reservation(io, &k, &r, errp)) {
        return false;
    }
    const char *why = contradiction(st, &k, &r);
    unsigned n = scsi_pr_keys_count(&k, st->key);
    /* An ALL REGISTRANTS reservation was joined, not preempted: the
     * previous holder removes its own registration once this side runs
     * (scsi_pr_handed_over), so it may still be there. */
    unsigned most = scsi_pr_type_all_registrants(st->type) ? 2 : 1;
    if (why || n > most) {
        describe_lun(&k, &r, lun, sizeof(lun));
        error_setg(errp, "after %s: %s (%s)",
                   most == 2 ? "REGISTER" : "PREEMPT",
                   why ? why : "the previous holder is still registered",
                   lun);
        return false;
    }
    return true;
}

static void out_cmd(ScsiPrCmd *c, uint8_t sa, uint8_t type, uint64_t res_key,
                    uint64_t sa_key, uint8_t param[SCSI_PR_OUT_PARAM_LEN])
{
    *c = (ScsiPrCmd){ .cdb_len = SCSI_PR_OUT_CDB_LEN,
                      .dir = SCSI_DIR_TO_DEV, .buf = param,
                      .len = SCSI_PR_OUT_PARAM_LEN };
    scsi_pr_out_encode(sa, type, res_key, sa_key, c->cdb, param);
}

static void out_failed(const ScsiPrIo *io, const ScsiPrCmd *c,
                       const char *what, Error **errp)
{
    char desc[160];
    scsi_pr_result_describe(&c->res, desc, sizeof(desc));
    error_setg(errp, "%s: PERSISTENT RESERVE OUT %s failed: %s", io->who,
               what, desc);
}

/* Round trip 2: REGISTER AND IGNORE EXISTING KEY and PREEMPT together.
 * The LUN may run the two in either order (SAM-5 task attribute SIMPLE),
 * though iSCSI hands them to the SCSI layer in CmdSN order (RFC 7143
 * 3.2.2.1), so on tgt the REGISTER comes first. Run first, the PREEMPT
 * comes from a nexus that is not registered yet (unless this one still
 * is, as in a rollback before the destination preempted): SPC-4 5.13.1,
 * in its table of commands allowed in the presence of reservations, lets
 * an unregistered I_T nexus send only REGISTER and REGISTER AND IGNORE
 * EXISTING KEY; any other PERSISTENT RESERVE OUT gets RESERVATION
 * CONFLICT and changes nothing. So a conflicting PREEMPT after a good
 * REGISTER is sent again, alone, once: one more round trip. */
static bool register_and_preempt(const ScsiPrIo *io, const ScsiPrState *st,
                                 Error **errp)
{
    uint8_t reg_param[SCSI_PR_OUT_PARAM_LEN], pre_param[SCSI_PR_OUT_PARAM_LEN];
    ScsiPrCmd c[2];

    /* REGISTER AND IGNORE EXISTING KEY: also right when this nexus is
     * still registered (a rollback before the destination preempted). */
    out_cmd(&c[0], SCSI_PROUT_REGISTER_AND_IGNORE, 0, 0, st->key, reg_param);
    out_cmd(&c[1], SCSI_PROUT_PREEMPT, st->type, st->key, st->key,
            pre_param);
    if (!scsi_pr_io_batch(io, c, 2, errp)) {
        error_prepend(errp, "%s: REGISTER AND IGNORE EXISTING KEY and "
                      "PREEMPT: ", io->who);
        return false;
    }
    if (c[0].res.status != SAM_STAT_GOOD) {
        out_failed(io, &c[0], "REGISTER AND IGNORE EXISTING KEY", errp);
        return false;
    }
    if (c[1].res.status == SAM_STAT_RESERVATION_CONFLICT) {
        log_debug("%s: PREEMPT ran before the REGISTER, sending it again",
                  io->who);
        return scsi_pr_io_out(io, SCSI_PROUT_PREEMPT, st->type, st->key,
                              st->key, NULL, errp);
    }
    if (c[1].res.status != SAM_STAT_GOOD) {
        out_failed(io, &c[1], "PREEMPT", errp);
        return false;
    }
    return true;
}

/* Round trip 2 for the ALL REGISTRANTS types: REGISTER AND IGNORE
 * EXISTING KEY alone. Every registrant holds such a reservation (SPC-4
 * 5.13.10), so registering takes it; no PREEMPT is needed, and none is
 * sent: a PREEMPT naming the key of the registration that created the
 * reservation leaves tgt pointing at the freed registration. The
 * previous holder's registration goes from its own nexus. */
static bool join_all_registrants(const ScsiPrIo *io, const ScsiPrState *st,
                                 Error **errp)
{
    if (!scsi_pr_io_out(io, SCSI_PROUT_REGISTER_AND_IGNORE, 0, 0, st->key,
                        NULL, errp)) {
        error_prepend(errp, "%s: ", io->who);
        return false;
    }
    return true;
}

/* Seed 000: REGISTER the key on this nexus, then PREEMPT the registration
 * that held it, with the same key and type: the reservation moves
 * atomically, and the old nexus is unregistered. Two round trips, the
 * second waiting for the first (docs/migrate-pr.md); *round_trips gets
 * the batches sent, UNIT ATTENTION retries and a PREEMPT sent again
 * included. The outcome check is not part of it (run_check). */
static bool take_over(ScsiPr *pr, const ScsiPrState *st, const char *when,
                      unsigned *round_trips, bool *fenced, Error **errp)
{
    ScsiPrIo io = pr->io;
    *round_trips = 0;
    io.round_trips = round_trips;
    /* The REGISTER waits for the verification: registering the key
     * first would give this nexus a registration even when another host
     * has preempted the guest meanwhile, i.e. un-fence a guest that the
     * cluster fenced (SPC-4 5.13.11: a preempted nexus stays out until
     * it registers again). A fenced guest gets nothing registered. */
    bool all_registrants = scsi_pr_type_all_registrants(st->type);
    if (!verify(pr, &io, st, fenced, errp) ||
        (!*fenced && !(all_registrants ? join_all_registrants(&io, st, errp)
                                       : register_and_preempt(&io, st,
                                                              errp)))) {
        error_prepend(errp, "%s: ", when);
        return false;
    }
    pthread_mutex_lock(&pr->lock);
    pr->ar_joined = !*fenced && all_registrants;
    pthread_mutex_unlock(&pr->lock);
    return true;
}

void scsi_pr_accept_fence(ScsiPr *pr, uint64_t key, const char *when)
{
    pthread_mutex_lock(&pr->lock);
    pr->st = (ScsiPrState){ 0 };
    pr->fenced_key = key;
    pr->fence_ua = true;
    pthread_mutex_unlock(&pr->lock);
    log_warn("scsi-block %s: %s: another initiator preempted key 0x%" PRIx64
             "; the guest stays fenced: nothing is registered for it, and "
             "its next command gets REGISTRATIONS PREEMPTED", pr->dev_id,
             when, key);
    scsi_pr_journal_update(pr, true);
}

/* Reads the outcome of takeover number seq back and records it as
 * pr-check. A failure is an error for the operator, not for the guest:
 * the LUN enforces the reservation on every command (SPC-4 5.13.1), so
 * a late finding cannot let wrong I/O through. */
static void run_check(ScsiPr *pr, const ScsiPrState *st, unsigned seq)
{
    Error *err = NULL;
    char result[sizeof(pr->check)];
    /* The journal (two fsyncs) is for a restart, not for the guest: it is
     * written here, off the switchover's critical path, and before any
     * guest PR OUT changes the state again (those wait for this check). */
    scsi_pr_journal_update(pr, true);
    pthread_mutex_lock(&pr->lock);
    bool closing = pr->closing;
    pthread_mutex_unlock(&pr->lock);
    if (closing) {
        snprintf(result, sizeof(result), "not run: the device was shut "
                 "down");
    } else if (check_outcome(&pr->io, st, &err)) {
        snprintf(result, sizeof(result), "ok");
    } else {
        snprintf(result, sizeof(result), "%s", error_get_pretty(err));
        log_error("scsi-block %s: reservation check after the takeover "
                  "failed: %s", pr->dev_id, result);
        error_free(err);
    }
    scsi_pr_check_done(pr, seq, result);
}

typedef struct PrCheck {
    ScsiPr *pr;
    ScsiPrState st;
    unsigned seq;
    EventLoop *loop;                /* where it was posted */
} PrCheck;

static void check_posted(void *opaque)
{
    PrCheck *c = opaque;
    ScsiPr *pr = c->pr;
    EventLoop *now = pr->lun->loop;
    /* The session is served by the LUN's loop, which moves to the
     * controller's I/O thread when the VM starts (scsi.h). A move runs
     * while both threads wait for it, so the loop read here is the one
     * this thread may use, until this callback returns. */
    if (now && now != c->loop) {
        c->loop = now;
        if (loop_post(now, check_posted, c)) {
            return;
        }
        scsi_pr_check_done(pr, c->seq, "not run: cannot post it to the "
                           "LUN's loop");
    } else {
        run_check(pr, &c->st, c->seq);
    }
    free(c);
    pthread_mutex_lock(&pr->lock);
    pr->posts--;
    pthread_mutex_unlock(&pr->lock);
}

/* Runs the check on the LUN's loop, after the device is ready: it is off
 * the switchover's critical path. Guest PERSISTENT RESERVE OUT commands
 * wait for it (scsi_pr_gate), so what it reads is the takeover's work.
 * Without a loop it runs at once. */
static void post_check(ScsiPr *pr, const ScsiPrState *st, unsigned seq)
{
    PrCheck *c = calloc(1, sizeof(*c));
    EventLoop *loop = pr->lun ? pr->lun->loop : NULL;
    if (!c || !loop) {
        free(c);
        run_check(pr, st, seq);
        return;
    }
    *c = (PrCheck){ .pr = pr, .st = *st, .seq = seq, .loop = loop };
    pthread_mutex_lock(&pr->lock);
    pr->posts++;
    pthread_mutex_unlock(&pr->lock);
    if (!loop_post(loop, check_posted, c)) {
        pthread_mutex_lock(&pr->lock);
        pr->posts--;
        pthread_mutex_unlock(&pr->lock);
        free(c);
        scsi_pr_check_done(pr, seq, "not run: cannot post it to the "
                           "LUN's loop");
    }
}

static void record_takeover(ScsiPr *pr, const ScsiPrState *st,
                            uint64_t took, unsigned trips)
{
    pthread_mutex_lock(&pr->lock);
    pr->takeover_ns = took ? took : 1;
    pr->takeover_round_trips = trips;
    pthread_mutex_unlock(&pr->lock);
    log_info("scsi-block %s: took over key 0x%" PRIx64 " with %s in "
             "%.3f ms, %u round trips", pr->dev_id, st->key, st->type ?
             scsi_pr_type_name(st->type) : "no reservation",
             (double)took / 1e6, trips);
}

bool scsi_pr_activate(ScsiPr *pr, Error **errp)
{
    if (!scsi_pr_read_back(pr, errp)) {
        scsi_pr_open_gate(pr, true);
        return false;
    }
    pthread_mutex_lock(&pr->lock);
    pr->saved = false;
    pr->ar_joined = false;
    pthread_mutex_unlock(&pr->lock);
    ScsiPrState st = scsi_pr_state(pr);
    uint64_t started = clock_ns();
    unsigned trips = 0, seq = 0;
    bool fenced = false;
    bool taken = st.key == 0 ||
                 take_over(pr, &st, "reservation handoff", &trips, &fenced,
                           errp);
    /* The source's name is for this activation only: a later rollback
     * takes the reservation back from another nexus. */
    pthread_mutex_lock(&pr->lock);
    pr->source[0] = '\0';
    pthread_mutex_unlock(&pr->lock);
    if (!taken) {
        error_prepend(errp, "scsi-block %s: ", pr->dev_id);
        log_error("%s", error_get_pretty(*errp));
        scsi_pr_open_gate(pr, true);
        return false;
    }
    if (fenced) {
        /* Not a failed switchover: the VM runs here, as fenced as it was
         * on the source; the LUN refuses what the reservation forbids. */
        scsi_pr_accept_fence(pr, st.key, "reservation handoff");
        st.key = 0;
    }
    if (st.key != 0) {
        record_takeover(pr, &st, clock_ns() - started, trips);
        /* Before the gate opens, so guest PR OUT waits for it. */
        seq = scsi_pr_check_begin(pr);
    } else {
        scsi_pr_journal_update(pr, true);
    }
    scsi_pr_open_gate(pr, false);
    if (st.key != 0) {
        post_check(pr, &st, seq);
    }
    return true;
}

bool scsi_pr_probe_before_save(ScsiPr *pr, Error **errp)
{
    /* A PREEMPT whose outcome was not read yet: the VM is stopped, read
     * it now rather than hand over a guess. */
    if (!scsi_pr_read_back(pr, errp)) {
        return false;
    }
    ScsiPrState st = scsi_pr_state(pr);
    uint8_t status = SAM_STAT_GOOD;
    Error *err = NULL;
    pthread_mutex_lock(&pr->lock);
    pr->saved = true;
    pthread_mutex_unlock(&pr->lock);
    if (st.key == 0) {
        return true;
    }
    /* SPC-4 5.13.7 (REGISTER from a registered nexus, RESERVATION KEY
     * equal to its key): the key is replaced by the same key, nothing
     * else changes. From a nexus a PREEMPT unregistered, a nonzero
     * RESERVATION KEY gets RESERVATION CONFLICT. Unlike READ KEYS this
     * tells this nexus apart from one that registered the same key
     * (fencing agents reuse keys; SPC-4 5.13.11.2.4 leaves the
     * preempting nexus registered). */
    if (scsi_pr_io_out(&pr->io, SCSI_PROUT_REGISTER, 0, st.key, st.key,
                       &status, &err)) {
        return true;
    }
    if (status != SAM_STAT_RESERVATION_CONFLICT) {
        error_prepend(&err, "scsi-block %s: checking this nexus' "
                      "registration before the handoff: ", pr->dev_id);
        error_propagate(errp, err);
        return false;
    }
    error_free(err);
    scsi_pr_accept_fence(pr, st.key, "before the handoff");
    return true;
}

/* Removes this nexus' registration with key from its own nexus: REGISTER
 * with SERVICE ACTION RESERVATION KEY zero (SPC-4 5.13.11.3). An ALL
 * REGISTRANTS reservation stays with the other registrants (5.13.10).
 * Logs the outcome; why says when. */
static void unregister_own(ScsiPr *pr, uint64_t key, const char *why)
{
    Error *err = NULL;
    if (!scsi_pr_io_out(&pr->io, SCSI_PROUT_REGISTER, 0, key, 0, NULL,
                        &err)) {
        log_warn("scsi-block %s: %s: removing this nexus' registration of "
                 "key 0x%" PRIx64 " failed, it stays on the LUN: %s",
                 pr->dev_id, why, key, error_get_pretty(err));
        error_free(err);
        return;
    }
    log_info("scsi-block %s: %s: removed this nexus' registration of key "
             "0x%" PRIx64, pr->dev_id, why, key);
}

/* A failed migration after this nexus joined an ALL REGISTRANTS
 * reservation: the source still has its registration and takes the
 * guest back, so ours goes, unless it is the only one left (removing
 * the last registration would release the reservation, SPC-4 5.13.10). */
static void undo_join(ScsiPr *pr, const ScsiPrState *st)
{
    ScsiPrKeys k;
    Error *err = NULL;
    if (!scsi_pr_io_read_keys(&pr->io, &k, &err)) {
        log_warn("scsi-block %s: giving the reservation back: %s",
                 pr->dev_id, error_get_pretty(err));
        error_free(err);
        return;
    }
    if (scsi_pr_keys_count(&k, st->key) < 2) {
        log_warn("scsi-block %s: giving the reservation back: key 0x%"
                 PRIx64 " has no other registration; this one stays",
                 pr->dev_id, st->key);
        return;
    }
    unregister_own(pr, st->key, "giving the reservation back");
}

void scsi_pr_inactivate(ScsiPr *pr)
{
    /* The destination takes it from here; our registration stays until
     * its PREEMPT (or, ALL REGISTRANTS, until scsi_pr_handed_over), so a
     * rollback finds it. Guest I/O waits meanwhile. */
    pthread_mutex_lock(&pr->lock);
    if (pr->gate == PR_OPEN) {
        pr->gate = PR_HOLD;
    }
    bool undo = pr->ar_joined && !pr->saved;
    pr->ar_joined = false;
    ScsiPrState st = pr->st;
    pthread_mutex_unlock(&pr->lock);
    if (undo && st.key) {
        undo_join(pr, &st);
    }
    scsi_pr_journal_update(pr, false);
}

void scsi_pr_handed_over(ScsiPr *pr)
{
    ScsiPrState st = scsi_pr_state(pr);
    pthread_mutex_lock(&pr->lock);
    bool saved = pr->saved;
    pthread_mutex_unlock(&pr->lock);
    /* The destination registered the key and holds the reservation with
     * it; our registration is the one left to go. The tracked state
     * stays: a late rollback takes it back from there. */
    if (saved && st.key && scsi_pr_type_all_registrants(st.type)) {
        unregister_own(pr, st.key, "after the handoff");
    }
}

/* ---- Start-up ------------------------------------------------------------ */

static void note(ScsiPr *pr, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(ScsiPr *pr, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&pr->lock);
    va_start(ap, fmt);
    vsnprintf(pr->startup_note, sizeof(pr->startup_note), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&pr->lock);
    log_warn("scsi-block %s: %s", pr->dev_id, pr->startup_note);
}

/* A TransportID of this initiator: the name, alone or with ",i,0x" and
 * an ISID (SPC-4 7.6.4.6). */
static bool is_mine(const ScsiPr *pr, const ScsiPrFullStatus *e)
{
    return names_initiator(e, pr->initiator);
}

/* READ FULL STATUS names the registrant: adopt what this initiator held,
 * if the journal agrees it was this LUN's guest. */
static void adopt_full_status(ScsiPr *pr, const ScsiPrFullStatus *e,
                              size_t n, const ScsiPrJournal *j, bool found)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_mine(pr, &e[i])) {
            continue;
        }
        ScsiPrState st = { .key = e[i].key,
                           .type = e[i].holder ? e[i].type : 0 };
        Error *err = NULL;
        unsigned trips;
        bool fenced = false;
        if (!found || !j->active || j->st.key != st.key) {
            note(pr, "the LUN shows key 0x%" PRIx64 " registered by this "
                 "initiator, but the journal does not say this guest holds "
                 "it: not adopted", st.key);
            return;
        }
        if (!take_over(pr, &st, "adopting the reservation", &trips, &fenced,
                       &err)) {
            note(pr, "%s", error_get_pretty(err));
            error_free(err);
            return;
        }
        if (fenced) {
            note(pr, "key 0x%" PRIx64 " was preempted by another initiator "
                 "while starting: not adopted", st.key);
            return;
        }
        pthread_mutex_lock(&pr->lock);
        pr->st = st;
        pthread_mutex_unlock(&pr->lock);
        /* Start-up is off the downtime path: check at once. */
        run_check(pr, &st, scsi_pr_check_begin(pr));
        log_info("scsi-block %s: adopted key 0x%" PRIx64 " with %s",
                 pr->dev_id, st.key, scsi_pr_type_name(st.type));
        return;
    }
    if (found && j->active && j->st.key) {
        note(pr, "the journal says the guest held key 0x%" PRIx64 " (%s); "
             "the LUN has no registration of %s: the guest must register "
             "and reserve again", j->st.key, scsi_pr_type_name(j->st.type),
             pr->initiator);
    }
}

/* Without READ FULL STATUS keys cannot be tied to initiators (seed 000):
 * compare and say what the guest must re-acquire. */
static void check_journal(ScsiPr *pr, const ScsiPrJournal *j)
{
    ScsiPrKeys k;
    ScsiPrReservation r;
    Error *err = NULL;
    char lun[512];
    if (!scsi_pr_io_read_keys_and_reservation(&pr->io, &k, &r, &err)) {
        note(pr, "cannot check the journal: %s", error_get_pretty(err));
        error_free(err);
        return;
    }
    describe_lun(&k, &r, lun, sizeof(lun));
    note(pr, "before the restart the guest held key 0x%" PRIx64 " (%s); "
         "the LUN shows %s; READ FULL STATUS is not supported, so this new "
         "I_T nexus holds nothing: the guest must register%s again", j->st.key,
         scsi_pr_type_name(j->st.type), lun,
         j->st.type ? " and reserve" : "");
}

void scsi_pr_startup(ScsiPr *pr)
{
    ScsiPrJournal j;
    ScsiPrFullStatus *e = calloc(FULL_STATUS_MAX, sizeof(*e));
    bool found = false, supported = false;
    size_t n = 0;
    Error *err = NULL;

    if (!e) {
        return;
    }
    if (!scsi_pr_journal_read(pr->journal_dir, pr->dev_id, &j, &found,
                              &err)) {
        note(pr, "%s", error_get_pretty(err));
        error_free_or_null(&err);
    }
    pthread_mutex_lock(&pr->journal_lock);
    pr->journal_exists = found;
    pthread_mutex_unlock(&pr->journal_lock);
    /* An incoming migration gets its state from the source. */
    if (!blk_ownership_is_owned()) {
        free(e);
        return;
    }
    if (!scsi_pr_io_full_status(&pr->io, e, FULL_STATUS_MAX, &n, &supported,
                                &err)) {
        note(pr, "%s", error_get_pretty(err));
        error_free(err);
    } else if (supported) {
        adopt_full_status(pr, e, n, &j, found);
    } else if (found && j.active && j.st.key) {
        check_journal(pr, &j);
    }
    free(e);
}
