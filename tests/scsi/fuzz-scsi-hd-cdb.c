/* Fuzz target: a CDB and a data buffer from the guest, against a scsi-hd on
 * a small scratch image; every request must complete, synchronously
 * driven, with a result that stays inside its buffers.
 *
 * Input: flags (bits 0-1: 0 none, 1 data-in, 2 data-out), CDB length,
 * the CDB, a big-endian 16-bit buffer length, then data-out bytes (the
 * buffer is zero-padded). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hd-harness.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define IMG_BLOCKS 64u

static struct {
    EventLoop *loop;
    ScsiBus *bus;
} f;

static void fuzz_init(void)
{
    char img[] = P_tmpdir "/stormig-fuzz-hd-XXXXXX";
    int fd = mkstemp(img);
    if (fd < 0 || ftruncate(fd, IMG_BLOCKS * 512) < 0) {
        abort();
    }
    close(fd);
    log_set_level(LOG_ERROR);
    scsi_register_devices();
    f.loop = loop_new(NULL);
    f.bus = scsi_bus_new("fuzz0", NULL);
    BlockBackend *blk = hd_harness_open("fuzzdisk", img, false);
    /* The open file stays usable; the name goes at once. */
    unlink(img);
    if (!f.loop || !f.bus || !blk ||
        !hd_harness_device("scsi-hd,id=fuzzhd,drive=fuzzdisk,bus=fuzz0,"
                           "lun=0,serial=FUZZ,wwn=0x5000000000000001",
                           f.loop)) {
        abort();
    }
}

static void check_result(const HdCmdResult *r)
{
    if (!r->done) {
        abort();                /* a request that never completes */
    }
    const ScsiRequest *q = &r->req;
    if (q->residual > q->data_len || q->sense_len > SCSI_SENSE_MAX) {
        abort();
    }
    ScsiSense s;
    if (q->response == SCSI_RESP_OK &&
        q->status == SAM_STAT_CHECK_CONDITION &&
        !scsi_sense_parse(q->sense, q->sense_len, &s)) {
        abort();                /* CHECK CONDITION without sense */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        fuzz_init();
        ready = true;
    }
    if (size < 2) {
        return 0;
    }
    ScsiDataDir dir = (ScsiDataDir)(data[0] & 3) % 3;
    size_t cdb_len = data[1];
    if (cdb_len > SCSI_CDB_MAX || size < 2 + cdb_len + 2) {
        return 0;
    }
    const uint8_t *cdb = data + 2;
    size_t buf_len = ld_be16(data + 2 + cdb_len);
    const uint8_t *payload = data + 4 + cdb_len;
    size_t payload_len = size - 4 - cdb_len;
    uint8_t *buf = calloc(1, buf_len ? buf_len : 1);
    if (!buf) {
        return 0;
    }
    memcpy(buf, payload, payload_len < buf_len ? payload_len : buf_len);
    HdCmdResult r;
    uint8_t cdb_copy[SCSI_CDB_MAX] = { 0 };
    memcpy(cdb_copy, cdb, cdb_len);
    hd_harness_run(f.loop, f.bus, 0, cdb_copy, cdb_len ? cdb_len : 1, dir,
                   dir == SCSI_DIR_NONE ? NULL : buf, buf_len, &r);
    check_result(&r);
    free(buf);
    return 0;
}
