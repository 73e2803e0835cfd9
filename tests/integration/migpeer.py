"""A scripted stormigd migration peer for the integration tests: it speaks
the channel protocol of src/migration/channel.h (frames, HELLO) and does
only what a test tells it, so a test can play a source or a destination
that goes silent at a chosen step (Python 3 standard library only)."""

import fcntl
import mmap
import os
import socket
import struct
import time

HELLO, DEVICE_STATE, STATE_LOADED, SWITCHOVER, SWITCHOVER_DONE, ERROR, \
    KEEPALIVE = range(1, 8)
MAGIC = b"STMGMIG\n"
VERSION = 2

# src/block/image-lock.h
OWNER_BYTE = 0x7ffff000
PID_BYTE = 0x7ffff001


def frame(msg_type, payload=b""):
    return struct.pack(">HHI", msg_type, 0, len(payload)) + payload


def hello(version=VERSION, timeout_ms=60000):
    """channel.h §2: version 2 carries the sender's peer-timeout."""
    payload = MAGIC + struct.pack(">I", version)
    if version >= 2:
        payload += struct.pack(">I", timeout_ms)
    return frame(HELLO, payload)


class Peer:
    """One connected channel."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, msg_type, payload=b""):
        self.sock.sendall(frame(msg_type, payload))

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self, timeout=10.0):
        """The next frame as (type, payload); None when the peer closed."""
        deadline = time.monotonic() + timeout
        while len(self.buf) < 8 or \
                len(self.buf) < 8 + struct.unpack(">I", self.buf[4:8])[0]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from stormigd")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        t, _, n = struct.unpack(">HHI", self.buf[:8])
        payload, self.buf = self.buf[8:8 + n], self.buf[8 + n:]
        return t, payload

    def expect(self, msg_type, timeout=10.0):
        f = self.recv(timeout)
        if f is None or f[0] != msg_type:
            raise AssertionError(f"expected message {msg_type}, got {f}")
        return f[1]

    def wait_closed(self, timeout=10.0):
        """True once stormigd closed the connection (frames are skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.recv(deadline - time.monotonic()) is None:
                    return True
            except TimeoutError:
                break
        return False

    def close(self):
        self.sock.close()


def connect_unix(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return Peer(s)


class Listener:
    """A destination's listening socket (unix:)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)

    def accept(self, timeout=10.0):
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        return Peer(conn)

    def close(self):
        self.sock.close()


def take_image_lock(path):
    """Takes an image's ownership locks as a destination stormigd does at
    switchover; returns the fd that holds them (close it to release)."""
    fd = os.open(path, os.O_RDWR)
    fl = struct.pack("hh4xqqi4x", fcntl.F_WRLCK, os.SEEK_SET, OWNER_BYTE, 1,
                     0)
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, fl)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, PID_BYTE)
    return fd


class VhostUserFrontEnd:
    """Just enough of a vhost-user front end (a VMM) to start a ring and
    stop it again, as QEMU does around its own migration."""

    SET_VRING_KICK, GET_VRING_BASE = 12, 11
    SET_FEATURES, SET_MEM_TABLE, SET_VRING_NUM, SET_VRING_ADDR, \
        SET_VRING_BASE, SET_VRING_CALL = 2, 5, 8, 9, 10, 13
    VERSION = 0x1
    # Guest memory: one region; rings and one request at fixed places.
    MEM_SIZE = 1 << 20
    UVA = 0x7f0000000000
    RING_NUM = 8
    DESC, AVAIL, USED, REQ, RESP, DATA = \
        0x0, 0x1000, 0x2000, 0x3000, 0x3100, 0x4000

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.kick = None

    def _send(self, request, payload, fds=()):
        msg = struct.pack("<III", request, self.VERSION, len(payload)) + \
            payload
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                struct.pack(f"{len(fds)}i", *fds))] if fds else []
        self.sock.sendmsg([msg], anc)

    def start_ring(self, index):
        """SET_VRING_KICK with an eventfd: the ring is started."""
        self.kick = os.eventfd(0)
        self._send(self.SET_VRING_KICK, struct.pack("<Q", index), [self.kick])

    def setup_ring(self, index):
        """Memory table, features and one started request ring (virtio
        1.2 2.7 split layout), as a VMM sets them up."""
        self._send(self.SET_FEATURES, struct.pack("<Q", 1 << 32))
        self.mem_fd = os.memfd_create("guest", os.MFD_ALLOW_SEALING)
        os.ftruncate(self.mem_fd, self.MEM_SIZE)
        # stormigd maps only memory that cannot shrink under it, as
        # QEMU's memory-backend-memfd seals it.
        fcntl.fcntl(self.mem_fd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
        self.mem = mmap.mmap(self.mem_fd, self.MEM_SIZE)
        self._send(self.SET_MEM_TABLE,
                   struct.pack("<IIQQQQ", 1, 0, 0, self.MEM_SIZE, self.UVA,
                               0), [self.mem_fd])
        self._send(self.SET_VRING_NUM, struct.pack("<II", index,
                                                   self.RING_NUM))
        self._send(self.SET_VRING_ADDR, struct.pack(
            "<IIQQQQ", index, 0, self.UVA + self.DESC, self.UVA + self.USED,
            self.UVA + self.AVAIL, 0))
        self._send(self.SET_VRING_BASE, struct.pack("<II", index, 0))
        self.call = os.eventfd(0)
        self._send(self.SET_VRING_CALL, struct.pack("<Q", index),
                   [self.call])
        self.avail_idx = 0
        self.start_ring(index)

    def submit_read(self, lba, blocks, block_size=512):
        """Places one READ(10) of LUN 0 in the ring and kicks it; the
        previous one must have completed (its buffers are reused)."""
        cdb = struct.pack(">BBIBHB", 0x28, 0, lba, 0, blocks, 0)
        req = bytes([1, 0, 0, 0, 0, 0, 0, 0]) + struct.pack("<QBBB", 1, 0,
                                                            0, 0) + \
            cdb.ljust(32, b"\0")
        self.mem[self.REQ:self.REQ + len(req)] = req
        desc = struct.pack("<QIHH", self.REQ, len(req), 1, 1) + \
            struct.pack("<QIHH", self.RESP, 108, 1 | 2, 2) + \
            struct.pack("<QIHH", self.DATA, blocks * block_size, 2, 0)
        self.mem[self.DESC:self.DESC + len(desc)] = desc
        slot = self.AVAIL + 4 + 2 * (self.avail_idx % self.RING_NUM)
        self.mem[slot:slot + 2] = struct.pack("<H", 0)
        self.avail_idx += 1
        self.mem[self.AVAIL:self.AVAIL + 4] = struct.pack("<HH", 0,
                                                          self.avail_idx)
        os.eventfd_write(self.kick, 1)

    def scsi_status(self):
        """SCSI status of the last completed request."""
        return self.mem[self.RESP + 10]

    def used_idx(self):
        return struct.unpack("<H", self.mem[self.USED + 2:self.USED + 4])[0]

    def stop_ring(self, index):
        """GET_VRING_BASE: the back end answers once nothing is in flight."""
        self._send(self.GET_VRING_BASE, struct.pack("<II", index, 0))
        hdr = self.sock.recv(12, socket.MSG_WAITALL)
        request, _, size = struct.unpack("<III", hdr)
        self.sock.recv(size, socket.MSG_WAITALL)
        if request != self.GET_VRING_BASE:
            raise AssertionError(f"reply to {request}")

    def close(self):
        self.sock.close()
        if self.kick is not None:
            os.close(self.kick)
