/* Reservation types and the tracking state machine: what one I_T nexus
 * holds after each successful PERSISTENT RESERVE OUT (see scsi-pr.h). */
#include "scsi/scsi-pr.h"

#include <string.h>

const uint8_t scsi_pr_all_types[6] = {
    SCSI_PR_TYPE_WRITE_EXCLUSIVE, SCSI_PR_TYPE_EXCLUSIVE_ACCESS,
    SCSI_PR_TYPE_WE_REGISTRANTS_ONLY, SCSI_PR_TYPE_EA_REGISTRANTS_ONLY,
    SCSI_PR_TYPE_WE_ALL_REGISTRANTS, SCSI_PR_TYPE_EA_ALL_REGISTRANTS,
};

static const struct {
    uint8_t type;
    const char *name, *short_name;
} type_names[] = {
    { SCSI_PR_TYPE_WRITE_EXCLUSIVE, "WRITE EXCLUSIVE", "we" },
    { SCSI_PR_TYPE_EXCLUSIVE_ACCESS, "EXCLUSIVE ACCESS", "ea" },
    { SCSI_PR_TYPE_WE_REGISTRANTS_ONLY,
      "WRITE EXCLUSIVE - REGISTRANTS ONLY", "we-ro" },
    { SCSI_PR_TYPE_EA_REGISTRANTS_ONLY,
      "EXCLUSIVE ACCESS - REGISTRANTS ONLY", "ea-ro" },
    { SCSI_PR_TYPE_WE_ALL_REGISTRANTS,
      "WRITE EXCLUSIVE - ALL REGISTRANTS", "we-ar" },
    { SCSI_PR_TYPE_EA_ALL_REGISTRANTS,
      "EXCLUSIVE ACCESS - ALL REGISTRANTS", "ea-ar" },
};
#define N_TYPES (sizeof(type_names) / sizeof(type_names[0]))

bool scsi_pr_type_valid(uint8_t type)
{
    for (size_t i = 0; i < N_TYPES; i++) {
        if (type_names[i].type == type) {
            return true;
        }
    }
    return false;
}

const char *scsi_pr_type_name(uint8_t type)
{
    for (size_t i = 0; i < N_TYPES; i++) {
        if (type_names[i].type == type) {
            return type_names[i].name;
        }
    }
    return type == SCSI_PR_TYPE_NONE ? "NONE" : "?";
}

const char *scsi_pr_type_short(uint8_t type)
{
    for (size_t i = 0; i < N_TYPES; i++) {
        if (type_names[i].type == type) {
            return type_names[i].short_name;
        }
    }
    return type == SCSI_PR_TYPE_NONE ? "none" : "?";
}

bool scsi_pr_type_parse(const char *s, uint8_t *type)
{
    for (size_t i = 0; i < N_TYPES; i++) {
        if (strcmp(s, type_names[i].short_name) == 0) {
            *type = type_names[i].type;
            return true;
        }
    }
    return false;
}

bool scsi_pr_type_all_registrants(uint8_t type)
{
    return type == SCSI_PR_TYPE_WE_ALL_REGISTRANTS ||
           type == SCSI_PR_TYPE_EA_ALL_REGISTRANTS;
}

bool scsi_pr_conflicts(uint8_t type, bool registered, bool is_write)
{
    /* SPC-4 5.13.1 table: READ is refused only by the EXCLUSIVE ACCESS
     * family, WRITE by every type; the REGISTRANTS ONLY and ALL
     * REGISTRANTS types let registered nexuses through. */
    bool exclusive_access = type == SCSI_PR_TYPE_EXCLUSIVE_ACCESS ||
                            type == SCSI_PR_TYPE_EA_REGISTRANTS_ONLY ||
                            type == SCSI_PR_TYPE_EA_ALL_REGISTRANTS;
    bool registrants_pass = type == SCSI_PR_TYPE_WE_REGISTRANTS_ONLY ||
                            type == SCSI_PR_TYPE_EA_REGISTRANTS_ONLY ||
                            scsi_pr_type_all_registrants(type);
    if (!scsi_pr_type_valid(type)) {
        return false;
    }
    if (registered && registrants_pass) {
        return false;
    }
    return is_write || exclusive_access;
}

