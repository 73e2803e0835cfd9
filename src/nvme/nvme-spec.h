/*
 * NVMe Base Specification 1.4 definitions used by the controller model:
 * register offsets and fields, opcodes, status codes and the layout of the
 * data structures the controller writes to guest memory.
 */
#ifndef STORMIG_NVME_SPEC_H
#define STORMIG_NVME_SPEC_H

#include <stdint.h>

/* 3.1 Register definitions (BAR0 offsets) */
enum {
    NVME_REG_CAP = 0x00,
    NVME_REG_VS = 0x08,
    NVME_REG_INTMS = 0x0c,
    NVME_REG_INTMC = 0x10,
    NVME_REG_CC = 0x14,
    NVME_REG_CSTS = 0x1c,
    NVME_REG_NSSR = 0x20,
    NVME_REG_AQA = 0x24,
    NVME_REG_ASQ = 0x28,
    NVME_REG_ACQ = 0x30,
    NVME_REG_CMBLOC = 0x38,
    NVME_REG_CMBSZ = 0x3c,
    NVME_REG_DBS = 0x1000,          /* first doorbell */
};

#define NVME_VERSION_1_4 0x00010400u

/* 3.1.5 CC */
#define NVME_CC_EN(cc)     ((cc) & 1)
#define NVME_CC_CSS(cc)    (((cc) >> 4) & 7)
#define NVME_CC_MPS(cc)    (((cc) >> 7) & 0xf)
#define NVME_CC_AMS(cc)    (((cc) >> 11) & 7)
#define NVME_CC_SHN(cc)    (((cc) >> 14) & 3)
#define NVME_CC_IOSQES(cc) (((cc) >> 16) & 0xf)
#define NVME_CC_IOCQES(cc) (((cc) >> 20) & 0xf)

/* 3.1.6 CSTS */
#define NVME_CSTS_RDY        (1u << 0)
#define NVME_CSTS_CFS        (1u << 1)
#define NVME_CSTS_SHST_SHIFT 2
#define NVME_CSTS_SHST_MASK  (3u << 2)
#define NVME_SHST_NORMAL     0u
#define NVME_SHST_OCCURRING  1u
#define NVME_SHST_COMPLETE   2u

enum { NVME_AMS_RR = 0, NVME_AMS_WRR = 1 };

/* 4.2 Submission queue entry (64 bytes) and 4.6 completion entry */
typedef struct NvmeCmd {
    uint8_t opcode;
    uint8_t flags;                  /* FUSE 1:0, PSDT 7:6 */
    uint16_t cid;
    uint32_t nsid;
    uint64_t rsvd2;
    uint64_t mptr;
    uint64_t dptr[2];               /* PRP1/PRP2 or SGL1 */
    uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
} NvmeCmd;

typedef struct NvmeCqe {
    uint32_t dw0;
    uint32_t dw1;
    uint16_t sq_head;
    uint16_t sq_id;
    uint16_t cid;
    uint16_t status;                /* phase in bit 0 */
} NvmeCqe;

_Static_assert(sizeof(NvmeCmd) == 64, "SQE is 64 bytes");
_Static_assert(sizeof(NvmeCqe) == 16, "CQE is 16 bytes");

#define NVME_SQES 6                 /* log2(64) */
#define NVME_CQES 4                 /* log2(16) */

#define NVME_PSDT(flags)   (((flags) >> 6) & 3)
enum { NVME_PSDT_PRP = 0, NVME_PSDT_SGL_MPTR_CONTIG = 1,
       NVME_PSDT_SGL_MPTR_SGL = 2 };

/* 5 Admin command opcodes */
enum {
    NVME_ADM_DELETE_SQ = 0x00,
    NVME_ADM_CREATE_SQ = 0x01,
    NVME_ADM_GET_LOG_PAGE = 0x02,
    NVME_ADM_DELETE_CQ = 0x04,
    NVME_ADM_CREATE_CQ = 0x05,
    NVME_ADM_IDENTIFY = 0x06,
    NVME_ADM_ABORT = 0x08,
    NVME_ADM_SET_FEATURES = 0x09,
    NVME_ADM_GET_FEATURES = 0x0a,
    NVME_ADM_ASYNC_EVENT_REQ = 0x0c,
    NVME_ADM_KEEP_ALIVE = 0x18,
    NVME_ADM_DBBUF_CONFIG = 0x7c,
};

/* 6 NVM command set opcodes */
enum {
    NVME_CMD_FLUSH = 0x00,
    NVME_CMD_WRITE = 0x01,
    NVME_CMD_READ = 0x02,
    NVME_CMD_COMPARE = 0x05,
    NVME_CMD_WRITE_ZEROES = 0x08,
    NVME_CMD_DSM = 0x09,
};

/* 4.6.1.2 Status: SCT in bits 10:8, SC in bits 7:0, DNR bit 14 (of the
 * status field without the phase bit). */
#define NVME_SCT_GENERIC  0x000
#define NVME_SCT_CMD      0x100
#define NVME_SCT_MEDIA    0x200
#define NVME_DNR          0x4000

