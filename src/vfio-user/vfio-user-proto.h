/*
 * vfio-user wire format (QEMU docs/interop/vfio-user.rst), shared by the
 * server and the client library. All fields are in host byte order (spec:
 * "Protocol Specification"); structs are copied in and out of message
 * buffers with memcpy, never cast onto them, so alignment never matters.
 */
#ifndef STORMIG_VFIO_USER_PROTO_H
#define STORMIG_VFIO_USER_PROTO_H

#include <stdint.h>

/* Spec "VFIO_USER_VERSION": this implementation speaks 0.1. */
#define VFU_PROTO_MAJOR 0
#define VFU_PROTO_MINOR 1

/* Spec "Commands". */
enum {
    VFU_CMD_VERSION = 1,
    VFU_CMD_DMA_MAP = 2,
    VFU_CMD_DMA_UNMAP = 3,
    VFU_CMD_DEVICE_GET_INFO = 4,
    VFU_CMD_DEVICE_GET_REGION_INFO = 5,
    VFU_CMD_DEVICE_GET_REGION_IO_FDS = 6,
    VFU_CMD_DEVICE_GET_IRQ_INFO = 7,
    VFU_CMD_DEVICE_SET_IRQS = 8,
    VFU_CMD_REGION_READ = 9,
    VFU_CMD_REGION_WRITE = 10,
    VFU_CMD_DMA_READ = 11,
    VFU_CMD_DMA_WRITE = 12,
    VFU_CMD_DEVICE_RESET = 13,
    VFU_CMD_REGION_WRITE_MULTI = 15,
    VFU_CMD_DEVICE_FEATURE = 16,
    VFU_CMD_MIG_DATA_READ = 17,
    VFU_CMD_MIG_DATA_WRITE = 18,
    VFU_CMD_MAX = 18,
};

/* Spec "Header": flags bits 0-3 type, 4 no-reply, 5 error. */
#define VFU_FLAG_TYPE_MASK      0xfu
#define VFU_FLAG_TYPE_COMMAND   0x0u
#define VFU_FLAG_TYPE_REPLY     0x1u
#define VFU_FLAG_NO_REPLY       (1u << 4)
#define VFU_FLAG_ERROR          (1u << 5)

typedef struct VfuHeader {
    uint16_t msg_id;
    uint16_t cmd;
    uint32_t size;          /* whole message, header included */
    uint32_t flags;
    uint32_t error;         /* errno, valid with VFU_FLAG_ERROR */
} VfuHeader;

typedef struct VfuVersion {
    uint16_t major;
    uint16_t minor;
    /* followed by optional NUL-terminated JSON */
} VfuVersion;

/* Spec "VFIO_USER_DMA_MAP". */
#define VFU_DMA_FLAG_READ   (1u << 0)
#define VFU_DMA_FLAG_WRITE  (1u << 1)

typedef struct VfuDmaMap {
    uint32_t argsz;
    uint32_t flags;
    uint64_t offset;        /* in the passed fd */
    uint64_t addr;          /* iova */
    uint64_t size;
} VfuDmaMap;

/* Spec "VFIO_USER_DMA_UNMAP". The current spec leaves flags unused; the
 * two bits below are those of earlier revisions (and <linux/vfio.h>):
 * GET_DIRTY_BITMAP appends a VfuBitmap and returns the region's bitmap,
 * ALL unmaps everything (addr and size zero). */
#define VFU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP (1u << 0)
#define VFU_DMA_UNMAP_FLAG_ALL              (1u << 1)

typedef struct VfuDmaUnmap {
    uint32_t argsz;
    uint32_t flags;
    uint64_t addr;
    uint64_t size;
} VfuDmaUnmap;

typedef struct VfuBitmap {
    uint64_t pgsize;
    uint64_t size;          /* bytes of bitmap data that follow */
} VfuBitmap;

/* Spec "VFIO_USER_DEVICE_GET_INFO". */
#define VFU_DEVICE_FLAG_RESET   (1u << 0)
#define VFU_DEVICE_FLAG_PCI     (1u << 1)

