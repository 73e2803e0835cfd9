"""file: migration: save to a file (source ends postmigrate with its disks
given up), read it with stormig-analyze, restore it with --incoming file:;
a corrupted or truncated file is refused cleanly and the daemon stays up."""

import json
import os
import subprocess

from qmp import check, run_tests, wait_for

DEV = "pattern-writer,id=pw0,drive=d0,blocks=256,interval=2"


def args(img, *extra):
    return ["--blockdev", f"driver=file,node-name=d0,filename={img}",
            "--device", DEV] + list(extra)


def save(env, img):
    a = env.daemon("a", args(img))
    wait_for(lambda: a.device("pw0")["writes"] >= 20, 10, "writes")
    state = env.path("state.bin")
    a.cmd("migrate", uri="file:" + state)
    m = a.cmd("query-migrate")
    check(m["status"] == "completed" and m["device-state-size"] ==
          os.path.getsize(state), m)
    check(a.status() == "postmigrate" and a.owned() == [], "a gave up")
    return a, state


def analyze(env, path):
    p = subprocess.run([env.analyze, path], capture_output=True, text=True,
                       timeout=10)
    return p.returncode, p.stdout, p.stderr


def find_key(obj, key):
    """Every value stored under key anywhere in a JSON document."""
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                found.append(v)
            found += find_key(v, key)
    elif isinstance(obj, list):
        for v in obj:
            found += find_key(v, key)
    return found


def test_save_analyze_restore(env):
    img = env.image()
    a, state = save(env, img)
    gen = a.device("pw0")["generation"]
    rc, out, err = analyze(env, state)
    check(rc == 0, f"stormig-analyze failed: {err}")
    doc = json.loads(out)
    check("pw0" in out and "stormigd:global" in out, out[:500])
    check(gen in find_key(doc, "generation"),
          f"generation {gen} not in the analysis")
    a.stop()
    b = env.daemon("b", args(img, "--incoming", "file:" + state))
    check(b.cmd("query-migrate")["status"] == "completed", "restored")
    check(b.status() == "running" and b.owned() == ["d0"], "b runs")
    pw = wait_for(lambda: (lambda p: p if not p["verifying"] else None)(
        b.device("pw0")), 10, "verification")
    check(pw["verify-errors"] == 0 and pw["verified-blocks"] > 0, pw)


def corrupt_copies(env, state):
    data = open(state, "rb").read()
    flipped = bytearray(data)
    for i in range(40, len(flipped), 97):
        flipped[i] ^= 0x5a
    variants = {"flipped": bytes(flipped), "truncated": data[:len(data) // 2],
                "empty": b"", "garbage": b"not a state file\n" * 10}
    paths = {}
    for name, content in variants.items():
        paths[name] = env.path(name + ".bin")
        with open(paths[name], "wb") as f:
            f.write(content)
    return paths


def test_corrupted(env):
    img = env.image()
    a, state = save(env, img)
    a.stop()
    for name, path in corrupt_copies(env, state).items():
        b = env.daemon("b-" + name, args(img, "--incoming", "file:" + path))
        m = b.cmd("query-migrate")
        check(m["status"] == "failed" and m.get("error-desc"),
              f"{name}: {m}")
        check(b.alive() and b.status() == "inmigrate" and b.owned() == [],
              f"{name}: daemon stays up, waiting, owning nothing")
        check(b.device("pw0")["generation"] == 0, f"{name}: state untouched")
        rc, _, err = analyze(env, path)
        check(rc != 0 and err.strip(), f"analyze accepted {name}")
        if name == "flipped":
            # The good file still restores into the same daemon.
            b.cmd("migrate-incoming", uri="file:" + state)
            check(b.status() == "running" and b.owned() == ["d0"], "retry")
        check(b.stop() == 0, f"{name}: clean exit")


def crc32c(data):
    """docs/device-state-format.md: reflected 0x82F63B78, ~0 in and out."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def section_payloads(data):
    """{name: payload offset} of every section, and the end tag offset."""
    pos, found = 12, {}
    while data[pos] == 0x01:
        n = data[pos + 1]
        name = data[pos + 2:pos + 2 + n].decode()
        length = int.from_bytes(data[pos + 2 + n + 8:pos + 2 + n + 12], "big")
        found[name] = pos + 2 + n + 12
        pos = found[name] + length
    check(data[pos] == 0x03, "end tag after the sections")
    return found, pos


def patched(data, section, offset, value):
    """data with one payload byte changed and a valid check value, so
    only the loader's range checks can refuse it."""
    out = bytearray(data)
    payloads, end = section_payloads(data)
    out[payloads[section] + offset] = value
    out[end + 1:end + 5] = crc32c(out[:end + 1]).to_bytes(4, "big")
    return bytes(out)


def test_out_of_range(env):
    """Well-formed streams whose values the devices could never have
    saved are refused naming the field; the daemon stays up, waiting."""
    img = env.image()
    devs = ["--blockdev", f"driver=file,node-name=d0,filename={img}",
            "--device", "vhost-user-scsi,id=s0,socket=" + env.path("s.sock"),
            "--device", "scsi-hd,id=hd0,drive=d0,bus=s0"]
    a = env.daemon("a", devs)
    state = env.path("state.bin")
    a.cmd("migrate", uri="file:" + state)
    # A vhost-user controller stops through its I/O thread: the save
    # completes after the command returns.
    wait_for(lambda: a.cmd("query-migrate")["status"] == "completed", 10,
             "saved")
    a.stop()
    data = open(state, "rb").read()
    # scsi-hd: wce, stopped, ua_pending (bools), then ua_key (u8).
    cases = [("stormigd:global", 0, 255, ["running", "255", "maximum 1"]),
             ("hd0", 3, 0xFF, ["ua_key", "255", "maximum 15"]),
             ("hd0", 3, 0x05, ["ua_key 0x5", "UNIT ATTENTION"])]
    for i, (section, offset, value, words) in enumerate(cases):
        path = env.path(f"bad{i}.bin")
        with open(path, "wb") as f:
            f.write(patched(data, section, offset, value))
        b = env.daemon(f"b{i}", devs[:2] + [
            "--device", "vhost-user-scsi,id=s0,socket=" + env.path(f"b{i}.s"),
            "--device", "scsi-hd,id=hd0,drive=d0,bus=s0",
            "--incoming", "file:" + path])
        m = b.cmd("query-migrate")
        desc = m.get("error-desc", "")
        check(m["status"] == "failed" and all(w in desc for w in words),
              f"{section}+{offset}={value}: {m}")
        check(b.alive() and b.status() == "inmigrate" and b.owned() == [],
              "the daemon stays up, waiting, owning nothing")
        check(b.stop() == 0, "clean exit")
    # The unmodified stream restores.
    good = env.daemon("good", devs[:2] + [
        "--device", "vhost-user-scsi,id=s0,socket=" + env.path("g.s"),
        "--device", "scsi-hd,id=hd0,drive=d0,bus=s0",
        "--incoming", "file:" + state])
    check(good.cmd("query-migrate")["status"] == "completed", "restored")


run_tests({
    "save-analyze-restore": test_save_analyze_restore,
    "corrupted": test_corrupted,
    "out-of-range": test_out_of_range,
})
