"""guestlib.Console.expect without a guest: a peer socket plays the serial
line and sends output in small chunks.

Checks that a match split across chunks is found, that what came before
it is returned whole (Console.before), that the buffer is consumed through
the match only, and that a long output before the marker (far more than
Console.MAX_MATCH) neither hides the marker nor is searched again from its
start on every chunk (the regex sees each byte a bounded number of times).
"""

import re
import socket
import sys
import threading

import guestlib


class CountingRegex:
    """A compiled regex that counts the bytes each search() looks at."""

    def __init__(self, regex):
        self.regex = regex
        self.scanned = 0

    def search(self, buf, pos=0):
        self.scanned += len(buf) - pos
        return self.regex.search(buf, pos)


def feed(sock, data, chunk):
    def run():
        for i in range(0, len(data), chunk):
            sock.sendall(data[i:i + chunk])
    t = threading.Thread(target=run)
    t.start()
    return t


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)


def main():
    ours, peer = socket.socketpair()
    console = guestlib.Console(ours, "/dev/null", alive=lambda: None)

    # A marker split over 3-byte chunks, with output before and after it.
    t = feed(peer, b"hello world\x1eE42-7:0\x1e\r\nrest", 3)
    m = console.expect(b"\x1eE42-7:([0-9]{1,3})\x1e", 10, "marker")
    t.join()
    check(m.group(1) == b"0", f"status {m.group(1)!r}")
    check(console.before == b"hello world", f"before {console.before!r}")
    console.expect(b"rest", 10, "rest")
    check(console.buf == b"", f"left over {console.buf!r}")

    # 2 MiB of output in 4 KiB chunks, then the marker.
    compiled = []
    real_compile = re.compile

    def counting_compile(pattern, flags=0):
        compiled.append(CountingRegex(real_compile(pattern, flags)))
        return compiled[-1]

    big = bytes(i % 251 for i in range(2 << 20)).replace(b"\x1e", b".")
    t = feed(peer, big + b"\x1eEend:17\x1e", 4096)
    guestlib.re.compile = counting_compile
    try:
        m = console.expect(b"\x1eEend:([0-9]{1,3})\x1e", 60, "end marker")
    finally:
        guestlib.re.compile = real_compile
    t.join()
    check(m.group(1) == b"17", f"status {m.group(1)!r}")
    check(console.before == big, "output before the marker is incomplete")
    scanned = compiled[0].scanned
    # Each byte once, plus MAX_MATCH - 1 bytes again per chunk at most.
    bound = len(big) + 64 + (len(big) // 4096 + 2) * console.MAX_MATCH
    check(scanned <= bound, f"searched {scanned} bytes for {len(big)} of "
          f"output (bound {bound}): the buffer is rescanned")
    print(f"2 MiB of output: {scanned} bytes searched (bound {bound})")
    console.close()
    peer.close()


if __name__ == "__main__":
    main()
