/*
 * The transport-neutral SCSI layer: a bus (one controller's target with a
 * table of LUNs), LUNs (scsi-hd, scsi-block, ...) and requests.
 *
 * Threads: a bus and its LUNs are created, added and removed on the main
 * loop. Requests and task management functions are submitted on, and
 * complete on, the EventLoop the bus is attached to (the controller's I/O
 * thread; the main loop until scsi_bus_attach_loop says otherwise). The
 * controller attaches the bus when its data path starts and detaches it
 * (which drains every LUN) when it stops.
 *
 * Memory: the controller owns every ScsiRequest and the buffers it points
 * to; they must stay valid until the completion callback ran. Each request
 * completes exactly once, possibly before scsi_req_submit() returns (e.g. a
 * CDB rejected with ILLEGAL REQUEST).
 */
#ifndef STORMIG_SCSI_SCSI_H
#define STORMIG_SCSI_SCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "scsi/scsi-defs.h"
#include "util/bytes.h"
#include "util/error.h"
#include "util/loop.h"

#define SCSI_CDB_MAX 32         /* virtio-scsi's default cdb_size */
#define SCSI_SENSE_MAX 96       /* virtio-scsi's default sense_size */
#define SCSI_FIXED_SENSE_LEN 18 /* SPC-4 4.5.3 */
/* LUNs 0..16383: peripheral (< 256) or flat space addressing (SAM-5
 * 4.7.7), as virtio-scsi carries them. */
#define SCSI_BUS_MAX_LUNS 16384

typedef struct ScsiBus ScsiBus;
typedef struct ScsiLun ScsiLun;
typedef struct ScsiRequest ScsiRequest;

/* ---- Sense data ------------------------------------------------------ */

typedef struct ScsiSense {
    uint8_t key;
    uint8_t asc;
    uint8_t ascq;
} ScsiSense;

#define SCSI_SENSE(k, a, q) ((ScsiSense){ .key = (k), .asc = (a), .ascq = (q) })
/* The common conditions (SPC-4 annex D). */
#define SENSE_NO_SENSE                SCSI_SENSE(0x0, 0x00, 0x00)
#define SENSE_NOT_READY_NO_MEDIUM     SCSI_SENSE(0x2, 0x3a, 0x00)
#define SENSE_NOT_READY_MANUAL_INTERVENTION SCSI_SENSE(0x2, 0x04, 0x03)
#define SENSE_NOT_READY_IN_PROGRESS   SCSI_SENSE(0x2, 0x04, 0x07)
#define SENSE_NOT_READY_INIT_REQUIRED SCSI_SENSE(0x2, 0x04, 0x02)
/* ASYMMETRIC ACCESS STATE TRANSITION: the initiator retries. */
#define SENSE_NOT_READY_TRANSITION    SCSI_SENSE(0x2, 0x04, 0x0a)
#define SENSE_MEDIUM_ERROR_READ       SCSI_SENSE(0x3, 0x11, 0x00)
#define SENSE_MEDIUM_ERROR_WRITE      SCSI_SENSE(0x3, 0x0c, 0x00)
#define SENSE_INVALID_OPCODE          SCSI_SENSE(0x5, 0x20, 0x00)
#define SENSE_LBA_OUT_OF_RANGE        SCSI_SENSE(0x5, 0x21, 0x00)
#define SENSE_INVALID_FIELD_IN_CDB    SCSI_SENSE(0x5, 0x24, 0x00)
#define SENSE_LUN_NOT_SUPPORTED       SCSI_SENSE(0x5, 0x25, 0x00)
#define SENSE_INVALID_FIELD_IN_PARAM  SCSI_SENSE(0x5, 0x26, 0x00)
#define SENSE_PARAM_LIST_LENGTH_ERROR SCSI_SENSE(0x5, 0x1a, 0x00)
#define SENSE_SAVING_PARAMS_UNSUP     SCSI_SENSE(0x5, 0x39, 0x00)
#define SENSE_UA_POWER_ON_RESET       SCSI_SENSE(0x6, 0x29, 0x00)
#define SENSE_UA_BUS_DEVICE_RESET     SCSI_SENSE(0x6, 0x29, 0x03)
#define SENSE_UA_I_T_NEXUS_LOSS       SCSI_SENSE(0x6, 0x29, 0x07)
#define SENSE_UA_MODE_PARAMS_CHANGED  SCSI_SENSE(0x6, 0x2a, 0x01)
#define SENSE_UA_CAPACITY_CHANGED     SCSI_SENSE(0x6, 0x2a, 0x09)
#define SENSE_UA_LUN_DATA_CHANGED     SCSI_SENSE(0x6, 0x3f, 0x0e)
#define SENSE_WRITE_PROTECTED         SCSI_SENSE(0x7, 0x27, 0x00)
#define SENSE_SPACE_ALLOC_FAILED      SCSI_SENSE(0x7, 0x27, 0x07)
#define SENSE_ABORTED_COMMAND         SCSI_SENSE(0xb, 0x00, 0x00)
#define SENSE_ABORTED_IO_ERROR        SCSI_SENSE(0xb, 0x00, 0x06)
#define SENSE_ABORTED_NEXUS_LOSS      SCSI_SENSE(0xb, 0x47, 0x7f)
#define SENSE_MISCOMPARE_VERIFY       SCSI_SENSE(0xe, 0x1d, 0x00)

