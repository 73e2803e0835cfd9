/* virtio-scsi framing: headers as a Linux guest lays them out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "virtio/virtio-scsi.h"

static void test_lun_addressing(void **state)
{
    uint8_t t;
    uint16_t l;
    uint8_t lun[8] = { 1, 2, 0x40, 5, 0, 0, 0, 0 };
    assert_int_equal(virtio_scsi_lun_decode(lun, &t, &l), VIRTIO_SCSI_LUN_OK);
    assert_int_equal(t, 2);
    assert_int_equal(l, 5);
    uint8_t flat[8] = { 1, 0, 0x41, 0x23, 0, 0, 0, 0 };
    assert_int_equal(virtio_scsi_lun_decode(flat, &t, &l), VIRTIO_SCSI_LUN_OK);
    assert_int_equal(l, 0x123);
    uint8_t periph[8] = { 1, 0, 0, 7, 0, 0, 0, 0 };
    assert_int_equal(virtio_scsi_lun_decode(periph, &t, &l),
                     VIRTIO_SCSI_LUN_OK);
    assert_int_equal(l, 7);
    uint8_t bad_target[8] = { 0, 0, 0x40, 0, 0, 0, 0, 0 };
    assert_int_equal(virtio_scsi_lun_decode(bad_target, &t, &l),
                     VIRTIO_SCSI_LUN_BAD_TARGET);
    uint8_t two_level[8] = { 1, 0, 0x40, 0, 0x40, 1, 0, 0 };
    assert_int_equal(virtio_scsi_lun_decode(two_level, &t, &l),
                     VIRTIO_SCSI_LUN_BAD_FORMAT);
    uint8_t enc[8];
    virtio_scsi_lun_encode(enc, 3, 0x200);
    assert_int_equal(virtio_scsi_lun_decode(enc, &t, &l), VIRTIO_SCSI_LUN_OK);
    assert_int_equal(t, 3);
    assert_int_equal(l, 0x200);
}

static void test_cmd_request_split_header(void **state)
{
    uint8_t hdr[19 + 32 + 8];
    memset(hdr, 0, sizeof(hdr));
    hdr[0] = 1;
    hdr[2] = 0x40;
    hdr[3] = 1;
    hdr[8] = 0x78;                          /* tag 0x12345678, LE */
    hdr[9] = 0x56;
    hdr[10] = 0x34;
    hdr[11] = 0x12;
    hdr[16] = VIRTIO_SCSI_S_ORDERED;
    hdr[19] = 0x28;                         /* READ(10) */
    memcpy(hdr + 51, "DATAOUT!", 8);
    /* The header split over three readable buffers. */
    struct iovec out[] = {
        { hdr, 5 }, { hdr + 5, 20 }, { hdr + 25, sizeof(hdr) - 25 },
    };
    uint8_t resp[12 + 96 + 512];
    struct iovec in[] = { { resp, sizeof(resp) } };
    VirtioScsiCmdReq req;
    size_t hdr_len, resp_len;
    assert_int_equal(virtio_scsi_parse_cmd(out, 3, in, 1, 32, 96, &req,
                                           &hdr_len, &resp_len),
                     VIRTIO_SCSI_PARSE_OK);
    assert_int_equal(hdr_len, 51);
    assert_int_equal(resp_len, 108);
    assert_int_equal(req.tag, 0x12345678);
    assert_int_equal(req.task_attr, VIRTIO_SCSI_S_ORDERED);
    assert_int_equal(req.cdb[0], 0x28);
    assert_int_equal(req.cdb_len, 32);

    struct iovec data[4];
    unsigned n = iov_slice(out, 3, hdr_len, data, 4);
    assert_int_equal(n, 1);
    assert_int_equal(data[0].iov_len, 8);
    assert_memory_equal(data[0].iov_base, "DATAOUT!", 8);
}

static void test_cmd_request_short(void **state)
{
    uint8_t hdr[40] = { 1 };
    uint8_t resp[200];
    struct iovec out[] = { { hdr, sizeof(hdr) } };
    struct iovec in[] = { { resp, sizeof(resp) } };
    struct iovec short_in[] = { { resp, 100 } };
    VirtioScsiCmdReq req;
    size_t h, r;
    assert_int_equal(virtio_scsi_parse_cmd(out, 1, in, 1, 32, 96, &req, &h, &r),
                     VIRTIO_SCSI_PARSE_SHORT_REQ);
    assert_int_equal(virtio_scsi_parse_cmd(out, 1, short_in, 1, 16, 96, &req,
                                           &h, &r),
                     VIRTIO_SCSI_PARSE_SHORT_RESP);
    /* A smaller negotiated CDB size makes the same header long enough. */
    assert_int_equal(virtio_scsi_parse_cmd(out, 1, in, 1, 16, 96, &req, &h, &r),
                     VIRTIO_SCSI_PARSE_OK);
    assert_int_equal(h, 35);
}

