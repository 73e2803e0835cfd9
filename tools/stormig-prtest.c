/*
 * stormig-prtest: persistent reservation scenarios against a real LUN,
 * with two or three iSCSI initiator names (one I_T nexus each).
 *
 *   stormig-prtest run URL [INIT_A INIT_B [INIT_C]]
 *       every scenario for the six reservation types; prints a table and
 *       exits non-zero when any scenario fails
 *   stormig-prtest show URL [INITIATOR]     keys and reservation, as a
 *       third host sees them (and the holder, with READ FULL STATUS)
 *   stormig-prtest caps URL [INITIATOR]     REPORT CAPABILITIES
 *   stormig-prtest out URL INITIATOR SA TYPE RESKEY SAKEY
 *       one PERSISTENT RESERVE OUT (SA: register, register-ignore,
 *       reserve, release, clear, preempt, preempt-abort; TYPE: we, ea,
 *       we-ro, ea-ro, we-ar, ea-ar or none)
 *   stormig-prtest rw URL INITIATOR read|write LBA   prints the status
 *   stormig-prtest fence URL INITIATOR TYPE KEY VICTIM
 *       what a cluster's fencing agent does, on one I_T nexus: REGISTER
 *       AND IGNORE EXISTING KEY with KEY, then PREEMPT VICTIM's key with
 *       TYPE (KEY may equal VICTIM); prints the PREEMPT's status
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scsi/scsi-pr-nexus.h"
#include "util/keyval.h"

#define DEFAULT_A "iqn.2024-01.org.stormig:prtest-a"
#define DEFAULT_B "iqn.2024-01.org.stormig:prtest-b"
#define DEFAULT_C "iqn.2024-01.org.stormig:prtest-c"
#define KEY_A 0xa1a1a1a1a1a10001ull
#define KEY_B 0xb2b2b2b2b2b20002ull
#define TEST_LBA 8

typedef struct Hosts {
    ScsiPrNexus *a, *b, *c;         /* c may be b's second role */
    const char *url;
    int failures, passes;
} Hosts;

typedef struct Step {
    Hosts *h;
    uint8_t type;
    const char *scenario;
    char detail[256];
    bool ok;
} Step;

static const ScsiPrIo *io(ScsiPrNexus *n)
{
    return scsi_pr_nexus_io(n);
}

static void step_begin(Step *s, Hosts *h, uint8_t type, const char *name)
{
    s->h = h;
    s->type = type;
    s->scenario = name;
    s->detail[0] = '\0';
    s->ok = true;
}

/* Records the first failure of a step; later ones are implied by it. */
static bool step_fail(Step *s, Error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool step_fail(Step *s, Error *err, const char *fmt, ...)
{
    if (s->ok) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(s->detail, sizeof(s->detail), fmt, ap);
        va_end(ap);
        if (err && n >= 0 && (size_t)n < sizeof(s->detail)) {
            snprintf(s->detail + n, sizeof(s->detail) - (size_t)n, ": %s",
                     error_get_pretty(err));
        }
    }
    error_free(err);
    s->ok = false;
    return false;
}

static void step_end(Step *s)
{
    printf("%-6s %-22s %-5s %s\n", scsi_pr_type_short(s->type), s->scenario,
           s->ok ? "PASS" : "FAIL", s->detail);
    fflush(stdout);
    if (s->ok) {
        s->h->passes++;
    } else {
        s->h->failures++;
    }
}

static bool out(Step *s, ScsiPrNexus *n, uint8_t sa, uint8_t type,
                uint64_t res_key, uint64_t sa_key, uint8_t want)
{
    Error *err = NULL;
    uint8_t status = 0xff;
    bool good = scsi_pr_io_out(io(n), sa, type, res_key, sa_key, &status,
                               &err);
    if (status == want) {
        error_free(err);
        return true;
    }
    return step_fail(s, good ? NULL : err, "%s from %s: want %s",
                     scsi_pr_out_sa_name(sa), scsi_pr_nexus_initiator(n),
                     scsi_pr_status_name(want));
}

/* Keys and reservation as the observer sees them. */
static bool observe(Step *s, ScsiPrNexus *obs, ScsiPrKeys *k,
                    ScsiPrReservation *r)
{
    Error *err = NULL;
    if (!scsi_pr_io_read_keys(io(obs), k, &err) ||
        !scsi_pr_io_read_reservation(io(obs), r, &err)) {
        return step_fail(s, err, "observer");
    }
    return true;
}