/* Writes fixed-format sense (SPC-4 4.5.3) into buf; returns the bytes
 * written, at most len and at most SCSI_FIXED_SENSE_LEN. */
size_t scsi_sense_build_fixed(uint8_t *buf, size_t len, ScsiSense sense);
/* The same with VALID = 1 and the INFORMATION field (bytes 3..6) set. */
size_t scsi_sense_build_fixed_info(uint8_t *buf, size_t len, ScsiSense sense,
                                   uint32_t info);
/* Reads key/asc/ascq from fixed (0x70/0x71) or descriptor (0x72/0x73)
 * sense data. False when buf holds neither. */
bool scsi_sense_parse(const uint8_t *buf, size_t len, ScsiSense *out);
static inline bool scsi_sense_equal(ScsiSense a, ScsiSense b)
{
    return a.key == b.key && a.asc == b.asc && a.ascq == b.ascq;
}

/* ---- Requests -------------------------------------------------------- */

typedef enum ScsiDataDir {
    SCSI_DIR_NONE,
    SCSI_DIR_FROM_DEV,         /* data-in: device to initiator (READ) */
    SCSI_DIR_TO_DEV,           /* data-out: initiator to device (WRITE) */
} ScsiDataDir;

/* SAM-5 8.6 task attributes. */
typedef enum ScsiTaskAttr {
    SCSI_TASK_SIMPLE,
    SCSI_TASK_ORDERED,
    SCSI_TASK_HEAD_OF_QUEUE,
    SCSI_TASK_ACA,
} ScsiTaskAttr;

/* How the request ended, besides the SCSI status: the service response of
 * SAM-5 5.1, mapped by the controller to its transport's codes. */
typedef enum ScsiResponse {
    SCSI_RESP_OK,               /* status/sense/residual are valid */
    SCSI_RESP_ABORTED,          /* aborted by a TMF or a reset */
    SCSI_RESP_BAD_TARGET,       /* no such LUN */
    SCSI_RESP_OVERRUN,          /* buffers smaller than the CDB's transfer
                                   length, or the wrong data direction */
    SCSI_RESP_FAILURE,          /* transport/service delivery failure */
} ScsiResponse;

typedef void ScsiCompleteFunc(ScsiRequest *req, void *opaque);

struct ScsiRequest {
    /* Filled by the controller before scsi_req_submit(). */
    uint8_t cdb[SCSI_CDB_MAX];
    uint8_t cdb_len;
    ScsiDataDir dir;
    const struct iovec *iov;    /* data-in or data-out buffers */
    int iovcnt;
    size_t data_len;            /* total bytes the iovecs hold */
    uint64_t tag;
    ScsiTaskAttr attr;
    ScsiCompleteFunc *complete;
    void *opaque;

    /* Filled by the LUN before the completion runs. */
    ScsiResponse response;
    uint8_t status;             /* SAM_STAT_* */
    uint8_t sense[SCSI_SENSE_MAX];
    uint32_t sense_len;
    size_t residual;            /* data_len minus the bytes transferred */

    /* Private to the SCSI layer. */
    ScsiLun *lun;
    ScsiRequest *next_in_flight;
    uint64_t seq;
    bool cancelled;
    void *lun_priv;             /* the LUN implementation's own state */
};

/* Clears the result fields; call before filling a reused request. */
void scsi_req_init(ScsiRequest *req);
/* Submits req to lun. Completes exactly once through req->complete. A
 * request to a NULL lun completes with SCSI_RESP_BAD_TARGET. */
void scsi_req_submit(ScsiLun *lun, ScsiRequest *req);

/* For LUN implementations. */
/* Sets CHECK CONDITION and fixed-format sense. */
void scsi_req_set_sense(ScsiRequest *req, ScsiSense sense);
/* Copies data-in to the request's buffers, truncated at data_len (the
 * allocation length rule: never overrun the initiator's buffer); sets the
 * residual. Returns the bytes copied. */