static void test_cmd_response(void **state)
{
    uint8_t buf[12 + 96];
    memset(buf, 0xee, sizeof(buf));
    struct iovec in[] = { { buf, 10 }, { buf + 10, sizeof(buf) - 10 } };
    VirtioScsiCmdResp resp = {
        .sense_len = 200, .resid = 0x1000, .status = 2,
        .response = VIRTIO_SCSI_S_OK,
    };
    resp.sense[0] = 0x70;
    resp.sense[2] = 5;
    assert_int_equal(virtio_scsi_write_cmd_resp(in, 2, 96, &resp), 108);
    assert_int_equal(buf[0], 96);           /* sense_len clamped */
    assert_int_equal(buf[5], 0x10);         /* resid LE */
    assert_int_equal(buf[10], 2);
    assert_int_equal(buf[11], VIRTIO_SCSI_S_OK);
    assert_int_equal(buf[12], 0x70);
    assert_int_equal(buf[14], 5);
    assert_int_equal(buf[107], 0);          /* sense zero-filled */
}

static void test_control_requests(void **state)
{
    uint8_t tmf[24] = { 0 };
    tmf[4] = VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET;
    tmf[8] = 1;
    tmf[10] = 0x40;
    tmf[16] = 9;
    struct iovec out[] = { { tmf, sizeof(tmf) } };
    VirtioScsiCtrlReq req;
    assert_int_equal(virtio_scsi_parse_ctrl(out, 1, 1, &req),
                     VIRTIO_SCSI_PARSE_OK);
    assert_int_equal(req.type, VIRTIO_SCSI_T_TMF);
    assert_int_equal(req.subtype, VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET);
    assert_int_equal(req.tag, 9);
    assert_string_equal(virtio_scsi_tmf_name(req.subtype),
                        "LOGICAL_UNIT_RESET");
    assert_int_equal(virtio_scsi_parse_ctrl(out, 1, 0, &req),
                     VIRTIO_SCSI_PARSE_SHORT_RESP);
    struct iovec shortreq[] = { { tmf, 20 } };
    assert_int_equal(virtio_scsi_parse_ctrl(shortreq, 1, 1, &req),
                     VIRTIO_SCSI_PARSE_SHORT_REQ);

    uint8_t an[16] = { VIRTIO_SCSI_T_AN_QUERY, 0, 0, 0, 1 };
    an[12] = 0x10;
    struct iovec anv[] = { { an, sizeof(an) } };
    assert_int_equal(virtio_scsi_parse_ctrl(anv, 1, 5, &req),
                     VIRTIO_SCSI_PARSE_OK);
    assert_int_equal(req.event_requested, 0x10);
    assert_int_equal(virtio_scsi_parse_ctrl(anv, 1, 4, &req),
                     VIRTIO_SCSI_PARSE_SHORT_RESP);
    uint8_t rbuf[5];
    struct iovec rin[] = { { rbuf, sizeof(rbuf) } };
    assert_int_equal(virtio_scsi_write_an_resp(rin, 1, 0, 
                                               VIRTIO_SCSI_S_OK), 5);

    an[0] = 7;
    assert_int_equal(virtio_scsi_parse_ctrl(anv, 1, 5, &req),
                     VIRTIO_SCSI_PARSE_BAD_TYPE);
}

static void test_event(void **state)
{
    uint8_t buf[16];
    struct iovec in[] = { { buf, sizeof(buf) } };
    VirtioScsiEvent ev = {
        .event = VIRTIO_SCSI_T_TRANSPORT_RESET | VIRTIO_SCSI_T_EVENTS_MISSED,
        .reason = VIRTIO_SCSI_EVT_RESET_RESCAN,
    };
    virtio_scsi_lun_encode(ev.lun, 0, 4);
    assert_int_equal(virtio_scsi_write_event(in, 1, &ev), 16);
    assert_int_equal(buf[0], 1);
    assert_int_equal(buf[3], 0x80);
    assert_int_equal(buf[4], 1);
    assert_int_equal(buf[7], 4);
    assert_int_equal(buf[12], VIRTIO_SCSI_EVT_RESET_RESCAN);
    struct iovec small[] = { { buf, 15 } };
    assert_int_equal(virtio_scsi_write_event(small, 1, &ev), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lun_addressing),
        cmocka_unit_test(test_cmd_request_split_header),
        cmocka_unit_test(test_cmd_request_short),
        cmocka_unit_test(test_cmd_response),
        cmocka_unit_test(test_control_requests),
        cmocka_unit_test(test_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
