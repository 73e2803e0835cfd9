/*
 * scsi-hd REPORT SUPPORTED OPERATION CODES (SPC-4 6.35), and MAINTENANCE
 * IN, the opcode that carries it. The table below lists every command
 * scsi-hd serves with its CDB USAGE DATA: a one for each bit the device
 * server looks at (the opcode byte in full, then the fields it uses or
 * checks; the control byte's NACA, which is checked). DPO is marked
 * where the CDB has it: MODE SENSE reports DPOFUA = 1, and with no cache
 * of our own there is nothing to keep out of one. A unit test checks
 * that it agrees with the dispatcher in both directions.
 */
#include "scsi/scsi-hd.h"
#include "util/log.h"

#include <string.h>

typedef struct HdOpcodeInfo {
    uint8_t opcode;
    uint8_t sa;             /* service action, when servactv */
    bool servactv;
    uint8_t usage[16];      /* scsi_cdb_length(opcode) bytes used */
} HdOpcodeInfo;

#define LBA4 0xff, 0xff, 0xff, 0xff
#define LBA8 LBA4, LBA4
#define NACA 0x04

static const HdOpcodeInfo hd_opcodes[] = {
    { 0x00, 0, false, { 0x00, 0, 0, 0, 0, NACA } },     /* TEST UNIT READY */
    { 0x03, 0, false, { 0x03, 0x01, 0, 0, 0xff, NACA } }, /* REQUEST SENSE */
    { 0x08, 0, false, { 0x08, 0x1f, 0xff, 0xff, 0xff, NACA } }, /* READ(6) */
    { 0x0a, 0, false, { 0x0a, 0x1f, 0xff, 0xff, 0xff, NACA } },
    { 0x12, 0, false, { 0x12, 0x03, 0xff, 0xff, 0xff, NACA } }, /* INQUIRY */
    { 0x15, 0, false, { 0x15, 0x11, 0, 0, 0xff, NACA } }, /* MODE SELECT(6) */
    { 0x16, 0, false, { 0x16, 0x1f, 0, 0, 0, NACA } },  /* RESERVE(6) */
    { 0x17, 0, false, { 0x17, 0x1f, 0, 0, 0, NACA } },  /* RELEASE(6) */
    { 0x1a, 0, false, { 0x1a, 0x08, 0xff, 0xff, 0xff, NACA } },
    { 0x1b, 0, false, { 0x1b, 0, 0, 0, 0xf3, NACA } },  /* START STOP */
    { 0x25, 0, false, { 0x25, 0, LBA4, 0, 0, 0x01, NACA } },
    { 0x28, 0, false, { 0x28, 0xf8, LBA4, 0, 0xff, 0xff, NACA } },
    { 0x2a, 0, false, { 0x2a, 0xf8, LBA4, 0, 0xff, 0xff, NACA } },
    { 0x2e, 0, false, { 0x2e, 0xf6, LBA4, 0, 0xff, 0xff, NACA } },
    { 0x2f, 0, false, { 0x2f, 0xf6, LBA4, 0, 0xff, 0xff, NACA } },
    { 0x34, 0, false, { 0x34, 0, LBA4, 0, 0xff, 0xff, NACA } },
    { 0x35, 0, false, { 0x35, 0, LBA4, 0, 0xff, 0xff, NACA } },
    { 0x41, 0, false, { 0x41, 0xf8, LBA4, 0, 0xff, 0xff, NACA } },
    { 0x42, 0, false, { 0x42, 0x01, 0, 0, 0, 0, 0, 0xff, 0xff, NACA } },
    { 0x55, 0, false, { 0x55, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, NACA } },
    { 0x5a, 0, false, { 0x5a, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff,
                        NACA } },
    { 0x88, 0, false, { 0x88, 0xf8, LBA8, LBA4, 0, NACA } },
    { 0x89, 0, false, { 0x89, 0xf8, LBA8, 0, 0, 0, 0xff, 0, NACA } },
    { 0x8a, 0, false, { 0x8a, 0xf8, LBA8, LBA4, 0, NACA } },
    { 0x8b, 0, false, { 0x8b, 0xf8, LBA8, LBA4, 0, NACA } },    /* ORWRITE */
    { 0x8e, 0, false, { 0x8e, 0xf6, LBA8, LBA4, 0, NACA } },
    { 0x8f, 0, false, { 0x8f, 0xf6, LBA8, LBA4, 0, NACA } },
    { 0x90, 0, false, { 0x90, 0, LBA8, LBA4, 0, NACA } },      /* PRE-FETCH */
    { 0x91, 0, false, { 0x91, 0, LBA8, LBA4, 0, NACA } },
    { 0x93, 0, false, { 0x93, 0xf9, LBA8, LBA4, 0, NACA } },
    { 0x9e, SCSI_SAI_READ_CAPACITY_16, true,
      { 0x9e, 0x1f, LBA8, LBA4, 0x01, NACA } },
    { 0x9e, SCSI_SAI_GET_LBA_STATUS, true,
      { 0x9e, 0x1f, LBA8, LBA4, 0, NACA } },
    { 0xa0, 0, false, { 0xa0, 0, 0xff, 0, 0, 0, LBA4, 0, NACA } },
    { 0xa3, SCSI_MI_REPORT_SUPPORTED_OPCODES, true,
      { 0xa3, 0x1f, 0x87, 0xff, 0xff, 0xff, LBA4, 0, NACA } },
    { 0xa8, 0, false, { 0xa8, 0xf8, LBA4, LBA4, 0, NACA } },
    { 0xaa, 0, false, { 0xaa, 0xf8, LBA4, LBA4, 0, NACA } },
    { 0xae, 0, false, { 0xae, 0xf6, LBA4, LBA4, 0, NACA } },
    { 0xaf, 0, false, { 0xaf, 0xf6, LBA4, LBA4, 0, NACA } },
};

