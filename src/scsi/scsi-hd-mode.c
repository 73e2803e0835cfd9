/* scsi-hd MODE SENSE(6/10) and MODE SELECT(6/10) (SPC-4 6.11-6.14, 7.5;
 * SBC-3 6.4). Pages: 01h read-write error recovery, 08h caching (WCE is
 * the only changeable field), 0Ah control. */
#include "scsi/scsi-hd.h"
#include "util/log.h"

#include <string.h>

enum { PC_CURRENT, PC_CHANGEABLE, PC_DEFAULT, PC_SAVED };

#define MODE_PAGE_MAX 20

/* Writes one mode page; returns its length, 0 for an unknown page. */
static size_t mode_page(ScsiHd *hd, uint8_t page, int pc, uint8_t *p)
{
    memset(p, 0, MODE_PAGE_MAX);
    switch (page) {
    case 0x01:                  /* SBC-3 6.4.7 */
        p[0] = 0x01;
        p[1] = 0x0a;
        if (pc != PC_CHANGEABLE) {
            p[2] = 0x80;        /* AWRE */
        }
        return 12;
    case 0x08:                  /* SBC-3 6.4.5 */
        p[0] = 0x08;
        p[1] = 0x12;
        if (pc == PC_CHANGEABLE || pc == PC_DEFAULT ||
            (pc == PC_CURRENT && hd->wce)) {
            p[2] = 0x04;        /* WCE */
        }
        return 20;
    case 0x0a:                  /* SPC-4 7.5.8 */
        p[0] = 0x0a;
        p[1] = 0x0a;
        return 12;
    default:
        return 0;
    }
}

static const uint8_t all_pages[] = { 0x01, 0x08, 0x0a };

/* Header and block descriptor, sized for MODE SENSE(6) or (10). */
static void mode_header(ScsiHd *hd, bool ten, bool dbd, bool llbaa,
                        ByteBuf *b)
{
    uint8_t dev_param = 0x10;               /* DPOFUA */
    size_t bd_len = dbd ? 0 : (llbaa ? 16 : 8);

    if (hd->read_only) {
        dev_param |= 0x80;                  /* WP */
    }
    if (ten) {
        uint8_t h[8] = { 0, 0, 0, dev_param, llbaa && !dbd ? 1 : 0, 0, 0,
                         (uint8_t)bd_len };
        bytebuf_append(b, h, sizeof(h));
    } else {
        uint8_t h[4] = { 0, 0, dev_param, (uint8_t)bd_len };
        bytebuf_append(b, h, sizeof(h));
    }
    if (bd_len == 8) {
        /* SPC-4 7.5.6.2: short descriptor, FFFFFFFFh when too big. */
        uint32_t n = hd->nb_blocks > 0xffffffffu ? 0xffffffffu :
                     (uint32_t)hd->nb_blocks;
        bytebuf_put_be32(b, n);
        bytebuf_put_be32(b, hd->block_size & 0xffffff);
    } else if (bd_len == 16) {
        bytebuf_put_be64(b, hd->nb_blocks);
        bytebuf_put_be32(b, 0);
        bytebuf_put_be32(b, hd->block_size);
    }
}

static bool mode_pages(ScsiHd *hd, uint8_t page, uint8_t subpage, int pc,
                       ByteBuf *b)
{
    uint8_t p[MODE_PAGE_MAX];
    if (page == 0x3f) {
        /* All pages; subpage FFh asks for all subpages too (none). */
        if (subpage != 0x00 && subpage != 0xff) {
            return false;
        }
        for (size_t i = 0; i < sizeof(all_pages); i++) {
            bytebuf_append(b, p, mode_page(hd, all_pages[i], pc, p));
        }
        return true;
    }
    size_t n = mode_page(hd, page, pc, p);
    if (n == 0 || subpage != 0) {
        return false;
    }
    bytebuf_append(b, p, n);
    return true;
}

