"""query-qmp-schema over the wire, as a QMP client that introspects QEMU
would read it: every command is there with its arguments, and what the
schema says is what the monitor enforces. The client here speaks the
documented protocol (QEMU's docs/interop/qmp-spec) on a plain socket, not
through the tests' own qmp.py."""

import json
import socket

from qmp import check, run_tests

WRONG_VALUE = {"str": 12345, "int": "x", "bool": "x", "number": "x",
               "[str]": "x"}


class WireClient:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 0
        greeting = self.read()
        check("QMP" in greeting and "version" in greeting["QMP"] and
              "capabilities" in greeting["QMP"], f"greeting {greeting}")
        check(self.execute("qmp_capabilities") == {}, "negotiation")

    def read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("monitor closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def request(self, name, args=None):
        """The response (events skipped) to one command, matched by id."""
        self.next_id += 1
        req = {"execute": name, "id": self.next_id}
        if args is not None:
            req["arguments"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\r\n")
        while True:
            rsp = self.read()
            if "event" not in rsp:
                check(rsp.get("id") == self.next_id, f"id of {rsp}")
                return rsp

    def execute(self, name, args=None):
        rsp = self.request(name, args)
        check("return" in rsp, f"{name}: {rsp}")
        return rsp["return"]

    def error(self, name, args):
        rsp = self.request(name, args)
        check("error" in rsp, f"{name} {args}: no error: {rsp}")
        return rsp["error"]["desc"]


def test_schema(env):
    d = env.daemon("schema", [])
    c = WireClient(d.sock_path)
    schema = c.execute("query-qmp-schema")
    entries = {e["name"]: e for e in schema}
    check(len(entries) == len(schema), "schema names are unique")
    for e in schema:
        check(e["meta-type"] in ("command", "object", "builtin", "array"),
              f"meta-type of {e}")
    commands = [x["name"] for x in c.execute("query-commands")]
    for name in ("query-qmp-schema", "migrate", "migrate-incoming",
                 "query-migrate", "quit", "nvme-ns-changed"):
        check(name in commands, f"{name} not in query-commands")
    listed = sorted(n for n, e in entries.items()
                    if e["meta-type"] == "command")
    check(listed == sorted(commands),
          f"schema commands {listed} != query-commands {sorted(commands)}")

    # Every type a command or member names is defined.
    def members(name):
        cmd = entries[name]
        arg_type = entries.get(cmd["arg-type"])
        check(arg_type is not None and arg_type["meta-type"] == "object",
              f"{name}: arg-type {cmd['arg-type']} is not a described "
              "object")
        check(cmd["ret-type"] in entries, f"{name}: ret-type undefined")
        for m in arg_type["members"]:
            check(m["type"] in entries, f"{name}.{m['name']}: type "
                  f"{m['type']} undefined")
        return {m["name"]: (m["type"], "default" in m)
                for m in arg_type["members"]}

    args = {name: members(name) for name in commands}
    check(args["migrate"] == {"uri": ("str", False),
                              "detach": ("bool", True),
                              "vmm-stop": ("bool", True),
                              "peer-timeout": ("int", True)},
          f"migrate: {args['migrate']}")
    check(args["migrate-incoming"] == {"uri": ("str", False),
                                       "peer-timeout": ("int", True)},
          f"migrate-incoming: {args['migrate-incoming']}")
    check(args["nvme-ns-changed"] == {"id": ("str", False),
                                      "nsid": ("int", False)},
          f"nvme-ns-changed: {args['nvme-ns-changed']}")
    check(args["query-status"] == {}, "query-status takes nothing")

    # What the schema says is what the monitor enforces; all of these are
    # refused before the command runs, so even quit stays harmless.
    for name, mem in args.items():
        if name == "qmp_capabilities":
            continue        # only valid before negotiation
        desc = c.error(name, {"no-such-argument": 1})
        check("Parameter 'no-such-argument' is unexpected" in desc,
              f"{name}: unknown argument: {desc}")
        required = [m for m, (_, opt) in mem.items() if not opt]
        if required:
            desc = c.error(name, {})
            check(f"Parameter '{required[0]}' is missing" in desc,
                  f"{name}: missing {required[0]}: {desc}")
        for m, (mtype, _) in mem.items():
            desc = c.error(name, {m: WRONG_VALUE[mtype]})
            check(f"Invalid parameter type for '{m}'" in desc,
                  f"{name}.{m} ({mtype}): {desc}")
    check(c.execute("query-status")["status"] == "running",
          "the daemon still runs")


if __name__ == "__main__":
    run_tests({"schema": test_schema})
