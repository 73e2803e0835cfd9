/* The scsi-hd unit tests' fixture: a scsi-hd on a scratch image in the
 * current directory (HD_TEST_IMG, one per test program), commands run one
 * at a time, and helpers to check their status, sense and data. */
#ifndef STORMIG_TESTS_SCSI_HD_TEST_UTIL_H
#define STORMIG_TESTS_SCSI_HD_TEST_UTIL_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "block/ownership.h"
#include "hd-harness.h"
#include "scsi/scsi-hd.h"

#define IMG HD_TEST_IMG
#define IMG_BLOCKS 2048u
#define BS 512u

static struct {
    EventLoop *loop;
    ScsiBus *bus;
    BlockBackend *blk;
    Device *dev;
} t;

static inline HdCmdResult cmd(uint16_t lun, const uint8_t *cdb, size_t cdb_len,
                       ScsiDataDir dir, void *buf, size_t len)
{
    HdCmdResult r;
    hd_harness_run(t.loop, t.bus, lun, cdb, cdb_len, dir, buf, len, &r);
    assert_true(r.done);
    return r;
}

#define CMD_NONE(...) ({ const uint8_t c_[] = { __VA_ARGS__ };             \
    cmd(0, c_, sizeof(c_), SCSI_DIR_NONE, NULL, 0); })
#define CMD_IN(buf, len, ...) ({ const uint8_t c_[] = { __VA_ARGS__ };    \
    cmd(0, c_, sizeof(c_), SCSI_DIR_FROM_DEV, buf, len); })
#define CMD_OUT(buf, len, ...) ({ const uint8_t c_[] = { __VA_ARGS__ };   \
    cmd(0, c_, sizeof(c_), SCSI_DIR_TO_DEV, (void *)(buf), len); })

static inline void assert_good(const HdCmdResult *r)
{
    assert_int_equal(r->req.response, SCSI_RESP_OK);
    assert_int_equal(r->req.status, SAM_STAT_GOOD);
}

static inline void assert_sense(const HdCmdResult *r, ScsiSense want)
{
    ScsiSense got;
    assert_int_equal(r->req.response, SCSI_RESP_OK);
    assert_int_equal(r->req.status, SAM_STAT_CHECK_CONDITION);
    assert_true(scsi_sense_parse(r->req.sense, r->req.sense_len, &got));
    assert_int_equal(got.key, want.key);
    assert_int_equal(got.asc, want.asc);
    assert_int_equal(got.ascq, want.ascq);
}

/* The image as a second opener sees it. */
static inline void read_image(uint64_t off, void *buf, size_t len)
{
    int fd = open(IMG, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static inline void write_image(uint64_t off, const void *buf, size_t len)
{
    int fd = open(IMG, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static inline int setup_opts(const char *opts, bool ro)
{
    scsi_register_devices();
    if (!hd_harness_make_image(IMG, (uint64_t)IMG_BLOCKS * BS)) {
        return -1;
    }
    t.loop = loop_new(NULL);
    t.bus = scsi_bus_new("scsi0", NULL);
    t.blk = hd_harness_open("disk0", IMG, ro);
    t.dev = t.blk ? hd_harness_device(opts, t.loop) : NULL;
    if (!t.loop || !t.bus || !t.dev) {
        return -1;
    }
    /* Every test starts after the power-on unit attention was seen. */
    HdCmdResult r = CMD_NONE(SCSI_OP_TEST_UNIT_READY, 0, 0, 0, 0, 0);
    assert_sense(&r, SENSE_UA_POWER_ON_RESET);
    return 0;
}

static inline int setup(void **state)
{
    return setup_opts("scsi-hd,id=hd0,drive=disk0,bus=scsi0,lun=0,"
                      "serial=SN-0042,wwn=0x5001405abcdef012", false);
}

/* Big enough (sparse) for every advertised length limit plus one. */
#define BIG_BLOCKS ((1u << 22) + 64)

static inline int setup_big(void **state)
{
    if (!hd_harness_make_image(IMG, (uint64_t)BIG_BLOCKS * BS)) {
        return -1;
    }
    scsi_register_devices();
    t.loop = loop_new(NULL);
    t.bus = scsi_bus_new("scsi0", NULL);
    t.blk = hd_harness_open("disk0", IMG, false);
    t.dev = t.blk ? hd_harness_device("scsi-hd,id=hd0,drive=disk0,"
                                      "bus=scsi0,lun=0", t.loop) : NULL;
    if (!t.loop || !t.bus || !t.dev) {
        return -1;
    }
    HdCmdResult r = CMD_NONE(SCSI_OP_TEST_UNIT_READY, 0, 0, 0, 0, 0);
    assert_sense(&r, SENSE_UA_POWER_ON_RESET);
    return 0;
}

static inline int setup_ro(void **state)
{
    return setup_opts("scsi-hd,id=hd0,drive=disk0,bus=scsi0,lun=0", true);
}

static inline int teardown(void **state)
{
    device_destroy_all();
    scsi_bus_free(t.bus);
    blk_close(t.blk);
    loop_free(t.loop);
    unlink(IMG);
    memset(&t, 0, sizeof(t));
    return 0;
}

static inline void fill(uint8_t *b, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++) {
        b[i] = (uint8_t)(seed + i * 7);
    }
}


/* UNMAP parameter list: header then descriptors (lba, count). */
static inline size_t unmap_list(uint8_t *p, unsigned n, const uint64_t *lba,
                         const uint32_t *cnt)
{
    memset(p, 0, 8 + 16 * n);
    st_be16(&p[0], (uint16_t)(6 + 16 * n));
    st_be16(&p[2], (uint16_t)(16 * n));
    for (unsigned i = 0; i < n; i++) {
        st_be64(&p[8 + 16 * i], lba[i]);
        st_be32(&p[8 + 16 * i + 8], cnt[i]);
    }
    return 8 + 16 * n;
}

#define UNMAP(p, len) CMD_OUT(p, len, SCSI_OP_UNMAP, 0, 0, 0, 0, 0, 0,    \
                              (uint8_t)((len) >> 8), (uint8_t)(len), 0)

#endif
