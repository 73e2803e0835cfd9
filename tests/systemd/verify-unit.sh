#!/bin/sh
# systemd-analyze verify of stormigd@.service, as instance "vm1".
# Usage: verify-unit.sh UNIT INSTALLED_STORMIGD BUILT_STORMIGD
# verify insists that ExecStart's program exists, so the check runs on a
# copy whose ExecStart names the built stormigd, after checking that the
# unit names the path meson installs stormigd to.
set -eu
unit=$1 installed=$2 built=$(realpath "$3")
if ! command -v systemd-analyze >/dev/null; then
    echo "systemd-analyze missing (Debian package systemd)" >&2
    exit 1
fi
grep -q "^ExecStart=$installed " "$unit" || {
    echo "FAIL: ExecStart does not run $installed:" >&2
    grep '^ExecStart=' "$unit" >&2
    exit 1
}
for key in Type=notify RuntimeDirectory=stormig/%i StateDirectory=stormig/pr \
           NoNewPrivileges=yes PrivateTmp=yes \
           "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" \
           "--config /etc/stormig/%i.conf"; do
    grep -q -- "$key" "$unit" || { echo "FAIL: unit lacks $key" >&2; exit 1; }
done
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|^ExecStart=$installed |ExecStart=$built |" "$unit" >"$dir/stormigd@.service"
ln -s stormigd@.service "$dir/stormigd@vm1.service"
# Warnings count as failures too: verify prints them but exits 0.
out=$(systemd-analyze verify --man=no "$dir/stormigd@vm1.service" 2>&1) || {
    echo "$out" >&2
    exit 1
}
if [ -n "$out" ]; then
    echo "$out" >&2
    echo "FAIL: systemd-analyze verify complained" >&2
    exit 1
fi
echo "ok: systemd-analyze verify stormigd@vm1.service"