enum {
    NVME_SUCCESS = 0x0000,
    NVME_INVALID_OPCODE = 0x0001,
    NVME_INVALID_FIELD = 0x0002,
    NVME_CID_CONFLICT = 0x0003,
    NVME_DATA_TRANSFER_ERROR = 0x0004,
    NVME_ABORTED_POWER_LOSS = 0x0005,
    NVME_INTERNAL_ERROR = 0x0006,
    NVME_ABORT_REQUESTED = 0x0007,
    NVME_ABORTED_SQ_DELETION = 0x0008,
    NVME_INVALID_NSID = 0x000b,
    NVME_CMD_SEQ_ERROR = 0x000c,
    NVME_INVALID_SGL_SEG_DESCR = 0x000d,
    NVME_INVALID_NUM_SGL_DESCRS = 0x000e,
    NVME_DATA_SGL_LEN_INVALID = 0x000f,
    NVME_SGL_DESCR_TYPE_INVALID = 0x0011,
    NVME_PRP_OFFSET_INVALID = 0x0013,
    NVME_NS_WRITE_PROTECTED = 0x0020,
    NVME_LBA_OUT_OF_RANGE = 0x0080,
    NVME_CAP_EXCEEDED = 0x0081,
    NVME_NS_NOT_READY = 0x0082,

    NVME_CQ_INVALID = 0x0100,
    NVME_INVALID_QID = 0x0101,
    NVME_INVALID_QSIZE = 0x0102,
    NVME_ABORT_LIMIT_EXCEEDED = 0x0103,
    NVME_AER_LIMIT_EXCEEDED = 0x0105,
    NVME_INVALID_LOG_PAGE = 0x0109,
    NVME_INVALID_IRQ_VECTOR = 0x0108,
    NVME_INVALID_QUEUE_DELETION = 0x010c,
    NVME_FEAT_NOT_SAVEABLE = 0x010d,
    NVME_FEAT_NOT_CHANGEABLE = 0x010e,

    NVME_WRITE_FAULT = 0x0280,
    NVME_UNRECOVERED_READ = 0x0281,
    NVME_COMPARE_FAILURE = 0x0285,
};

/* 4.4 SGL descriptor (16 bytes) */
typedef struct NvmeSglDesc {
    uint64_t addr;
    uint32_t len;
    uint8_t rsvd[3];
    uint8_t type;                   /* type 7:4, subtype 3:0 */
} NvmeSglDesc;

enum {
    NVME_SGL_DATA_BLOCK = 0x0,
    NVME_SGL_BIT_BUCKET = 0x1,
    NVME_SGL_SEGMENT = 0x2,
    NVME_SGL_LAST_SEGMENT = 0x3,
};

/* 5.14.1 Log page identifiers */
enum {
    NVME_LOG_ERROR = 0x01,
    NVME_LOG_SMART = 0x02,
    NVME_LOG_FW_SLOT = 0x03,
    NVME_LOG_CHANGED_NS = 0x04,
};

/* 5.21.1 Feature identifiers */
enum {
    NVME_FEAT_ARBITRATION = 0x01,
    NVME_FEAT_POWER_MGMT = 0x02,
    NVME_FEAT_TEMP_THRESH = 0x04,
    NVME_FEAT_ERROR_RECOVERY = 0x05,
    NVME_FEAT_VWC = 0x06,
    NVME_FEAT_NUM_QUEUES = 0x07,
    NVME_FEAT_IRQ_COALESCE = 0x08,
    NVME_FEAT_IRQ_CONFIG = 0x09,
    NVME_FEAT_WRITE_ATOMIC = 0x0a,
    NVME_FEAT_ASYNC_EVENT = 0x0b,
    NVME_FEAT_TIMESTAMP = 0x0e,
    NVME_FEAT_KEEP_ALIVE = 0x0f,
};

/* 5.2 Asynchronous event types and information */
enum {
    NVME_AER_TYPE_ERROR = 0,
    NVME_AER_TYPE_SMART = 1,
    NVME_AER_TYPE_NOTICE = 2,
};
enum {
    NVME_AER_INFO_ERR_INVALID_DB_REG = 0x00,
    NVME_AER_INFO_ERR_INVALID_DB_VALUE = 0x01,
    NVME_AER_INFO_SMART_TEMP = 0x01,
    NVME_AER_INFO_NOTICE_NS_ATTR = 0x00,
};
/* 5.21.1.11 Asynchronous Event Configuration bits */
#define NVME_AEC_SMART_MASK   0xffu
#define NVME_AEC_NS_ATTR      (1u << 8)
#define NVME_SMART_WARN_TEMP  (1u << 1)

/* 5.15.2 Identify CNS values */
enum {
    NVME_ID_CNS_NS = 0x00,
    NVME_ID_CNS_CTRL = 0x01,
    NVME_ID_CNS_NS_ACTIVE_LIST = 0x02,
    NVME_ID_CNS_NS_DESCR_LIST = 0x03,
};

/* Figure 245 NS identification descriptor types */
enum { NVME_NIDT_EUI64 = 1, NVME_NIDT_NGUID = 2, NVME_NIDT_UUID = 3 };

/* 5.14.1.1 Error information log entry (64 bytes) */
typedef struct NvmeErrorLogEntry {
    uint64_t error_count;
    uint16_t sqid;
    uint16_t cid;
    uint16_t status;                /* phase bit 0, as in the CQE */
    uint16_t param_error_location;
    uint64_t lba;
    uint32_t nsid;
    uint8_t vs;
    uint8_t trtype;
    uint8_t rsvd30[2];
    uint64_t cs;
    uint16_t trtype_spec;
    uint8_t rsvd42[22];
} NvmeErrorLogEntry;
_Static_assert(sizeof(NvmeErrorLogEntry) == 64, "error log entry");

#endif
