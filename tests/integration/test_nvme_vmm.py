#!/usr/bin/env python3
"""stormigd's nvme device as a VMM other than stormig-testvm sees it, over
a minimal vfio-user client written here (QEMU docs/interop/vfio-user.rst):

- pci-layout: every BAR size is a power of two (PCI Local Bus 3.0 section
  6.2.5.1; QEMU asserts it) and the error and request interrupt indexes
  are offered with one eventfd each, as Linux's vfio-pci offers them;
- no-vmm-migration: a client that negotiates the protocol but never reads
  the migration feature (QEMU 11.1's vfio-user-pci) cannot carry the
  device's state: query-devices says so and `migrate` is refused before
  anything stops; once the client reads VFIO_DEVICE_FEATURE_MIGRATION it
  is allowed; a new client starts again from "no migration"."""

import json
import os
import socket
import struct

from qmp import QMPError, check, run_tests, wait_for

CMD_VERSION = 1
CMD_GET_REGION_INFO = 5
CMD_GET_IRQ_INFO = 7
CMD_DEVICE_FEATURE = 16
FEATURE_MIGRATION = 1
FEATURE_GET = 1 << 16
MIGRATION_STOP_COPY = 1
REPLY = 1
ERROR = 2
PCI_BAR0, PCI_BAR5, PCI_CONFIG = 0, 5, 7
IRQ_MSIX, IRQ_ERR, IRQ_REQ = 2, 3, 4
IRQ_INFO_EVENTFD = 1


class VfuClient:
    """Just enough of a vfio-user client: one request at a time."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(path)
        self.msg_id = 0
        caps = {"capabilities": {"max_msg_fds": 8,
                                 "max_data_xfer_size": 1 << 20}}
        body = struct.pack("<HH", 0, 1) + json.dumps(caps).encode() + b"\0"
        err, reply = self.request(CMD_VERSION, body)
        check(err == 0, f"VERSION refused: errno {err}")

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("stormigd closed the connection")
            buf += chunk
        return buf

    def request(self, cmd, payload):
        self.msg_id += 1
        hdr = struct.pack("<HHIII", self.msg_id, cmd, 16 + len(payload), 0,
                          0)
        self.sock.sendall(hdr + payload)
        msg_id, rcmd, size, flags, err = struct.unpack("<HHIII",
                                                       self._recv(16))
        body = self._recv(size - 16)
        check(msg_id == self.msg_id and rcmd == cmd and flags & REPLY,
              f"unexpected reply header {msg_id} {rcmd} {flags:#x}")
        return (err if flags & ERROR else 0), body

    def region_size(self, index):
        err, r = self.request(CMD_GET_REGION_INFO,
                              struct.pack("<IIIIQQ", 32, 0, index, 0, 0, 0))
        check(err == 0, f"REGION_INFO {index}: errno {err}")
        return struct.unpack("<IIIIQQ", r[:32])[4]

    def irq_info(self, index):
        err, r = self.request(CMD_GET_IRQ_INFO,
                              struct.pack("<IIII", 16, 0, index, 0))
        check(err == 0, f"IRQ_INFO {index}: errno {err}")
        _, flags, _, count = struct.unpack("<IIII", r[:16])
        return flags, count

    def migration_flags(self):
        err, r = self.request(CMD_DEVICE_FEATURE,
                              struct.pack("<II", 16,
                                          FEATURE_GET | FEATURE_MIGRATION))
        check(err == 0, f"FEATURE MIGRATION: errno {err}")
        return struct.unpack("<Q", r[8:16])[0]

    def close(self):
        self.sock.close()


def nvme_daemon(env, name="src"):
    img = env.image(f"{name}.img")
    sock = env.path(f"{name}-nvme.sock")
    d = env.daemon(name, [
        "--blockdev", f"driver=file,node-name=d0,filename={img}",
        "--device", f"nvme,id=nvme0,socket={sock},drive=d0,serial=VMM0"])
    wait_for(lambda: os.path.exists(sock), 10, "vfio-user socket")
    return d, sock


def t_pci_layout(env):
    _, sock = nvme_daemon(env)
    c = VfuClient(sock)
    for bar in range(PCI_BAR0, PCI_BAR5 + 1):
        size = c.region_size(bar)
        check(size & (size - 1) == 0,
              f"BAR{bar} size {size:#x} is not a power of two")
    check(c.region_size(4) >= 0x1000, "no MSI-X BAR")
    for index in (IRQ_ERR, IRQ_REQ):
        flags, count = c.irq_info(index)
        check(count == 1 and flags & IRQ_INFO_EVENTFD,
              f"irq index {index}: count {count}, flags {flags:#x}")
    _, count = c.irq_info(IRQ_MSIX)
    check(count >= 2, f"{count} MSI-X vectors")
    c.close()


def t_no_vmm_migration(env):
    d, sock = nvme_daemon(env)
    dev = d.device("nvme0")
    check(dev["vmm-connected"] is False and dev["vmm-migration"] is False,
          f"without a client: {dev}")
    check(dev["migratable"] is True, f"without a client: {dev}")

    c = VfuClient(sock)
    wait_for(lambda: d.device("nvme0")["vmm-connected"], 5, "client seen")
    dev = d.device("nvme0")
    why = ("the VMM connected to nvme0 does not support vfio-user "
           "migration; its state would be lost")
    check(dev["vmm-migration"] is False and dev["migratable"] is False and
          why in dev.get("migration-blocker", ""), f"{dev}")
    try:
        d.cmd("migrate", uri=f"unix:{env.path('nowhere.sock')}")
        raise AssertionError("migrate accepted")
    except QMPError as e:
        check(why in e.desc and "nvme0" in e.desc, f"refusal: {e.desc}")
    # Refused before anything stopped: still running, disks still owned,
    # no migration recorded.
    check(d.status() == "running", f"status {d.status()}")
    check(d.owned() == ["d0"], f"owned {d.owned()}")
    mig = d.cmd("query-migrate")
    check(mig.get("status") in (None, "none"), f"query-migrate {mig}")

    flags = c.migration_flags()
    check(flags & MIGRATION_STOP_COPY, f"migration flags {flags:#x}")
    dev = d.device("nvme0")
    check(dev["vmm-migration"] is True and dev["migratable"] is True,
          f"after the migration feature was read: {dev}")
    c.close()
    wait_for(lambda: not d.device("nvme0")["vmm-connected"], 5,
             "disconnect seen")

    # A new VMM starts again from "does not migrate".
    c = VfuClient(sock)
    wait_for(lambda: d.device("nvme0")["vmm-connected"], 5, "new client")
    check(d.device("nvme0")["vmm-migration"] is False, "new client")
    c.close()


if __name__ == "__main__":
    run_tests({
        "pci-layout": t_pci_layout,
        "no-vmm-migration": t_no_vmm_migration,
    })
