"""Guest memory of a migration source and its destination, compared page
by page while both are stopped (see README.md, "Known QEMU 7.2 defect").

Both QEMUs back guest RAM with memory-backend-memfd (guestlib.Guest), so
the harness reads them through /proc/PID/fd.  The destination must not
run yet (started with -S): its memory is then exactly what the migration
delivered.

A page that differs and that a device back end wrote while dirty logging
was on (its written-pages record) is a missed dirty-log write of that back
end: the check fails.  On QEMU 7.2 any other differing page was written
by the guest's own vCPUs and lost by its TCG; it is copied from the source
so the guest does not crash later for QEMU's reasons, and counted.  With
any other QEMU (restore=False) every differing page fails the check.

Python 3 standard library only.
"""

import mmap
import os

PAGE = 4096
CHUNK = 1 << 20
SHOW_PAGES = 10
# q35 (QEMU hw/i386/pc_q35.c): all RAM below 4 GiB unless it reaches
# 0xb0000000; then 2 GiB below and the rest from 4 GiB.
Q35_LOWMEM_LIMIT = 0xb0000000
Q35_LOWMEM = 0x80000000


class MissedDirtyLog(Exception):
    """A page a back end wrote differs on the destination."""


class PagesDiffer(Exception):
    """Pages differ on the destination and nothing may be restored."""


def guest_memfd(pid):
    """Path of the memfd backing the guest RAM of QEMU pid."""
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        # guestlib names the backend "mem": memory-backend-memfd,id=mem
        if target.startswith("/memfd:mem"):
            return os.path.join(fd_dir, fd)
    raise RuntimeError(f"QEMU {pid} has no guest memory memfd")


def offset_to_gpa(offset, ram_size):
    """Guest-physical address of a byte of the q35 RAM memfd."""
    if ram_size < Q35_LOWMEM_LIMIT or offset < Q35_LOWMEM:
        return offset
    return offset - Q35_LOWMEM + (1 << 32)


def in_ranges(gpa, ranges):
    """ranges: [[gpa_start, pages], ...] as x-vhost-user-written-pages."""
    return any(start <= gpa < start + pages * PAGE
               for start, pages in ranges)


def differing_pages(a, b, size):
    """Offsets of the pages that differ between mappings a and b."""
    out = []
    for chunk in range(0, size, CHUNK):
        end = min(size, chunk + CHUNK)
        if a[chunk:end] == b[chunk:end]:
            continue
        out += [off for off in range(chunk, end, PAGE)
                if a[off:off + PAGE] != b[off:off + PAGE]]
    return out


def restore_lost_pages(src_pid, dst_pid, written=(), restore=True):
    """Compare the guest memory of the stopped source and the paused
    destination; returns (pages compared, pages restored).

    restore=False (a QEMU that loses no pages): any differing page raises
    PagesDiffer (MissedDirtyLog when back ends wrote all of them) and
    nothing is restored.  Otherwise, as QEMU 7.2 needs:

    written: the pages back ends wrote while logging ([gpa, pages]
    ranges).  Raises MissedDirtyLog, restoring nothing, when pages of
    theirs differ and no other page does: nothing but a missed log entry
    explains that.  When QEMU also lost pages on this hop (pages no back
    end wrote differ too), a page the back end wrote earlier in the
    window may have been rewritten by a vCPU and lost by QEMU like the
    others: the hop cannot tell, so its pages are restored and reported
    as undecided (a dirty-log miss of ours shows on every hop under I/O,
    so the hops without a QEMU loss decide).  Every differing page is
    copied from the source."""
    with open(guest_memfd(src_pid), "rb") as fa, \
            open(guest_memfd(dst_pid), "r+b") as fb:
        size = os.fstat(fa.fileno()).st_size
        if os.fstat(fb.fileno()).st_size != size:
            raise RuntimeError("source and destination guest memory "
                               "differ in size")
        a = mmap.mmap(fa.fileno(), size, prot=mmap.PROT_READ)
        b = mmap.mmap(fb.fileno(), size)
        try:
            diff = differing_pages(a, b, size)
            ours = [offset_to_gpa(off, size) for off in diff
                    if in_ranges(offset_to_gpa(off, size), written)]
            shown = ", ".join(f"{gpa:#x}" for gpa in ours[:SHOW_PAGES])
            if diff and not restore and len(ours) < len(diff):
                gpas = [offset_to_gpa(off, size) for off in diff]
                raise PagesDiffer(
                    f"{len(diff)} guest page(s) differ between source and "
                    f"destination after the migration, {len(ours)} of them "
                    "written by stormigd while logging; at " +
                    ", ".join(f"{gpa:#x}" for gpa in gpas[:SHOW_PAGES]))
            if ours and len(ours) < len(diff):
                print(f"QEMU 7.2 TCG lost {len(diff) - len(ours)} guest "
                      f"pages no back end wrote on this hop; {len(ours)} "
                      f"more differing page(s) had also been written by "
                      f"stormigd ({shown}): undecided on this hop, "
                      "restored from the source", flush=True)
            elif ours:
                raise MissedDirtyLog(
                    f"stormigd wrote page {ours[0]:#x} but it differs on the "
                    f"destination: missed dirty logging ({len(ours)} such "
                    f"pages of {len(diff)} differing; at {shown})")
            for off in diff:
                b[off:off + PAGE] = a[off:off + PAGE]
            return size // PAGE, len(diff)
        finally:
            a.close()
            b.close()


def lost_pages_line(count):
    return (f"{count} guest pages differed after QEMU's migration (QEMU 7.2 "
            "TCG loses pages the guest's vCPUs write); restored from the "
            "source")