typedef struct VfuDeviceInfo {
    uint32_t argsz;
    uint32_t flags;
    uint32_t num_regions;
    uint32_t num_irqs;
} VfuDeviceInfo;

/* PCI region indices (VFIO_PCI_*_REGION_INDEX). */
enum {
    VFU_PCI_BAR0_REGION = 0,
    VFU_PCI_BAR5_REGION = 5,
    VFU_PCI_ROM_REGION = 6,
    VFU_PCI_CONFIG_REGION = 7,
    VFU_PCI_VGA_REGION = 8,
    VFU_PCI_NUM_REGIONS = 9,
};

/* Spec "VFIO_USER_DEVICE_GET_REGION_INFO". */
#define VFU_REGION_FLAG_READ    (1u << 0)
#define VFU_REGION_FLAG_WRITE   (1u << 1)
#define VFU_REGION_FLAG_MMAP    (1u << 2)
#define VFU_REGION_FLAG_CAPS    (1u << 3)

typedef struct VfuRegionInfo {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t cap_offset;
    uint64_t size;
    uint64_t offset;
} VfuRegionInfo;

/* Spec "VFIO cap header format" / "VFIO sparse mmap cap header". */
#define VFU_REGION_CAP_SPARSE_MMAP 1
typedef struct VfuCapHeader {
    uint16_t id;
    uint16_t version;
    uint32_t next;
} VfuCapHeader;

typedef struct VfuSparseMmap {
    uint32_t nr_areas;
    uint32_t reserved;
} VfuSparseMmap;

typedef struct VfuSparseArea {
    uint64_t offset;
    uint64_t size;
} VfuSparseArea;

/* Spec "VFIO_USER_DEVICE_GET_REGION_IO_FDS" (request only: unsupported). */
typedef struct VfuRegionIoFds {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t count;
} VfuRegionIoFds;

/* PCI interrupt indices (VFIO_PCI_*_IRQ_INDEX). */
enum {
    VFU_PCI_INTX_IRQ = 0,
    VFU_PCI_MSI_IRQ = 1,
    VFU_PCI_MSIX_IRQ = 2,
    VFU_PCI_ERR_IRQ = 3,
    VFU_PCI_REQ_IRQ = 4,
    VFU_PCI_NUM_IRQS = 5,
};

/* Spec "VFIO_USER_DEVICE_GET_IRQ_INFO". */
#define VFU_IRQ_INFO_EVENTFD    (1u << 0)
#define VFU_IRQ_INFO_MASKABLE   (1u << 1)
#define VFU_IRQ_INFO_AUTOMASKED (1u << 2)
#define VFU_IRQ_INFO_NORESIZE   (1u << 3)

typedef struct VfuIrqInfo {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t count;
} VfuIrqInfo;

/* Spec "VFIO_USER_DEVICE_SET_IRQS". */
#define VFU_IRQ_SET_DATA_NONE       (1u << 0)
#define VFU_IRQ_SET_DATA_BOOL       (1u << 1)
#define VFU_IRQ_SET_DATA_EVENTFD    (1u << 2)
#define VFU_IRQ_SET_ACTION_MASK     (1u << 3)
#define VFU_IRQ_SET_ACTION_UNMASK   (1u << 4)
#define VFU_IRQ_SET_ACTION_TRIGGER  (1u << 5)
#define VFU_IRQ_SET_DATA_MASK   0x7u
#define VFU_IRQ_SET_ACTION_MASKS 0x38u

typedef struct VfuIrqSet {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t start;
    uint32_t count;
    /* DATA_BOOL: count bytes follow */
} VfuIrqSet;

/* Spec "VFIO_USER_REGION_READ" / "VFIO_USER_REGION_WRITE". */
typedef struct VfuRegionAccess {
    uint64_t offset;
    uint32_t region;
    uint32_t count;
    /* data follows (write request, read reply) */
} VfuRegionAccess;

