"""The guest harness itself: command output and exit status, quoting, long
commands, timeouts, and QMP stop/cont on a running guest.

Every later guest test trusts Guest.run(); this pins down what it returns.
"""

import time

import guestlib
from guestcheck import expect_equal


def main():
    _, image, workdir = guestlib.setup_test(__doc__)

    def body():
        guest = guestlib.Guest(image, workdir, name="guest")
        try:
            guest.start()
            print(f"boot to prompt {guest.wait_boot():.1f}s")
            check_run(guest)
            check_timeout_and_qmp(guest)
            guest.shutdown()
            expect_equal(guest.proc.returncode, 0, "QEMU exit status after "
                         "poweroff")
        finally:
            guest.close()

    guestlib.run_test(body)


def check_run(guest):
    expect_equal(guest.run("echo one; echo two >&2; sh -c 'exit 3'"),
                 ("one\ntwo\n", 3), "output and status")
    expect_equal(guest.run("false"), ("", 1), "status of false")
    tricky = "it's \"quoted\" $HOME `x` \\ ; & |"
    expect_equal(guest.run("printf '%s\\n' '" + tricky.replace("'", "'\\''")
                           + "'"), (tricky + "\n", 0), "quoting")
    # Far beyond one line of the guest's line editor.
    long_text = "".join(f"{i:04d}" for i in range(900))
    expect_equal(guest.run(f"echo {long_text} | wc -c"),
                 (f"{len(long_text) + 1}\n", 0), "long command")
    # State persists between commands: same shell.
    guest.check("cd /tmp && export HARNESS_VAR=kept")
    expect_equal(guest.run("echo $PWD $HARNESS_VAR"), ("/tmp kept\n", 0),
                 "shell state")


def check_timeout_and_qmp(guest):
    expect_equal(guest.status(), "running", "QMP status")
    guest.qmp.command("stop")
    expect_equal(guest.status(), "paused", "QMP status after stop")
    started = time.monotonic()
    try:
        guest.run("echo paused", timeout=2)
        raise guestlib.GuestError("a paused guest answered a command")
    except guestlib.GuestTimeout:
        pass
    waited = time.monotonic() - started
    if not 1.5 < waited < 10:
        raise guestlib.GuestError(f"2 s timeout fired after {waited:.1f}s")
    guest.qmp.command("cont")
    # The late answer to the timed-out command must not be mistaken for
    # the next one's.
    expect_equal(guest.run("echo resumed"), ("resumed\n", 0),
                 "first command after cont")


if __name__ == "__main__":
    main()