/* The reservation of type with holder key (0 for ALL REGISTRANTS). */
static bool expect_reservation(Step *s, const ScsiPrReservation *r,
                               uint8_t type, uint64_t key)
{
    uint64_t want_key = scsi_pr_type_all_registrants(type) ? 0 : key;
    if (!r->held || r->type != type || r->key != want_key) {
        return step_fail(s, NULL, "reservation held=%d type %s key %" PRIx64
                         ", want %s key %" PRIx64, r->held,
                         scsi_pr_type_short(r->type), r->key,
                         scsi_pr_type_short(type), want_key);
    }
    return true;
}

static bool expect_io(Step *s, ScsiPrNexus *n, bool registered, bool write,
                      bool holder)
{
    Error *err = NULL;
    uint8_t status;
    if (!scsi_pr_nexus_rw(n, write, TEST_LBA, &status, &err)) {
        return step_fail(s, err, "%s", write ? "WRITE" : "READ");
    }
    bool conflict = !holder && scsi_pr_conflicts(s->type, registered, write);
    uint8_t want = conflict ? SAM_STAT_RESERVATION_CONFLICT : SAM_STAT_GOOD;
    if (status != want) {
        return step_fail(s, NULL, "%s from %s (%sregistered): %s, want %s",
                         write ? "WRITE" : "READ", scsi_pr_nexus_initiator(n),
                         registered ? "" : "un", scsi_pr_status_name(status),
                         scsi_pr_status_name(want));
    }
    return true;
}

/* Leaves the LUN without registrations: register A and CLEAR. */
static bool reset_lun(Step *s)
{
    return out(s, s->h->a, SCSI_PROUT_REGISTER_AND_IGNORE, 0, 0, KEY_A,
               SAM_STAT_GOOD) &&
           out(s, s->h->a, SCSI_PROUT_CLEAR, 0, KEY_A, 0, SAM_STAT_GOOD);
}

static bool keys_are(Step *s, const ScsiPrKeys *k, unsigned n_a,
                     unsigned n_b)
{
    unsigned a = scsi_pr_keys_count(k, KEY_A), b = scsi_pr_keys_count(k, KEY_B);
    if (a != n_a || b != n_b || k->total != n_a + n_b) {
        return step_fail(s, NULL, "keys: %u of A, %u of B, %u in all; want "
                         "%u, %u", a, b, k->total, n_a, n_b);
    }
    return true;
}

static void scenario_basic(Hosts *h, uint8_t type)
{
    Step s;
    ScsiPrKeys k;
    ScsiPrReservation r;

    step_begin(&s, h, type, "register");
    (void)(reset_lun(&s) &&
           out(&s, h->a, SCSI_PROUT_REGISTER, 0, 0, KEY_A, SAM_STAT_GOOD) &&
           out(&s, h->b, SCSI_PROUT_REGISTER, 0, 0, KEY_B, SAM_STAT_GOOD) &&
           observe(&s, h->c, &k, &r) && keys_are(&s, &k, 1, 1));
    step_end(&s);

    step_begin(&s, h, type, "reserve");
    (void)(out(&s, h->a, SCSI_PROUT_RESERVE, type, KEY_A, 0, SAM_STAT_GOOD) &&
           observe(&s, h->c, &k, &r) &&
           expect_reservation(&s, &r, type, KEY_A));
    step_end(&s);

    step_begin(&s, h, type, "conflicts");
    (void)(expect_io(&s, h->a, true, false, true) &&
           expect_io(&s, h->a, true, true, true) &&
           expect_io(&s, h->b, true, false, false) &&
           expect_io(&s, h->b, true, true, false) &&
           expect_io(&s, h->c, false, false, false) &&
           expect_io(&s, h->c, false, true, false) &&
           /* SPC-4 5.13.1: an unregistered nexus may not reserve. */
           out(&s, h->c, SCSI_PROUT_RESERVE, type, KEY_B, 0,
               SAM_STAT_RESERVATION_CONFLICT));
    step_end(&s);

    step_begin(&s, h, type, "preempt");
    (void)(out(&s, h->b, SCSI_PROUT_PREEMPT, type, KEY_B, KEY_A,
               SAM_STAT_GOOD) &&
           observe(&s, h->c, &k, &r) && keys_are(&s, &k, 0, 1) &&
           expect_reservation(&s, &r, type, KEY_B));
    step_end(&s);

    step_begin(&s, h, type, "release");
    (void)(out(&s, h->b, SCSI_PROUT_RELEASE, type, KEY_B, 0, SAM_STAT_GOOD) &&
           observe(&s, h->c, &k, &r) && keys_are(&s, &k, 0, 1));
    if (s.ok && r.held) {
        step_fail(&s, NULL, "a reservation is left after RELEASE");
    }
    step_end(&s);

    step_begin(&s, h, type, "clear");
    (void)(out(&s, h->a, SCSI_PROUT_REGISTER, 0, 0, KEY_A, SAM_STAT_GOOD) &&
           out(&s, h->b, SCSI_PROUT_RESERVE, type, KEY_B, 0, SAM_STAT_GOOD) &&
           out(&s, h->a, SCSI_PROUT_CLEAR, 0, KEY_A, 0, SAM_STAT_GOOD) &&
           observe(&s, h->c, &k, &r) && keys_are(&s, &k, 0, 0));
    if (s.ok && r.held) {
        step_fail(&s, NULL, "a reservation is left after CLEAR");
    }
    step_end(&s);
}

