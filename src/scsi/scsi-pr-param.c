/* PERSISTENT RESERVE IN/OUT: CDBs and parameter data, encoded and parsed
 * with bounds checks (see scsi-pr.h). */
#include "scsi/scsi-pr.h"

#include <string.h>

/* ---- PERSISTENT RESERVE OUT ------------------------------------------ */

const char *scsi_pr_out_status_name(ScsiPrOutStatus st)
{
    static const char *const names[] = {
        [SCSI_PR_OUT_OK] = "ok",
        [SCSI_PR_OUT_NOT_PR_OUT] = "not a PERSISTENT RESERVE OUT",
        [SCSI_PR_OUT_CDB_TOO_SHORT] = "CDB shorter than 10 bytes",
        [SCSI_PR_OUT_BAD_SERVICE_ACTION] = "reserved service action",
        [SCSI_PR_OUT_REGISTER_AND_MOVE] =
            "REGISTER AND MOVE is not supported with migrate-pr",
        [SCSI_PR_OUT_BAD_SCOPE] = "scope other than LU_SCOPE",
        [SCSI_PR_OUT_BAD_TYPE] = "reserved reservation type",
        [SCSI_PR_OUT_BAD_LENGTH] = "parameter list length is not 24",
        [SCSI_PR_OUT_TRUNCATED] = "parameter list shorter than announced",
        [SCSI_PR_OUT_SPEC_I_PT] = "SPEC_I_PT is not supported",
        [SCSI_PR_OUT_ALL_TG_PT] = "ALL_TG_PT is not supported",
    };
    return (unsigned)st < sizeof(names) / sizeof(names[0]) && names[st] ?
           names[st] : "?";
}

ScsiSense scsi_pr_out_status_sense(ScsiPrOutStatus st)
{
    switch (st) {
    case SCSI_PR_OUT_BAD_LENGTH:
    case SCSI_PR_OUT_TRUNCATED:
        /* SPC-4 6.15.3: a basic list that is not 24 bytes long. */
        return SENSE_PARAM_LIST_LENGTH_ERROR;
    case SCSI_PR_OUT_SPEC_I_PT:
    case SCSI_PR_OUT_ALL_TG_PT:
        /* SPC-4 6.15.3: bits the device server does not support. */
        return SENSE_INVALID_FIELD_IN_PARAM;
    case SCSI_PR_OUT_NOT_PR_OUT:
        return SENSE_INVALID_OPCODE;
    default:
        return SENSE_INVALID_FIELD_IN_CDB;
    }
}

/* Whether the service action uses the TYPE field (SPC-4 6.15.2 table). */
static bool sa_uses_type(uint8_t sa)
{
    return sa == SCSI_PROUT_RESERVE || sa == SCSI_PROUT_RELEASE ||
           sa == SCSI_PROUT_PREEMPT || sa == SCSI_PROUT_PREEMPT_AND_ABORT ||
           sa == SCSI_PROUT_REPLACE_LOST_RESERVATION;
}

static ScsiPrOutStatus parse_cdb(const uint8_t *cdb, size_t cdb_len,
                                 ScsiPrOut *out)
{
    if (cdb_len < 1 || cdb[0] != SCSI_OP_PERSISTENT_RESERVE_OUT) {
        return SCSI_PR_OUT_NOT_PR_OUT;
    }
    if (cdb_len < SCSI_PR_OUT_CDB_LEN) {
        return SCSI_PR_OUT_CDB_TOO_SHORT;
    }
    /* SPC-4 6.15.1: SA in byte 1, SCOPE/TYPE in byte 2, PARAMETER LIST
     * LENGTH in bytes 5..8. */
    out->service_action = cdb[1] & 0x1f;
    out->scope = cdb[2] >> 4;
    out->type = cdb[2] & 0x0f;
    out->param_len = ld_be32(&cdb[5]);
    if (out->service_action > SCSI_PROUT_REPLACE_LOST_RESERVATION) {
        return SCSI_PR_OUT_BAD_SERVICE_ACTION;
    }
    if (out->service_action == SCSI_PROUT_REGISTER_AND_MOVE) {
        /* Its parameter list names a transport ID and a relative target
         * port of the physical LUN, which the guest cannot know. */
        return SCSI_PR_OUT_REGISTER_AND_MOVE;
    }
    if (sa_uses_type(out->service_action)) {
        /* SPC-4 6.15.2: LU_SCOPE (0) is the only scope left. */
        if (out->scope != 0) {
            return SCSI_PR_OUT_BAD_SCOPE;
        }
        if (!scsi_pr_type_valid(out->type)) {
            return SCSI_PR_OUT_BAD_TYPE;
        }
    }
    return SCSI_PR_OUT_OK;
}

