/*
 * SCSI Persistent Reservations: the wire formats and the tracking state
 * machine, free of any transport (used by scsi-block, stormig-prtest and
 * the unit tests).
 *
 * Section numbers are SPC-4's: 5.13 (persistent reservations and the
 * table of commands allowed per reservation type), 6.14 (PERSISTENT
 * RESERVE IN) and 6.15 (PERSISTENT RESERVE OUT).
 */
#ifndef STORMIG_SCSI_SCSI_PR_H
#define STORMIG_SCSI_SCSI_PR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scsi/scsi.h"
#include "util/error.h"

/* Reservation types (SPC-4 6.15.2, TYPE field). 0 = no reservation. */
enum {
    SCSI_PR_TYPE_NONE = 0,
    SCSI_PR_TYPE_WRITE_EXCLUSIVE = 1,
    SCSI_PR_TYPE_EXCLUSIVE_ACCESS = 3,
    SCSI_PR_TYPE_WE_REGISTRANTS_ONLY = 5,
    SCSI_PR_TYPE_EA_REGISTRANTS_ONLY = 6,
    SCSI_PR_TYPE_WE_ALL_REGISTRANTS = 7,
    SCSI_PR_TYPE_EA_ALL_REGISTRANTS = 8,
};

/* REPLACE LOST RESERVATION (SPC-5 6.17.2); not in scsi-defs.h. */
#define SCSI_PROUT_REPLACE_LOST_RESERVATION 0x08

/* UNIT ATTENTION, REGISTRATIONS PREEMPTED (2Ah/05h): what the device
 * server establishes for a nexus whose registration a PREEMPT removed
 * (SPC-4 5.13.11.2.4). */
#define SENSE_UA_REGISTRATIONS_PREEMPTED SCSI_SENSE(0x6, 0x2a, 0x05)

/* The six types, in table order, for loops in tools and tests. */
extern const uint8_t scsi_pr_all_types[6];

/* One of the six types above. */
bool scsi_pr_type_valid(uint8_t type);
/* "WRITE EXCLUSIVE", ...; "NONE" for 0, "?" for anything else. */
const char *scsi_pr_type_name(uint8_t type);
/* Short names for command lines: we, ea, we-ro, ea-ro, we-ar, ea-ar. */
const char *scsi_pr_type_short(uint8_t type);
bool scsi_pr_type_parse(const char *s, uint8_t *type);
/* ALL REGISTRANTS types: every registrant holds the reservation and READ
 * RESERVATION reports key 0 (SPC-4 5.13.10). */
bool scsi_pr_type_all_registrants(uint8_t type);

/*
 * SPC-4 5.13 table "commands allowed in the presence of persistent
 * reservations": whether a READ or WRITE from an I_T nexus that is not the
 * holder gets RESERVATION CONFLICT, by whether that nexus is registered.
 */
bool scsi_pr_conflicts(uint8_t type, bool registered, bool is_write);

/* ---- PERSISTENT RESERVE OUT (SPC-4 6.15) ------------------------------ */

#define SCSI_PR_OUT_CDB_LEN 10
#define SCSI_PR_OUT_PARAM_LEN 24    /* basic parameter list, 6.15.3 */

typedef struct ScsiPrOut {
    uint8_t service_action;         /* SCSI_PROUT_* */
    uint8_t scope;                  /* 0: LU_SCOPE, the only one defined */
    uint8_t type;
    uint32_t param_len;             /* PARAMETER LIST LENGTH */
    uint64_t res_key;               /* RESERVATION KEY */
    uint64_t sa_key;                /* SERVICE ACTION RESERVATION KEY */
    bool spec_i_pt, all_tg_pt, aptpl;
} ScsiPrOut;

/* Why a PERSISTENT RESERVE OUT is not accepted for tracking; each maps to
 * the sense the guest gets (scsi_pr_out_status_sense). */
typedef enum ScsiPrOutStatus {
    SCSI_PR_OUT_OK,
    SCSI_PR_OUT_NOT_PR_OUT,         /* opcode is not 5Fh */
    SCSI_PR_OUT_CDB_TOO_SHORT,      /* fewer than 10 CDB bytes */
    SCSI_PR_OUT_BAD_SERVICE_ACTION, /* reserved service action code */
    SCSI_PR_OUT_REGISTER_AND_MOVE,  /* refused while migrate-pr is on */
    SCSI_PR_OUT_BAD_SCOPE,          /* SCOPE other than LU_SCOPE */
    SCSI_PR_OUT_BAD_TYPE,           /* TYPE not one of the six, where used */
    SCSI_PR_OUT_BAD_LENGTH,         /* PARAMETER LIST LENGTH is not 24 */
    SCSI_PR_OUT_TRUNCATED,          /* less data-out than the CDB says */
    SCSI_PR_OUT_SPEC_I_PT,          /* masked capability used (SIP_C) */
    SCSI_PR_OUT_ALL_TG_PT,          /* masked capability used (ATC_C) */
} ScsiPrOutStatus;

const char *scsi_pr_out_status_name(ScsiPrOutStatus st);
/* The sense the guest gets for a refused command (ILLEGAL REQUEST with
 * INVALID FIELD IN CDB, PARAMETER LIST LENGTH ERROR or INVALID FIELD IN
 * PARAMETER LIST). */
