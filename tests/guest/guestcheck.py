"""Checks shared by the guest tests: disks for QEMU, fio verify in the guest.

fio runs with direct I/O, a queue depth of 16 and crc32c verification; its
JSON report is parsed and every error counter must be zero.
"""

import json

import guestlib

FIO_SIZE = 8 << 20
FIO_JSON = "/tmp/fio.json"
FIO_RC = "/tmp/fio.rc"


def expect_equal(actual, expected, what):
    if actual != expected:
        raise guestlib.GuestError(f"{what}: got {actual!r}, expected "
                                  f"{expected!r}")


def scsi_disk_args(drive, device="scsi-hd", **props):
    """QEMU arguments: a virtio-scsi controller with one disk on drive.

    drive is the -drive option string without id/if (e.g.
    "file=disk.img,format=raw"); props are extra device properties.
    """
    extra = "".join(f",{k}={v}" for k, v in props.items())
    return ["-device", "virtio-scsi-pci,id=scsi0",
            "-drive", f"if=none,id=disk0,{drive}",
            "-device", f"{device},drive=disk0,bus=scsi0.0{extra}"]


def fio_command(dev, size, engine="libaio", loops=1):
    """A random-write-then-verify fio job writing its report to FIO_JSON."""
    return (f"fio --name=verify --filename={dev} --direct=1 "
            f"--ioengine={engine} --iodepth=16 --rw=randwrite --bs=4k "
            f"--size={size} --loops={loops} --verify=crc32c "
            f"--verify_fatal=1 --output-format=json --output={FIO_JSON}")


def fio_verify(guest, dev, size, engine="libaio", timeout=90):
    """Run fio in the foreground and check its report."""
    output, status = guest.run(fio_command(dev, size, engine), timeout)
    return check_fio_report(guest, status, output, size)


def fio_start(guest, dev, size, engine="libaio", loops=1):
    """Start fio in the background; fio_wait() collects it."""
    guest.check(f"rm -f {FIO_JSON} {FIO_RC}")
    guest.check(f"({fio_command(dev, size, engine, loops)} >/tmp/fio.log "
                f"2>&1; echo $? >{FIO_RC}) &")


def fio_running(guest):
    """True once the background fio has issued I/O and not yet ended."""
    output, status = guest.run(f"[ ! -e {FIO_RC} ] && "
                               "grep -q fio /proc/[0-9]*/comm 2>/dev/null")
    return status == 0


def fio_wait(guest, size, loops=1, timeout=90):
    """Wait for the background fio and check its report."""
    guest.check(f"while [ ! -e {FIO_RC} ]; do sleep 0.2; done",
                timeout=timeout)
    status = int(guest.check(f"cat {FIO_RC}").strip())
    log = guest.check("cat /tmp/fio.log")
    return check_fio_report(guest, status, log, size * loops)


def check_fio_report(guest, status, output, size):
    report_text = guest.check(f"cat {FIO_JSON}")
    if status != 0:
        raise guestlib.GuestError(f"fio exited with {status}:\n{output}\n"
                                  f"{report_text}")
    try:
        # fio may print notes before the JSON object.
        report = json.loads(report_text[report_text.index("{"):])
        job = report["jobs"][0]
    except (ValueError, KeyError, IndexError) as e:
        raise guestlib.GuestError(f"unreadable fio report ({e}):\n"
                                  f"{report_text}")
    expect_equal(job["error"], 0, "fio job error")
    expect_equal(job.get("total_err", 0), 0, "fio error count")
    expect_equal(job["write"]["io_bytes"], size, "fio bytes written")
    # Verification reads back everything written.
    expect_equal(job["read"]["io_bytes"], size, "fio bytes verified")
    print(f"fio: {size >> 20} MiB written and verified, "
          f"write {job['write']['iops']:.0f} IOPS, "
          f"{job['job_runtime'] / 1000:.1f}s")
    return job