#define N_OPCODES (sizeof(hd_opcodes) / sizeof(hd_opcodes[0]))
#define TIMEOUTS_LEN 12     /* SPC-4 6.35.4 command timeouts descriptor */

/* SPC-4 6.35.4: DESCRIPTOR LENGTH 0Ah; no timeouts are indicated (zero
 * nominal and recommended times). */
static void put_timeouts(ByteBuf *b)
{
    uint8_t t[TIMEOUTS_LEN] = { 0, 0x0a };
    bytebuf_append(b, t, sizeof(t));
}

/* SPC-4 6.35.2: the all_commands parameter data. */
static void rsoc_all(ByteBuf *b, bool rctd)
{
    bytebuf_put_be32(b, 0);             /* COMMAND DATA LENGTH, below */
    for (size_t i = 0; i < N_OPCODES; i++) {
        const HdOpcodeInfo *o = &hd_opcodes[i];
        uint8_t d[8] = { o->opcode, 0, 0, o->sa, 0,
                         (uint8_t)((rctd ? 0x02 : 0) | (o->servactv ? 1 : 0)),
                         0, 0 };
        st_be16(&d[6], (uint16_t)scsi_cdb_length(o->opcode));
        bytebuf_append(b, d, sizeof(d));
        if (rctd) {
            put_timeouts(b);
        }
    }
    if (!b->failed) {
        st_be32(b->data, (uint32_t)(b->len - 4));
    }
}

/* SPC-4 6.35.3: one_command parameter data; false for a request the
 * REPORTING OPTIONS make invalid (INVALID FIELD IN CDB). */
static bool rsoc_one(ByteBuf *b, uint8_t options, uint8_t opcode,
                     uint16_t sa, bool rctd)
{
    const HdOpcodeInfo *found = NULL;
    bool has_sa = false;
    for (size_t i = 0; i < N_OPCODES; i++) {
        if (hd_opcodes[i].opcode != opcode) {
            continue;
        }
        has_sa = hd_opcodes[i].servactv;
        if (!has_sa || hd_opcodes[i].sa == sa) {
            found = &hd_opcodes[i];
        }
    }
    /* 001b: the opcode must have no service actions; 010b: it must have
     * them (SPC-4 table 263). 011b accepts either. */
    if ((options == 1 && has_sa) || (options == 2 && found && !has_sa)) {
        return false;
    }
    size_t cdb_len = found ? scsi_cdb_length(opcode) : 0;
    uint8_t h[4] = { 0, (uint8_t)(found ? 0x03 : 0x01), 0, 0 };
    if (found && rctd) {
        h[1] |= 0x80;                   /* CTDP */
    }
    st_be16(&h[2], (uint16_t)cdb_len);
    bytebuf_append(b, h, sizeof(h));
    if (found) {
        bytebuf_append(b, found->usage, cdb_len);
        if (rctd) {
            put_timeouts(b);
        }
    }
    return true;
}

static void hd_cmd_report_opcodes(ScsiHd *hd, ScsiRequest *req)
{
    const uint8_t *cdb = req->cdb;
    bool rctd = cdb[2] & 0x80;
    uint8_t options = cdb[2] & 0x07;
    uint32_t alloc_len = ld_be32(&cdb[6]);
    ByteBuf b;

    /* SPC-4 6.35.1: REPORTING OPTIONS 100b..111b are reserved. */
    if (options > 3) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    bytebuf_init(&b);
    if (options == 0) {
        rsoc_all(&b, rctd);
    } else if (!rsoc_one(&b, options, cdb[3], ld_be16(&cdb[4]), rctd)) {
        log_ratelimited(LOG_DEBUG, "scsi-hd %s: REPORT SUPPORTED OPERATION "
                        "CODES option %u refused for opcode %02x",
                        hd->dev.id, options, cdb[3]);
        bytebuf_free(&b);
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    if (b.failed) {
        bytebuf_free(&b);
        scsi_req_complete_sense(req, SENSE_ABORTED_COMMAND);
        return;
    }
    hd_reply(req, b.data, b.len, alloc_len);
    bytebuf_free(&b);
}

void hd_cmd_maintenance_in(ScsiHd *hd, ScsiRequest *req)
{
    switch (req->cdb[1] & 0x1f) {
    case SCSI_MI_REPORT_SUPPORTED_OPCODES:
        hd_cmd_report_opcodes(hd, req);
        break;
    default:
        /* A service action not served: the opcode is supported, so
         * the field is invalid. */
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        break;
    }
}