/* Spec "VFIO_USER_DMA_READ" / "VFIO_USER_DMA_WRITE". */
typedef struct VfuDmaAccess {
    uint64_t addr;
    uint64_t count;
} VfuDmaAccess;

/* Spec "VFIO_USER_DEVICE_FEATURE". */
#define VFU_FEATURE_INDEX_MASK  0xffffu
#define VFU_FEATURE_GET         (1u << 16)
#define VFU_FEATURE_SET         (1u << 17)
#define VFU_FEATURE_PROBE       (1u << 18)

enum {
    VFU_FEATURE_MIGRATION = 1,
    VFU_FEATURE_MIG_DEVICE_STATE = 2,
    VFU_FEATURE_DMA_LOGGING_START = 6,
    VFU_FEATURE_DMA_LOGGING_STOP = 7,
    VFU_FEATURE_DMA_LOGGING_REPORT = 8,
};

typedef struct VfuFeature {
    uint32_t argsz;
    uint32_t flags;
    /* feature data follows */
} VfuFeature;

/* Spec "VFIO_DEVICE_FEATURE_MIGRATION". */
#define VFU_MIGRATION_STOP_COPY (1u << 0)
#define VFU_MIGRATION_P2P       (1u << 1)
#define VFU_MIGRATION_PRE_COPY  (1u << 2)

/* Spec "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE": the FSM states. */
typedef enum VfuMigState {
    VFU_MIG_ERROR = 0,
    VFU_MIG_STOP = 1,
    VFU_MIG_RUNNING = 2,
    VFU_MIG_STOP_COPY = 3,
    VFU_MIG_RESUMING = 4,
    VFU_MIG_RUNNING_P2P = 5,
    VFU_MIG_PRE_COPY = 6,
    VFU_MIG_PRE_COPY_P2P = 7,
} VfuMigState;

typedef struct VfuMigStateData {
    uint32_t device_state;
    uint32_t data_fd;       /* unused by vfio-user */
} VfuMigStateData;

/* Spec "VFIO_DEVICE_FEATURE_DMA_LOGGING_START / STOP / REPORT". */
typedef struct VfuLoggingStart {
    uint64_t page_size;
    uint32_t num_ranges;
    uint32_t reserved;
    /* num_ranges VfuLoggingRange follow */
} VfuLoggingStart;

typedef struct VfuLoggingRange {
    uint64_t iova;
    uint64_t length;
} VfuLoggingRange;

typedef struct VfuLoggingReport {
    uint64_t iova;
    uint64_t length;
    uint64_t page_size;
    /* reply: the bitmap (u64 words) follows */
} VfuLoggingReport;

/* Spec "VFIO_USER_MIG_DATA_READ" / "VFIO_USER_MIG_DATA_WRITE". */
typedef struct VfuMigData {
    uint32_t argsz;
    uint32_t size;
    /* data follows (read reply, write request) */
} VfuMigData;

_Static_assert(sizeof(VfuHeader) == 16, "header");
_Static_assert(sizeof(VfuDmaMap) == 32, "dma map");
_Static_assert(sizeof(VfuDmaUnmap) == 24, "dma unmap");
_Static_assert(sizeof(VfuRegionInfo) == 32, "region info");
_Static_assert(sizeof(VfuIrqSet) == 20, "irq set");
_Static_assert(sizeof(VfuRegionAccess) == 16, "region access");
_Static_assert(sizeof(VfuLoggingStart) == 16, "logging start");
_Static_assert(sizeof(VfuLoggingReport) == 24, "logging report");

/* Limits this implementation offers in its VERSION reply. */
#define VFU_MAX_DATA_XFER   (1u << 20)  /* spec default max_data_xfer_size */
#define VFU_MAX_MSG_FDS     16u
#define VFU_MAX_DMA_MAPS    1024u
/* Largest message either side accepts: a full data transfer plus the
 * largest fixed part of any command. */
#define VFU_MAX_MSG_SIZE    (VFU_MAX_DATA_XFER + 4096u)

const char *vfu_cmd_name(unsigned cmd);

#endif