void hd_cmd_mode_sense(ScsiHd *hd, ScsiRequest *req)
{
    const uint8_t *cdb = req->cdb;
    bool ten = cdb[0] == SCSI_OP_MODE_SENSE_10;
    bool dbd = cdb[1] & 0x08;
    bool llbaa = ten && (cdb[1] & 0x10);
    int pc = cdb[2] >> 6;
    size_t alloc_len = ten ? ld_be16(&cdb[7]) : cdb[4];
    ByteBuf b;

    if (pc == PC_SAVED) {
        /* SPC-4 6.11: no saved pages. */
        scsi_req_complete_sense(req, SENSE_SAVING_PARAMS_UNSUP);
        return;
    }
    bytebuf_init(&b);
    mode_header(hd, ten, dbd, llbaa, &b);
    if (!mode_pages(hd, cdb[2] & 0x3f, cdb[3], pc, &b) || b.failed) {
        bool failed = b.failed;
        bytebuf_free(&b);
        scsi_req_complete_sense(req, failed ? SENSE_ABORTED_COMMAND :
                                SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    /* MODE DATA LENGTH excludes itself. */
    if (ten) {
        st_be16(b.data, (uint16_t)(b.len - 2));
    } else {
        b.data[0] = (uint8_t)(b.len - 1);
    }
    hd_reply(req, b.data, b.len, alloc_len);
    bytebuf_free(&b);
}

/* Checks one page of a MODE SELECT parameter list against the current
 * values; *wce gets the requested WCE. Returns a sense or NO SENSE. */
static ScsiSense mode_select_page(ScsiHd *hd, const uint8_t *p, size_t len,
                                  bool *wce)
{
    uint8_t cur[MODE_PAGE_MAX];
    uint8_t page = p[0] & 0x3f;
    size_t n;

    if (p[0] & 0x40) {
        return SENSE_INVALID_FIELD_IN_PARAM;    /* no subpages */
    }
    n = mode_page(hd, page, PC_CURRENT, cur);
    if (n == 0 || len != n || p[1] != cur[1]) {
        return SENSE_INVALID_FIELD_IN_PARAM;
    }
    if (page == 0x08) {
        *wce = p[2] & 0x04;
        cur[2] = (cur[2] & ~0x04) | (p[2] & 0x04);
    }
    /* SPC-4 6.11: any non-changeable field must keep its value. PS is
     * reserved in MODE SELECT. */
    if (memcmp(&p[2], &cur[2], n - 2) != 0) {
        return SENSE_INVALID_FIELD_IN_PARAM;
    }
    return SENSE_NO_SENSE;
}

static ScsiSense mode_select_parse(ScsiHd *hd, const uint8_t *d, size_t len,
                                   bool ten, bool *wce)
{
    size_t hdr = ten ? 8 : 4;
    if (len < hdr) {
        return SENSE_PARAM_LIST_LENGTH_ERROR;
    }
    size_t bd_len = ten ? ld_be16(&d[6]) : d[3];
    size_t bd_size = ten && (d[4] & 0x01) ? 16 : 8;
    if (bd_len > len - hdr) {
        return SENSE_PARAM_LIST_LENGTH_ERROR;
    }
    if (bd_len % bd_size || bd_len > bd_size) {
        return SENSE_INVALID_FIELD_IN_PARAM;
    }
    if (bd_len) {
        /* The block length may not change. */
        const uint8_t *bd = d + hdr;
        uint32_t bl = bd_size == 16 ? ld_be32(&bd[12]) :
                      (ld_be32(&bd[4]) & 0xffffff);
        if (bl != hd->block_size) {
            return SENSE_INVALID_FIELD_IN_PARAM;
        }
    }
    for (size_t off = hdr + bd_len; off < len;) {
        if (len - off < 2 || d[off + 1] + 2u > len - off) {
            return SENSE_PARAM_LIST_LENGTH_ERROR;
        }
        size_t plen = d[off + 1] + 2u;
        ScsiSense s = mode_select_page(hd, &d[off], plen, wce);
        if (s.key) {
            return s;
        }
        off += plen;
    }
    return SENSE_NO_SENSE;
}

void hd_cmd_mode_select(ScsiHd *hd, ScsiRequest *req)
{
    const uint8_t *cdb = req->cdb;
    bool ten = cdb[0] == SCSI_OP_MODE_SELECT_10;
    size_t len = ten ? ld_be16(&cdb[7]) : cdb[4];
    uint8_t d[256 + 8];

    /* SPC-4 6.9: PF=0 (vendor format) and SP=1 (no saved pages). */
    if (!(cdb[1] & 0x10) || (cdb[1] & 0x01)) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    if (len == 0) {
        scsi_req_complete_good(req, 0);
        return;
    }
    if (len > sizeof(d)) {
        scsi_req_complete_sense(req, SENSE_PARAM_LIST_LENGTH_ERROR);
        return;
    }
    if (req->dir != SCSI_DIR_TO_DEV || req->data_len < len) {
        req->response = SCSI_RESP_OVERRUN;
        scsi_req_complete(req);
        return;
    }
    scsi_req_get_data(req, d, len);
    bool wce = hd->wce;
    ScsiSense s = mode_select_parse(hd, d, len, ten, &wce);
    if (s.key) {
        log_ratelimited(LOG_DEBUG, "scsi-hd %s: MODE SELECT refused "
                        "(%02x/%02x)", hd->dev.id, s.asc, s.ascq);
        scsi_req_complete_sense(req, s);
        return;
    }
    hd->wce = wce;
    scsi_req_complete_good(req, len);
}