bool scsi_pr_state_valid(const ScsiPrState *st)
{
    if (st->key == 0) {
        return st->type == SCSI_PR_TYPE_NONE;
    }
    return st->type == SCSI_PR_TYPE_NONE || scsi_pr_type_valid(st->type);
}

static ScsiPrSnoop set_state(ScsiPrState *st, uint64_t key, uint8_t type)
{
    if (st->key == key && st->type == type) {
        return SCSI_PR_SNOOP_UNCHANGED;
    }
    st->key = key;
    st->type = type;
    return SCSI_PR_SNOOP_CHANGED;
}

/* SPC-4 5.13.7: REGISTER / REGISTER AND IGNORE EXISTING KEY. A zero
 * service action key unregisters, which also ends this nexus's part in a
 * reservation (5.13.11.3); a non-zero one replaces the key and keeps the
 * reservation. */
static ScsiPrSnoop snoop_register(ScsiPrState *st, const ScsiPrOut *cmd)
{
    if (cmd->sa_key == 0) {
        return set_state(st, 0, SCSI_PR_TYPE_NONE);
    }
    return set_state(st, cmd->sa_key, st->type);
}

ScsiPrSnoop scsi_pr_snoop(ScsiPrState *st, const ScsiPrOut *cmd)
{
    switch (cmd->service_action) {
    case SCSI_PROUT_REGISTER:
        if (st->key == 0 && cmd->res_key == 0 && cmd->sa_key == 0) {
            return SCSI_PR_SNOOP_UNCHANGED;     /* 5.13.7: no-op */
        }
        return snoop_register(st, cmd);
    case SCSI_PROUT_REGISTER_AND_IGNORE:
        return snoop_register(st, cmd);
    case SCSI_PROUT_RESERVE: {
        /* 5.13.9: succeeds only for the registered key. A LUN that claims
         * success for key 0 (never registered) is not believed: the
         * state would name a reservation without a registration. */
        uint64_t key = st->key ? st->key : cmd->res_key;
        if (key == 0) {
            return SCSI_PR_SNOOP_UNCHANGED;
        }
        return set_state(st, key, cmd->type);
    }
    case SCSI_PROUT_RELEASE:
        return set_state(st, st->key, SCSI_PR_TYPE_NONE);   /* 5.13.11.2 */
    case SCSI_PROUT_CLEAR:
        /* 5.13.11.6: every registration and the reservation go. */
        return set_state(st, 0, SCSI_PR_TYPE_NONE);
    case SCSI_PROUT_PREEMPT:
    case SCSI_PROUT_PREEMPT_AND_ABORT:
        /* 5.13.11.4: whether this nexus now holds a reservation depends on
         * whose key the service action key named; ask the LUN. */
        return SCSI_PR_SNOOP_READ_BACK;
    case SCSI_PROUT_REPLACE_LOST_RESERVATION:
        /* SPC-5 5.14.11: registered with the service action key, holding
         * a reservation of the given type (key 0 cannot hold one). */
        if (cmd->sa_key == 0) {
            return SCSI_PR_SNOOP_UNCHANGED;
        }
        return set_state(st, cmd->sa_key, cmd->type);
    default:
        return SCSI_PR_SNOOP_UNCHANGED;
    }
}

bool scsi_pr_apply_reservation(ScsiPrState *st, const ScsiPrReservation *r)
{
    uint8_t type = SCSI_PR_TYPE_NONE;
    if (st->key && r->held && scsi_pr_type_valid(r->type)) {
        /* ALL REGISTRANTS: every registrant takes part, key reads 0. */
        if (scsi_pr_type_all_registrants(r->type) || r->key == st->key) {
            type = r->type;
        }
    }
    return set_state(st, st->key, type) == SCSI_PR_SNOOP_CHANGED;
}
