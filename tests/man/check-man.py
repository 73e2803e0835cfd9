"""A program's --help against its manual page: every option --help shows
(and, with --subcommands, every subcommand of its usage lines) must be in
the page, and the page must format without groff warnings.

  check-man.py [--subcommands] MANPAGE PROGRAM [ARG...]
"""

import re
import subprocess
import sys


def help_text(argv):
    p = subprocess.run(argv + ["--help"], capture_output=True, text=True,
                       timeout=10)
    return p.stdout + p.stderr


def page_text(path):
    """The page as text, roff escapes for '-' and fonts undone."""
    with open(path) as f:
        text = f.read()
    text = text.replace("\\-", "-").replace("\\(aq", "'")
    return re.sub(r"\\f[BIRP]", "", text)


def main():
    args = sys.argv[1:]
    subcommands = args[0] == "--subcommands"
    if subcommands:
        args = args[1:]
    page, argv = args[0], args[1:]
    prog = argv[-1].rsplit("/", 1)[-1]
    out = help_text(argv)
    wanted = set(re.findall(r"(?<![\w-])(--?[a-zA-Z][-a-zA-Z0-9]*)", out))
    wanted.discard("-")
    if subcommands:
        wanted |= set(re.findall(rf"{re.escape(prog)} ([a-z]+) ", out))
    if not wanted:
        print(f"FAIL: no option found in {prog} --help:\n{out}")
        return 1
    text = page_text(page)
    missing = sorted(w for w in wanted
                     if not re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])",
                                      text))
    if missing:
        print(f"FAIL: {page} lacks what {prog} --help shows: "
              f"{', '.join(missing)}")
        return 1
    fmt = subprocess.run(["groff", "-man", "-ww", "-z", page],
                         capture_output=True, text=True, timeout=30)
    if fmt.returncode != 0 or fmt.stderr.strip():
        print(f"FAIL: groff warnings for {page}:\n{fmt.stderr}")
        return 1
    print(f"ok: {page} covers {' '.join(sorted(wanted))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
