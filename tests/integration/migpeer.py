"""A scripted stormigd migration peer for the integration tests: it speaks
the channel protocol of src/migration/channel.h (frames, HELLO) and does
only what a test tells it, so a test can play a source or a destination
that goes silent at a chosen step (Python 3 standard library only)."""

import fcntl
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


def hello(version=VERSION):
    return frame(HELLO, MAGIC + struct.pack(">I", version))


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
    VERSION = 0x1

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