/* Who holds the reservation by READ FULL STATUS, when the LUN has it. */
static bool expect_holder(Step *s, ScsiPrNexus *obs, const char *initiator)
{
    ScsiPrFullStatus e[8];
    size_t n;
    bool supported;
    Error *err = NULL;
    if (!scsi_pr_io_full_status(io(obs), e, 8, &n, &supported, &err)) {
        return step_fail(s, err, "READ FULL STATUS");
    }
    for (size_t i = 0; supported && i < n; i++) {
        if (e[i].key == KEY_A &&
            strncmp(e[i].name, initiator, strlen(initiator)) != 0) {
            return step_fail(s, NULL, "key A still registered by %s",
                             e[i].name);
        }
    }
    return true;
}

/* The migration handoff: the destination (C) registers the source's (A)
 * key on its own nexus and preempts A with the same key and type. */
static void scenario_handoff(Hosts *h, uint8_t type)
{
    Step s;
    ScsiPrKeys k;
    ScsiPrReservation r;

    step_begin(&s, h, type, "handoff");
    (void)(reset_lun(&s) &&
           out(&s, h->a, SCSI_PROUT_REGISTER, 0, 0, KEY_A, SAM_STAT_GOOD) &&
           out(&s, h->a, SCSI_PROUT_RESERVE, type, KEY_A, 0, SAM_STAT_GOOD) &&
           out(&s, h->c, SCSI_PROUT_REGISTER_AND_IGNORE, 0, 0, KEY_A,
               SAM_STAT_GOOD) &&
           out(&s, h->c, SCSI_PROUT_PREEMPT, type, KEY_A, KEY_A,
               SAM_STAT_GOOD) &&
           observe(&s, h->b, &k, &r) && keys_are(&s, &k, 1, 0) &&
           expect_reservation(&s, &r, type, KEY_A) &&
           expect_holder(&s, h->b, scsi_pr_nexus_initiator(h->c)) &&
           expect_io(&s, h->c, true, true, true) &&
           expect_io(&s, h->a, false, false, false) &&
           expect_io(&s, h->a, false, true, false) &&
           out(&s, h->c, SCSI_PROUT_CLEAR, 0, KEY_A, 0, SAM_STAT_GOOD));
    step_end(&s);
}

/* A registration without a reservation moves the same way: PREEMPT with
 * a key that holds no reservation only removes registrations (SPC-4
 * 5.13.11.4.3), whatever the TYPE field says. */
static void scenario_handoff_registered(Hosts *h)
{
    Step s;
    ScsiPrKeys k;
    ScsiPrReservation r;

    step_begin(&s, h, SCSI_PR_TYPE_NONE, "handoff-registered");
    (void)(reset_lun(&s) &&
           out(&s, h->a, SCSI_PROUT_REGISTER, 0, 0, KEY_A, SAM_STAT_GOOD) &&
           out(&s, h->c, SCSI_PROUT_REGISTER_AND_IGNORE, 0, 0, KEY_A,
               SAM_STAT_GOOD) &&
           out(&s, h->c, SCSI_PROUT_PREEMPT, SCSI_PR_TYPE_NONE, KEY_A, KEY_A,
               SAM_STAT_GOOD) &&
           observe(&s, h->b, &k, &r) && keys_are(&s, &k, 1, 0) &&
           out(&s, h->a, SCSI_PROUT_RESERVE, SCSI_PR_TYPE_WRITE_EXCLUSIVE,
               KEY_A, 0, SAM_STAT_RESERVATION_CONFLICT) &&
           out(&s, h->c, SCSI_PROUT_CLEAR, 0, KEY_A, 0, SAM_STAT_GOOD));
    if (s.ok && r.held) {
        step_fail(&s, NULL, "a reservation appeared");
    }
    step_end(&s);
}