size_t scsi_req_put_data(ScsiRequest *req, const void *buf, size_t len);
/* Copies up to len bytes of data-out into buf; returns the bytes copied. */
size_t scsi_req_get_data(ScsiRequest *req, void *buf, size_t len);
/* Ends the request: unlinks it and calls req->complete. */
void scsi_req_complete(ScsiRequest *req);
/* Shorthands: GOOD with a residual; CHECK CONDITION with sense. */
void scsi_req_complete_good(ScsiRequest *req, size_t transferred);
void scsi_req_complete_sense(ScsiRequest *req, ScsiSense sense);
/* CHECK CONDITION with the sense's INFORMATION field set (e.g. the offset
 * of a miscompare, SBC-3 5.2). */
void scsi_req_complete_sense_info(ScsiRequest *req, ScsiSense sense,
                                  uint32_t info);

/* Fills dst with the part [offset, offset + len) of src. Returns the
 * number of entries used, or -1 when dst_max is too small or src holds
 * less than offset + len bytes. */
int scsi_iov_slice(const struct iovec *src, int src_cnt, size_t offset,
                   size_t len, struct iovec *dst, int dst_max);
size_t scsi_iov_to_buf(const struct iovec *iov, int cnt, size_t offset,
                       void *buf, size_t len);
size_t scsi_iov_from_buf(const struct iovec *iov, int cnt, size_t offset,
                         const void *buf, size_t len);

/* CDB helpers (SBC-3 4.2.2 / SPC-4 4.2.5): the length of a CDB from its
 * group code (0 when the group is reserved/vendor specific). */
size_t scsi_cdb_length(uint8_t opcode);

/* ---- LUNs -------------------------------------------------------------- */

/* Reset kinds a LUN sees (SAM-5 6.3, 7.x). */
typedef enum ScsiResetKind {
    SCSI_RESET_LUN,             /* LOGICAL UNIT RESET */
    SCSI_RESET_I_T_NEXUS,       /* I_T NEXUS RESET */
    SCSI_RESET_BUS,             /* controller/bus reset (power-on like) */
} ScsiResetKind;

typedef struct ScsiLunOps {
    /* Starts req; completes it later (or at once) via scsi_req_complete. */
    void (*submit)(ScsiLun *lun, ScsiRequest *req);
    /* Best effort: ask an in-flight request to stop. It still completes
     * exactly once (with SCSI_RESP_ABORTED when it really stopped). May be
     * NULL: the request then runs to its end. */
    void (*cancel)(ScsiLun *lun, ScsiRequest *req);
    /* After a reset (in-flight requests already aborted or finished):
     * reset device state and set the unit attention the kind implies. */
    void (*reset)(ScsiLun *lun, ScsiResetKind kind);
    /* The data path moves to loop (NULL: detach). Nothing is in flight. */
    bool (*attach_loop)(ScsiLun *lun, EventLoop *loop, Error **errp);
    /* Runs loop iterations until no request of this LUN is in flight. */
    void (*drain)(ScsiLun *lun);
} ScsiLunOps;

struct ScsiLun {
    const ScsiLunOps *ops;
    const char *type;           /* "scsi-hd", "scsi-block" */
    ScsiBus *bus;               /* NULL until added */
    uint16_t id;                /* LUN number on the bus */
    EventLoop *loop;            /* where requests run */
    EventLoop *home_loop;       /* used while the bus is detached */
    ScsiRequest *in_flight;     /* requests submitted, not completed */
    unsigned n_in_flight;
    void *opaque;               /* the implementation's object */
};

/* home_loop: the loop requests run on while no I/O thread is attached
 * (normally the daemon's main loop, Device.loop). */
void scsi_lun_init(ScsiLun *lun, const ScsiLunOps *ops, const char *type,
                   EventLoop *home_loop, void *opaque);
/* Drains the LUN through ops->drain (or by running its loop). */
void scsi_lun_drain(ScsiLun *lun);

/* ---- Task management (SAM-5 7) ---------------------------------------- */

typedef enum ScsiTmfFunc {
    SCSI_TMF_ABORT_TASK,
    SCSI_TMF_ABORT_TASK_SET,
    SCSI_TMF_CLEAR_TASK_SET,
    SCSI_TMF_LOGICAL_UNIT_RESET,
    SCSI_TMF_I_T_NEXUS_RESET,
    SCSI_TMF_QUERY_TASK,
    SCSI_TMF_QUERY_TASK_SET,
} ScsiTmfFunc;