ScsiPrOutStatus scsi_pr_out_parse(const uint8_t *cdb, size_t cdb_len,
                                  const uint8_t *param, size_t param_avail,
                                  ScsiPrOut *out)
{
    memset(out, 0, sizeof(*out));
    ScsiPrOutStatus st = parse_cdb(cdb, cdb_len, out);
    if (st != SCSI_PR_OUT_OK) {
        return st;
    }
    /* SPC-4 6.15.3: with SPEC_I_PT zero the list is exactly 24 bytes. */
    if (out->param_len != SCSI_PR_OUT_PARAM_LEN) {
        return SCSI_PR_OUT_BAD_LENGTH;
    }
    if (!param || param_avail < SCSI_PR_OUT_PARAM_LEN) {
        return SCSI_PR_OUT_TRUNCATED;
    }
    out->res_key = ld_be64(&param[0]);
    out->sa_key = ld_be64(&param[8]);
    out->spec_i_pt = param[20] & 0x08;
    out->all_tg_pt = param[20] & 0x04;
    out->aptpl = param[20] & 0x01;
    /* SIP_C and ATC_C are masked from the guest (6.14.4), so it has no
     * business setting these; the tracked state could not follow them. */
    if (out->spec_i_pt) {
        return SCSI_PR_OUT_SPEC_I_PT;
    }
    if (out->all_tg_pt) {
        return SCSI_PR_OUT_ALL_TG_PT;
    }
    return SCSI_PR_OUT_OK;
}

void scsi_pr_out_encode(uint8_t sa, uint8_t type, uint64_t res_key,
                        uint64_t sa_key, uint8_t cdb[SCSI_PR_OUT_CDB_LEN],
                        uint8_t param[SCSI_PR_OUT_PARAM_LEN])
{
    memset(cdb, 0, SCSI_PR_OUT_CDB_LEN);
    memset(param, 0, SCSI_PR_OUT_PARAM_LEN);
    cdb[0] = SCSI_OP_PERSISTENT_RESERVE_OUT;
    cdb[1] = sa & 0x1f;
    cdb[2] = type & 0x0f;
    st_be32(&cdb[5], SCSI_PR_OUT_PARAM_LEN);
    st_be64(&param[0], res_key);
    st_be64(&param[8], sa_key);
}

const char *scsi_pr_out_sa_name(uint8_t sa)
{
    static const char *const names[] = {
        "REGISTER", "RESERVE", "RELEASE", "CLEAR", "PREEMPT",
        "PREEMPT AND ABORT", "REGISTER AND IGNORE EXISTING KEY",
        "REGISTER AND MOVE", "REPLACE LOST RESERVATION",
    };
    return sa < sizeof(names) / sizeof(names[0]) ? names[sa] : "?";
}

/* ---- PERSISTENT RESERVE IN ------------------------------------------- */

void scsi_pr_in_encode(uint8_t sa, uint16_t alloc_len,
                       uint8_t cdb[SCSI_PR_IN_CDB_LEN])
{
    /* SPC-4 6.14.1: SA in byte 1, ALLOCATION LENGTH in bytes 7..8. */
    memset(cdb, 0, SCSI_PR_IN_CDB_LEN);
    cdb[0] = SCSI_OP_PERSISTENT_RESERVE_IN;
    cdb[1] = sa & 0x1f;
    st_be16(&cdb[7], alloc_len);
}

/* The 8-byte header every PR IN reply but REPORT CAPABILITIES starts with:
 * PRGENERATION, then ADDITIONAL LENGTH (6.14.2, 6.14.3, 6.14.5). Returns
 * the bytes of the body present in buf. */
static bool pr_in_header(const uint8_t *buf, size_t len, const char *what,
                         uint32_t *gen, size_t *body, Error **errp)
{
    if (len < 8) {
        error_setg(errp, "%s: %zu bytes, shorter than its 8-byte header",
                   what, len);
        return false;
    }
    *gen = ld_be32(&buf[0]);
    uint32_t add = ld_be32(&buf[4]);
    *body = add < len - 8 ? add : len - 8;
    return true;
}

bool scsi_pr_keys_decode(const uint8_t *buf, size_t len, ScsiPrKeys *out,
                         Error **errp)
{
    size_t body;
    memset(out, 0, sizeof(*out));
    if (!pr_in_header(buf, len, "READ KEYS", &out->generation, &body, errp)) {
        return false;
    }
    uint32_t add = ld_be32(&buf[4]);
    if (add % 8) {
        error_setg(errp, "READ KEYS: additional length %u is not a "
                   "multiple of 8", add);
        return false;
    }
    out->total = add / 8;
    for (size_t off = 8; off + 8 <= 8 + body && out->n < SCSI_PR_MAX_KEYS;
         off += 8) {
        out->keys[out->n++] = ld_be64(&buf[off]);
    }
    return true;
}