static ScsiPrNexus *open_or_die(const char *url, const char *initiator)
{
    Error *err = NULL;
    ScsiPrNexus *n = scsi_pr_nexus_open(url, initiator, &err);
    if (!n) {
        fprintf(stderr, "stormig-prtest: %s\n", error_get_pretty(err));
        error_free(err);
        exit(2);
    }
    return n;
}

static int cmd_run(const char *url, int argc, char **argv)
{
    Hosts h = { .url = url };
    h.a = open_or_die(url, argc > 0 ? argv[0] : DEFAULT_A);
    h.b = open_or_die(url, argc > 1 ? argv[1] : DEFAULT_B);
    h.c = open_or_die(url, argc > 2 ? argv[2] : DEFAULT_C);
    printf("%-6s %-22s %-5s %s\n", "TYPE", "SCENARIO", "RESULT", "DETAIL");
    for (size_t i = 0; i < 6; i++) {
        scenario_basic(&h, scsi_pr_all_types[i]);
        scenario_handoff(&h, scsi_pr_all_types[i]);
    }
    scenario_handoff_registered(&h);
    printf("%d passed, %d failed\n", h.passes, h.failures);
    scsi_pr_nexus_close(h.a);
    scsi_pr_nexus_close(h.b);
    scsi_pr_nexus_close(h.c);
    return h.failures ? 1 : 0;
}

static int cmd_show(const char *url, const char *initiator)
{
    ScsiPrNexus *n = open_or_die(url, initiator);
    ScsiPrKeys k;
    ScsiPrReservation r;
    ScsiPrFullStatus e[SCSI_PR_MAX_KEYS];
    size_t ne = 0;
    bool full = false;
    Error *err = NULL;
    int rc = 0;
    if (!scsi_pr_io_read_keys(io(n), &k, &err) ||
        !scsi_pr_io_read_reservation(io(n), &r, &err) ||
        !scsi_pr_io_full_status(io(n), e, SCSI_PR_MAX_KEYS, &ne, &full,
                                &err)) {
        fprintf(stderr, "stormig-prtest: %s\n", error_get_pretty(err));
        error_free(err);
        rc = 1;
    } else {
        printf("generation %u\nkeys", k.generation);
        for (uint32_t i = 0; i < k.n; i++) {
            printf(" 0x%" PRIx64, k.keys[i]);
        }
        printf("%s\n", k.n ? "" : " none");
        if (r.held) {
            printf("reservation key 0x%" PRIx64 " type %s\n", r.key,
                   scsi_pr_type_short(r.type));
        } else {
            printf("reservation none\n");
        }
        for (size_t i = 0; full && i < ne; i++) {
            printf("registrant %s key 0x%" PRIx64 "%s\n", e[i].name, e[i].key,
                   e[i].holder ? " holder" : "");
        }
    }
    scsi_pr_nexus_close(n);
    return rc;
}

static int cmd_caps(const char *url, const char *initiator)
{
    ScsiPrNexus *n = open_or_die(url, initiator);
    ScsiPrCaps c;
    Error *err = NULL;
    int rc = 0;
    if (!scsi_pr_io_report_caps(io(n), &c, &err)) {
        fprintf(stderr, "stormig-prtest: %s\n", error_get_pretty(err));
        error_free(err);
        rc = 1;
    } else {
        printf("crh %d sip_c %d atc_c %d ptpl_c %d tmv %d type_mask 0x%04x\n",
               c.crh, c.sip_c, c.atc_c, c.ptpl_c, c.tmv, c.type_mask);
    }
    scsi_pr_nexus_close(n);
    return rc;
}

static bool parse_sa(const char *s, uint8_t *sa)
{
    static const char *const names[] = {
        "register", "reserve", "release", "clear", "preempt",
        "preempt-abort", "register-ignore",
    };
    for (uint8_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i]) == 0) {
            *sa = i;
            return true;
        }
    }
    return false;
}