ScsiSense scsi_pr_out_status_sense(ScsiPrOutStatus st);

/* Parses a PERSISTENT RESERVE OUT CDB and its parameter list (param holds
 * param_avail bytes of data-out). Every length is checked; nothing is
 * read beyond cdb_len or param_avail. */
ScsiPrOutStatus scsi_pr_out_parse(const uint8_t *cdb, size_t cdb_len,
                                  const uint8_t *param, size_t param_avail,
                                  ScsiPrOut *out);

/* Encodes a CDB and basic parameter list for sa/type/keys (no SPEC_I_PT,
 * ALL_TG_PT or APTPL). */
void scsi_pr_out_encode(uint8_t sa, uint8_t type, uint64_t res_key,
                        uint64_t sa_key, uint8_t cdb[SCSI_PR_OUT_CDB_LEN],
                        uint8_t param[SCSI_PR_OUT_PARAM_LEN]);
const char *scsi_pr_out_sa_name(uint8_t sa);

/* ---- PERSISTENT RESERVE IN (SPC-4 6.14) ------------------------------- */

#define SCSI_PR_IN_CDB_LEN 10
#define SCSI_PR_MAX_KEYS 64

void scsi_pr_in_encode(uint8_t sa, uint16_t alloc_len,
                       uint8_t cdb[SCSI_PR_IN_CDB_LEN]);

typedef struct ScsiPrKeys {
    uint32_t generation;
    uint32_t n;                     /* keys stored in keys[] */
    uint32_t total;                 /* keys the LUN reported */
    uint64_t keys[SCSI_PR_MAX_KEYS];
} ScsiPrKeys;

typedef struct ScsiPrReservation {
    uint32_t generation;
    bool held;                      /* a reservation exists */
    uint64_t key;                   /* 0 for ALL REGISTRANTS types */
    uint8_t scope, type;
} ScsiPrReservation;

typedef struct ScsiPrCaps {
    bool crh, sip_c, atc_c, ptpl_c, tmv, ptpl_a;
    uint16_t type_mask;             /* PERSISTENT RESERVATION TYPE MASK */
} ScsiPrCaps;

#define SCSI_PR_NAME_MAX 224
typedef struct ScsiPrFullStatus {
    uint64_t key;
    bool holder, all_tg_pt;
    uint8_t scope, type;
    uint16_t rel_tgt_port;
    uint8_t protocol;               /* TransportID PROTOCOL IDENTIFIER */
    char name[SCSI_PR_NAME_MAX];    /* iSCSI name (and ",i,0x" ISID) */
} ScsiPrFullStatus;

/* Decoders of PR IN parameter data (len bytes actually transferred). A
 * short or inconsistent buffer is an error, never an over-read. */
bool scsi_pr_keys_decode(const uint8_t *buf, size_t len, ScsiPrKeys *out,
                         Error **errp);
bool scsi_pr_keys_contain(const ScsiPrKeys *k, uint64_t key);
unsigned scsi_pr_keys_count(const ScsiPrKeys *k, uint64_t key);
bool scsi_pr_reservation_decode(const uint8_t *buf, size_t len,
                                ScsiPrReservation *out, Error **errp);
bool scsi_pr_caps_decode(const uint8_t *buf, size_t len, ScsiPrCaps *out,
                         Error **errp);
/* Fills up to max entries; *n is how many were stored. */
bool scsi_pr_full_status_decode(const uint8_t *buf, size_t len,
                                ScsiPrFullStatus *out, size_t max,
                                size_t *n, Error **errp);

/* SPC-4 6.14.4: clears SIP_C and ATC_C in REPORT CAPABILITIES data. The
 * guest sees a virtual bus: it has no transport IDs for SPEC_I_PT, and
 * only this I_T nexus is tracked, not the LUN's other target ports.
 * False when fewer than 3 bytes were transferred (nothing to patch). */
bool scsi_pr_caps_mask(uint8_t *buf, size_t len);

/* ---- Tracking --------------------------------------------------------- */

/* What one I_T nexus holds: its registered key and the type of the
 * reservation it holds (or takes part in, for ALL REGISTRANTS). */
typedef struct ScsiPrState {
    uint64_t key;                   /* 0: not registered */
    uint8_t type;                   /* 0: holds no reservation */
} ScsiPrState;

typedef enum ScsiPrSnoop {
    SCSI_PR_SNOOP_UNCHANGED,
    SCSI_PR_SNOOP_CHANGED,
    /* The outcome depends on the LUN (PREEMPT): read the reservation back
     * and apply it with scsi_pr_apply_reservation. */
    SCSI_PR_SNOOP_READ_BACK,
} ScsiPrSnoop;

/* Applies a PERSISTENT RESERVE OUT that completed with GOOD. */
ScsiPrSnoop scsi_pr_snoop(ScsiPrState *st, const ScsiPrOut *cmd);
/* After a PREEMPT: the reservation as READ RESERVATION reports it. */
bool scsi_pr_apply_reservation(ScsiPrState *st, const ScsiPrReservation *r);
/* A state a peer or a file may hand us: key 0 holds nothing; the type is
 * 0 or one of the six. */
bool scsi_pr_state_valid(const ScsiPrState *st);

#endif
