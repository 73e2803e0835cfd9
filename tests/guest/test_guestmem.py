"""guestmem.restore_lost_pages without QEMU: two child processes hold a
memfd named like a guest's RAM ("mem"), standing in for the stopped
source and the paused destination.

Checks what a migration hop decides from a differing page:
- strict (QEMU 11.1, restore=False): any differing page fails, whether a
  back end wrote it (MissedDirtyLog) or not (PagesDiffer), and the
  destination is left untouched;
- QEMU 7.2 (restore=True): a page no back end wrote is copied from the
  source and counted; one only a back end wrote fails;
- identical memory passes either way.
"""

import os
import subprocess
import sys

import guestmem

PAGE = guestmem.PAGE
SIZE = 256 * PAGE


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)


def holder(fd):
    """A process whose only memfd is fd (named "mem")."""
    return subprocess.Popen(["sleep", "60"], pass_fds=[fd])


def expect_raises(exc, fn, what):
    try:
        fn()
    except exc as e:
        print(f"{what}: {exc.__name__}: {e}")
        return
    check(False, f"{what}: no {exc.__name__}")


def main():
    src_fd = os.memfd_create("mem", 0)
    dst_fd = os.memfd_create("mem", 0)
    for fd in (src_fd, dst_fd):
        os.ftruncate(fd, SIZE)
        os.pwrite(fd, b"\x5a" * SIZE, 0)
    src, dst = holder(src_fd), holder(dst_fd)
    try:
        check(guestmem.restore_lost_pages(src.pid, dst.pid, [],
                                          restore=False) == (256, 0),
              "identical memory does not compare equal")

        os.pwrite(dst_fd, b"\x00", 7 * PAGE + 100)   # a page stale
        written = [[7 * PAGE, 1]]
        expect_raises(guestmem.PagesDiffer,
                      lambda: guestmem.restore_lost_pages(
                          src.pid, dst.pid, [], restore=False),
                      "strict, page no back end wrote")
        expect_raises(guestmem.MissedDirtyLog,
                      lambda: guestmem.restore_lost_pages(
                          src.pid, dst.pid, written, restore=False),
                      "strict, page a back end wrote")
        check(os.pread(dst_fd, 1, 7 * PAGE + 100) == b"\x00",
              "the strict check changed the destination")
        expect_raises(guestmem.MissedDirtyLog,
                      lambda: guestmem.restore_lost_pages(
                          src.pid, dst.pid, written, restore=True),
                      "QEMU 7.2, page a back end wrote")

        got = guestmem.restore_lost_pages(src.pid, dst.pid, [],
                                          restore=True)
        check(got == (256, 1), f"QEMU 7.2 restore returned {got}")
        check(os.pread(dst_fd, 1, 7 * PAGE + 100) == b"\x5a",
              "the lost page was not restored from the source")
        check(guestmem.restore_lost_pages(src.pid, dst.pid, [],
                                          restore=False) == (256, 0),
              "memory differs after the restore")
    finally:
        for p in (src, dst):
            p.kill()
            p.wait()
    print("strict and QEMU 7.2 page comparison as expected")


if __name__ == "__main__":
    main()
