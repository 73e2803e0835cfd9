/*
 * Identify (NVMe 1.4 section 5.15): controller, namespace, active
 * namespace list and namespace identification descriptors.
 */
#include <stdio.h>
#include <string.h>

#include "nvme/nvme-int.h"

#define ID_SIZE 4096

static void put16(uint8_t *b, size_t off, uint16_t v)
{
    memcpy(b + off, &v, 2);
}

static void put32(uint8_t *b, size_t off, uint32_t v)
{
    memcpy(b + off, &v, 4);
}

static void put64(uint8_t *b, size_t off, uint64_t v)
{
    memcpy(b + off, &v, 8);
}

/* ASCII fields are space padded, not NUL terminated (1.5 conventions). */
static void put_ascii(uint8_t *b, size_t off, size_t len, const char *s)
{
    memset(b + off, ' ', len);
    memcpy(b + off, s, strnlen(s, len));
}

static void identify_ctrl(const NvmeCtrl *ctrl, uint8_t *id)
{
    char nqn[256];

    put16(id, 0, 0x1b36);                   /* VID (as QEMU's model) */
    put16(id, 2, 0x1af4);                   /* SSVID */
    put_ascii(id, 4, 20, ctrl->serial);     /* SN */
    put_ascii(id, 24, 40, "stormig NVMe controller");
    put_ascii(id, 64, 8, "0.1");            /* FR */
    id[72] = 6;                             /* RAB */
    id[77] = NVME_MDTS;
    put16(id, 78, 1);                       /* CNTLID */
    put32(id, 80, NVME_VERSION_1_4);
    put32(id, 92, 1u << 8);                 /* OAES: NS attribute notices */
    id[111] = 1;                            /* CNTRLTYPE: I/O controller */
    put16(id, 256, 1u << 8);                /* OACS: Doorbell Buffer Config */
    id[258] = 3;                            /* ACL */
    id[259] = NVME_AERL;
    id[260] = (1 << 1) | 1;                 /* FRMW: one slot, read only */
    id[261] = 1 << 2;                       /* LPA: extended data (offset) */
    id[262] = NVME_ERRLOG_ENTRIES - 1;      /* ELPE */
    id[263] = 0;                            /* NPSS: one power state */
    put16(id, 266, NVME_TEMP_WARN);         /* WCTEMP */
    put16(id, 268, NVME_TEMP_WARN + 30);    /* CCTEMP */
    put16(id, 320, NVME_KAS_MS / 100);      /* KAS */
    id[512] = (NVME_SQES << 4) | NVME_SQES; /* SQES */
    id[513] = (NVME_CQES << 4) | NVME_CQES; /* CQES */
    put16(id, 514, NVME_MAX_INFLIGHT);      /* MAXCMD */
    put32(id, 516, ctrl->nr_ns);            /* NN */
    /* ONCS: Compare, Dataset Management, Write Zeroes, Timestamp */
    put16(id, 520, (1u << 0) | (1u << 2) | (1u << 3) | (1u << 6));
    id[525] = 0x7;              /* VWC present, flush of all namespaces */
    /* SGLS: supported without alignment, longer SGL than data allowed */
    put32(id, 536, 1u | (1u << 18));
    snprintf(nqn, sizeof(nqn), "nqn.2024-01.org.stormig:nvme:%s",
             ctrl->serial);
    memcpy(id + 768, nqn, strlen(nqn));     /* SUBNQN */
    put16(id, 2048, 2500);                  /* PSD0.MP: 25 W */
}

static void identify_ns(const NvmeNamespace *ns, uint8_t *id)
{
    put64(id, 0, ns->nsze);                 /* NSZE */
    put64(id, 8, ns->nsze);                 /* NCAP */
    put64(id, 16, ns->nsze);                /* NUSE */
    id[25] = 0;                             /* NLBAF: one format */
    id[26] = 0;                             /* FLBAS: format 0 */
    put32(id, 128, (uint32_t)ns->lbads << 16);  /* LBAF0: no metadata */
}

/* A stable 128-bit identifier from the serial and nsid (FNV-1a), so the
 * destination of a migration reports the same NGUID/UUID. */
static void ns_unique_id(const NvmeCtrl *ctrl, uint32_t nsid, uint8_t salt,
                         uint8_t out[16])
{
    uint64_t h = 0xcbf29ce484222325ull ^ salt;
    for (unsigned i = 0; i < 16; i++) {
        const char *s = ctrl->serial;
        for (; *s; s++) {
            h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
        }
        h = (h ^ (nsid + i)) * 0x100000001b3ull;
        out[i] = (uint8_t)(h >> 32);
    }
}

static void identify_ns_descs(const NvmeCtrl *ctrl, uint32_t nsid,
                              uint8_t *id)
{
    id[0] = NVME_NIDT_NGUID;                /* Figure 248 */
    id[1] = 16;
    ns_unique_id(ctrl, nsid, 1, id + 4);
    id[20] = NVME_NIDT_UUID;
    id[21] = 16;
    ns_unique_id(ctrl, nsid, 2, id + 24);
    id[24 + 6] = (id[24 + 6] & 0x0f) | 0x40;    /* RFC 4122 version 4 */
    id[24 + 8] = (id[24 + 8] & 0x3f) | 0x80;    /* variant */
}

static uint16_t identify_build(NvmeRequest *req, uint8_t *id)
{
    NvmeCtrl *ctrl = req->ctrl;
    uint32_t nsid = req->cmd.nsid;
    uint8_t cns = req->cmd.cdw10 & 0xff;

    switch (cns) {
    case NVME_ID_CNS_CTRL:
        identify_ctrl(ctrl, id);
        return NVME_SUCCESS;
    case NVME_ID_CNS_NS:
    case NVME_ID_CNS_NS_DESCR_LIST: {
        NvmeNamespace *ns = nvme_ns_get(ctrl, nsid);
        if (!ns) {
            return NVME_INVALID_NSID | NVME_DNR;
        }
        if (cns == NVME_ID_CNS_NS) {
            identify_ns(ns, id);
        } else {
            identify_ns_descs(ctrl, nsid, id);
        }
        return NVME_SUCCESS;
    }
    case NVME_ID_CNS_NS_ACTIVE_LIST: {
        if (nsid >= 0xfffffffeu) {
            return NVME_INVALID_NSID | NVME_DNR;   /* 5.15.2.2 */
        }
        unsigned n = 0;
        for (uint32_t i = 0; i < ctrl->nr_ns && n < ID_SIZE / 4; i++) {
            if (ctrl->ns[i].nsid > nsid) {
                put32(id, 4 * n++, ctrl->ns[i].nsid);
            }
        }
        return NVME_SUCCESS;
    }
    default:
        return NVME_INVALID_FIELD | NVME_DNR;
    }
}

uint16_t nvme_identify(NvmeRequest *req)
{
    uint8_t id[ID_SIZE] = { 0 };
    uint16_t st = identify_build(req, id);
    if (st) {
        return st;
    }
    return nvme_data_to_guest(req, id, sizeof(id));
}
