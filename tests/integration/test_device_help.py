"""stormigd --device TYPE,help: every device type lists its properties
with type and default, and the list is exactly what the type accepts."""

import re
import subprocess

from qmp import check, run_tests

LINE = re.compile(r"^  ([a-z][-a-z0-9_.]*)=<(str|bool|uint32|uint64)> +- "
                  r"(.+) \((required|default: (.*))\)$")


def run(env, *args):
    p = subprocess.run([env.stormigd] + list(args), capture_output=True,
                       text=True, timeout=10)
    return p.returncode, p.stdout, p.stderr


def device_types(env):
    rc, out, _ = run(env, "--device", "help")
    check(rc == 0, out)
    return [line.split()[0] for line in out.splitlines()[1:]]


def properties(env, dev_type):
    """{name: (type, default or None)} from --device TYPE,help."""
    rc, out, err = run(env, "--device", f"{dev_type},help")
    check(rc == 0, f"{dev_type},help: exit {rc}: {err}")
    lines = out.splitlines()
    check(lines[0] == f"{dev_type} options:", f"header: {lines[0]!r}")
    props = {}
    for line in lines[1:]:
        m = LINE.match(line)
        check(m is not None, f"{dev_type}: malformed help line {line!r}")
        check(len(m.group(3)) > 5, f"{dev_type}: no description: {line!r}")
        props[m.group(1)] = (m.group(2), m.group(5))
    check("id" in props and len(props) > 1, f"{dev_type}: {props}")
    return props


def test_every_type(env):
    types = device_types(env)
    for t in ("vhost-user-scsi", "scsi-hd", "nvme", "pattern-writer"):
        check(t in types, f"{t} missing from --device help: {types}")
    for t in types:
        properties(env, t)
    rc, out, err = run(env, "--device", "no-such-type,help")
    check(rc == 1 and "no-such-type" in err, err)


def with_defaults(props, given):
    """given, plus every other property set to its listed default."""
    opts = dict(given)
    for name, (_, default) in props.items():
        if name not in opts and default is not None:
            opts[name] = default
    return ",".join(f"{k}={v}" for k, v in opts.items())


def test_defaults_accepted(env):
    """Every listed property, set to its listed default, is accepted (so
    each one is really read by the device and each default is valid);
    a property not listed is refused, naming it."""
    img = env.image(size=8 * 1024 * 1024)
    scsi = env.path("s0.sock")
    bd = ["--blockdev", f"driver=file,node-name=d0,filename={img}"]
    given = {
        "vhost-user-scsi": {"id": "s0", "socket": scsi},
        "scsi-hd": {"id": "hd0", "drive": "d0", "bus": "s0", "serial": "HD0"},
        "nvme": {"id": "n0", "socket": env.path("n0.sock"), "drive": "d0",
                 "serial": "N0"},
        "pattern-writer": {"id": "pw0", "drive": "d0"},
    }
    def optstr(t):
        return t + "," + with_defaults(properties(env, t), given[t])

    for t in given:
        devs = ["--device", optstr("vhost-user-scsi")] if t == "scsi-hd" \
            else []
        devs += ["--device", optstr(t)]
        d = env.daemon(t, bd + devs)
        dev_id = given[t]["id"]
        check(any(x["id"] == dev_id for x in d.cmd("query-devices")),
              f"{t}: {dev_id} not in query-devices")
        check(d.stop() == 0, f"{t}: clean exit")
        rc, out, err = run(env, *bd, *devs[:-1], devs[-1] + ",colour=red")
        check(rc == 1 and "colour" in err and f"{t},help" in err,
              f"{t}: unlisted property: {err}")

if __name__ == "__main__":
    run_tests({
        "every-type": test_every_type,
        "defaults-accepted": test_defaults_accepted,
    })