bool scsi_pr_keys_contain(const ScsiPrKeys *k, uint64_t key)
{
    return scsi_pr_keys_count(k, key) > 0;
}

unsigned scsi_pr_keys_count(const ScsiPrKeys *k, uint64_t key)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < k->n; i++) {
        n += k->keys[i] == key;
    }
    return n;
}

bool scsi_pr_reservation_decode(const uint8_t *buf, size_t len,
                                ScsiPrReservation *out, Error **errp)
{
    size_t body;
    memset(out, 0, sizeof(*out));
    if (!pr_in_header(buf, len, "READ RESERVATION", &out->generation, &body,
                      errp)) {
        return false;
    }
    uint32_t add = ld_be32(&buf[4]);
    /* SPC-4 6.14.3: 0 (no reservation) or 10h (one descriptor). */
    if (add == 0) {
        return true;
    }
    if (add != 0x10 || body < 0x10) {
        error_setg(errp, "READ RESERVATION: additional length %u with %zu "
                   "bytes present", add, body);
        return false;
    }
    out->held = true;
    out->key = ld_be64(&buf[8]);
    out->scope = buf[21] >> 4;
    out->type = buf[21] & 0x0f;
    return true;
}

bool scsi_pr_caps_decode(const uint8_t *buf, size_t len, ScsiPrCaps *out,
                         Error **errp)
{
    memset(out, 0, sizeof(*out));
    /* SPC-4 6.14.4: LENGTH (8) in bytes 0..1, flags in 2..3, the type
     * mask in 4..5. */
    if (len < 6 || ld_be16(&buf[0]) < 6) {
        error_setg(errp, "REPORT CAPABILITIES: %zu bytes, length field %u",
                   len, len >= 2 ? ld_be16(&buf[0]) : 0);
        return false;
    }
    out->crh = buf[2] & 0x10;
    out->sip_c = buf[2] & 0x08;
    out->atc_c = buf[2] & 0x04;
    out->ptpl_c = buf[2] & 0x01;
    out->tmv = buf[3] & 0x80;
    out->ptpl_a = buf[3] & 0x01;
    out->type_mask = ld_be16(&buf[4]);
    return true;
}

bool scsi_pr_caps_mask(uint8_t *buf, size_t len)
{
    if (len < 3) {
        return false;
    }
    buf[2] &= (uint8_t)~0x0c;       /* SIP_C (bit 3), ATC_C (bit 2) */
    return true;
}

/* SPC-4 7.6.4.6: iSCSI TransportID, the name NUL-terminated at byte 4. */
static void decode_transport_id(const uint8_t *tid, size_t len,
                                ScsiPrFullStatus *e)
{
    e->protocol = len ? tid[0] & 0x0f : 0xff;
    e->name[0] = '\0';
    if (len <= 4) {
        return;
    }
    size_t n = len - 4 < SCSI_PR_NAME_MAX - 1 ? len - 4 : SCSI_PR_NAME_MAX - 1;
    size_t i = 0;
    for (; i < n && tid[4 + i]; i++) {
        uint8_t c = tid[4 + i];
        e->name[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    e->name[i] = '\0';
}

bool scsi_pr_full_status_decode(const uint8_t *buf, size_t len,
                                ScsiPrFullStatus *out, size_t max,
                                size_t *n, Error **errp)
{
    uint32_t gen;
    size_t body;
    *n = 0;
    if (!pr_in_header(buf, len, "READ FULL STATUS", &gen, &body, errp)) {
        return false;
    }
    /* SPC-4 6.14.5: descriptors of 24 bytes plus a TransportID whose
     * length is in bytes 20..23. */
    size_t off = 8, end = 8 + body;
    while (off + 24 <= end && *n < max) {
        const uint8_t *d = &buf[off];
        uint32_t tid_len = ld_be32(&d[20]);
        if (tid_len > end - off - 24) {
            error_setg(errp, "READ FULL STATUS: descriptor at %zu claims %u "
                       "TransportID bytes, %zu left", off, tid_len,
                       end - off - 24);
            return false;
        }
        ScsiPrFullStatus *e = &out[(*n)++];
        memset(e, 0, sizeof(*e));
        e->key = ld_be64(&d[0]);
        e->all_tg_pt = d[12] & 0x02;
        e->holder = d[12] & 0x01;
        e->scope = d[13] >> 4;
        e->type = d[13] & 0x0f;
        e->rel_tgt_port = ld_be16(&d[18]);
        decode_transport_id(&d[24], tid_len, e);
        off += 24 + (size_t)tid_len;
    }
    return true;
}