typedef enum ScsiTmfResult {
    SCSI_TMF_COMPLETE,          /* function complete */
    SCSI_TMF_SUCCEEDED,         /* QUERY: a matching task exists */
    SCSI_TMF_REJECTED,          /* function not supported */
    SCSI_TMF_INCORRECT_LUN,
    SCSI_TMF_FAILED,
} ScsiTmfResult;

typedef void ScsiTmfDoneFunc(ScsiTmfResult result, void *opaque);

/* Runs a task management function on the bus's loop. ABORT TASK needs
 * tag. done runs once every affected request has completed (its own
 * completion callback having run first), possibly before this returns.
 * I_T NEXUS RESET applies to every LUN of the bus (one initiator per
 * controller); lun is ignored for it. */
void scsi_bus_tmf(ScsiBus *bus, uint16_t lun, ScsiTmfFunc fn, uint64_t tag,
                  ScsiTmfDoneFunc *done, void *opaque);

/* ---- Bus ------------------------------------------------------------------ */

/* Listener for LUN hot-plug, e.g. to raise a virtio-scsi event. Runs on the
 * main loop after the table changed. */
typedef struct ScsiBusListener {
    void (*lun_added)(ScsiBus *bus, ScsiLun *lun, void *opaque);
    void (*lun_removed)(ScsiBus *bus, ScsiLun *lun, void *opaque);
    void *opaque;
} ScsiBusListener;

/* name is the controller's device id; unique. */
ScsiBus *scsi_bus_new(const char *name, Error **errp);
/* Detaches every LUN (they stay alive; their devices own them). */
void scsi_bus_free(ScsiBus *bus);
ScsiBus *scsi_bus_find(const char *name);
const char *scsi_bus_name(const ScsiBus *bus);
void scsi_bus_set_listener(ScsiBus *bus, const ScsiBusListener *l);

/* Submits req to LUN id of the bus. When no such LUN exists the target
 * answers itself (SPC-4 4.5.2 / SAM-5 5.9.5): REPORT LUNS, INQUIRY with
 * peripheral qualifier 011b, REQUEST SENSE and anything else with LOGICAL
 * UNIT NOT SUPPORTED. Use this rather than scsi_req_submit(). */
void scsi_bus_submit(ScsiBus *bus, uint16_t id, ScsiRequest *req);

/* Adds lun as number id (< SCSI_BUS_MAX_LUNS, free), attaching it to the
 * bus's loop. */
bool scsi_bus_add_lun(ScsiBus *bus, ScsiLun *lun, uint16_t id, Error **errp);
/* Drains and removes lun. */
void scsi_bus_remove_lun(ScsiBus *bus, ScsiLun *lun);
/* NULL when no LUN has that number. */
ScsiLun *scsi_bus_lun(ScsiBus *bus, uint16_t id);
/* Iterates LUNs by number: pass NULL to start. */
ScsiLun *scsi_bus_next_lun(ScsiBus *bus, ScsiLun *lun);

/* Moves every LUN's data path to loop (NULL: back to detached; requests
 * then run on the loop each LUN was created with). Drains first, by
 * running the LUNs' current loop: call it on that loop's thread or while
 * that loop is not running (e.g. after the I/O thread stopped). */
bool scsi_bus_attach_loop(ScsiBus *bus, EventLoop *loop, Error **errp);
EventLoop *scsi_bus_loop(const ScsiBus *bus);

/* REPORT LUNS parameter data (SPC-4 6.33) for the current table: an
 * 8-byte header then one 8-byte LUN per entry. */
void scsi_bus_report_luns(ScsiBus *bus, ByteBuf *out);
/* Answers a REPORT LUNS CDB in req (used by LUNs and by the target). */
void scsi_bus_answer_report_luns(ScsiBus *bus, ScsiRequest *req);
/* SAM-5 4.7.7: an 8-byte LUN, peripheral (< 256) or flat addressing. */
void scsi_lun_encode(uint16_t id, uint8_t out[8]);
/* Decodes the first level of an 8-byte LUN; false for other formats. */
bool scsi_lun_decode(const uint8_t in[8], uint16_t *id);

/* Bus reset (e.g. the controller was reset): aborts everything in flight,
 * waits for it, then resets each LUN with SCSI_RESET_BUS. */
void scsi_bus_reset(ScsiBus *bus);

/* ---- Devices ----------------------------------------------------------- */

/* Registers the device classes "scsi-hd" and "scsi-block" (the latter
 * only when built with libiscsi). */
void scsi_register_devices(void);

#endif