static int cmd_out(const char *url, char **argv)
{
    uint8_t sa, type = 0, status = 0;
    uint64_t res_key, sa_key;
    Error *err = NULL;
    if (!parse_sa(argv[1], &sa) ||
        (strcmp(argv[2], "none") != 0 &&
         !scsi_pr_type_parse(argv[2], &type)) ||
        !parse_u64(argv[3], &res_key) || !parse_u64(argv[4], &sa_key)) {
        fprintf(stderr, "stormig-prtest: bad out arguments\n");
        return 2;
    }
    ScsiPrNexus *n = open_or_die(url, argv[0]);
    bool ok = scsi_pr_io_out(io(n), sa, type, res_key, sa_key, &status, &err);
    printf("%s\n", scsi_pr_status_name(status));
    if (!ok) {
        fprintf(stderr, "stormig-prtest: %s\n", error_get_pretty(err));
        error_free(err);
    }
    scsi_pr_nexus_close(n);
    return ok ? 0 : 1;
}

/* One session: on targets that key registrations by session (tgt), a
 * second stormig-prtest run would be another, unregistered nexus. */
static int cmd_fence(const char *url, char **argv)
{
    uint8_t type, status = 0;
    uint64_t key, victim;
    Error *err = NULL;
    if (!scsi_pr_type_parse(argv[1], &type) || !parse_u64(argv[2], &key) ||
        !parse_u64(argv[3], &victim) || key == 0 || victim == 0) {
        fprintf(stderr, "stormig-prtest: bad fence arguments\n");
        return 2;
    }
    ScsiPrNexus *n = open_or_die(url, argv[0]);
    bool ok = scsi_pr_io_out(io(n), SCSI_PROUT_REGISTER_AND_IGNORE, 0, 0,
                             key, &status, &err) &&
              scsi_pr_io_out(io(n), SCSI_PROUT_PREEMPT, type, key, victim,
                             &status, &err);
    printf("%s\n", scsi_pr_status_name(status));
    if (!ok) {
        fprintf(stderr, "stormig-prtest: %s\n", error_get_pretty(err));
        error_free(err);
    }
    scsi_pr_nexus_close(n);
    return ok ? 0 : 1;
}

static int cmd_rw(const char *url, char **argv)
{
    uint64_t lba;
    uint8_t status;
    Error *err = NULL;
    bool write = strcmp(argv[1], "write") == 0;
    if ((!write && strcmp(argv[1], "read") != 0) ||
        !parse_u64(argv[2], &lba) || lba > UINT32_MAX) {
        fprintf(stderr, "stormig-prtest: bad rw arguments\n");
        return 2;
    }
    ScsiPrNexus *n = open_or_die(url, argv[0]);
    bool ok = scsi_pr_nexus_rw(n, write, (uint32_t)lba, &status, &err);
    if (ok) {
        printf("%s\n", scsi_pr_status_name(status));
    } else {
        fprintf(stderr, "stormig-prtest: %s\n", error_get_pretty(err));
        error_free(err);
    }
    scsi_pr_nexus_close(n);
    return ok ? 0 : 1;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: stormig-prtest run URL [INIT_A INIT_B [INIT_C]]\n"
            "       stormig-prtest show URL [INITIATOR]\n"
            "       stormig-prtest caps URL [INITIATOR]\n"
            "       stormig-prtest out URL INITIATOR SA TYPE RESKEY SAKEY\n"
            "       stormig-prtest rw URL INITIATOR read|write LBA\n"
            "       stormig-prtest fence URL INITIATOR TYPE KEY VICTIM\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        return usage();
    }
    const char *cmd = argv[1], *url = argv[2];
    if (strcmp(cmd, "run") == 0 && argc <= 6) {
        return cmd_run(url, argc - 3, argv + 3);
    }
    if (strcmp(cmd, "show") == 0 && argc <= 4) {
        return cmd_show(url, argc == 4 ? argv[3] : DEFAULT_C);
    }
    if (strcmp(cmd, "caps") == 0 && argc <= 4) {
        return cmd_caps(url, argc == 4 ? argv[3] : DEFAULT_C);
    }
    if (strcmp(cmd, "out") == 0 && argc == 8) {
        return cmd_out(url, argv + 3);
    }
    if (strcmp(cmd, "rw") == 0 && argc == 6) {
        return cmd_rw(url, argv + 3);
    }
    if (strcmp(cmd, "fence") == 0 && argc == 7) {
        return cmd_fence(url, argv + 3);
    }
    return usage();
}
