#!/bin/sh
# stormig-prtest against a throw-away tgtd: every scenario passes, and the
# subcommands a test uses as "the third host" say what the LUN holds.
#   test-pr-prtest.sh PRTEST TGTD_HELPER
set -eu
prtest=$1 helper=$2
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=tgtd-prtest-$port
iqn=iqn.2024-01.org.stormig:prtest
img=$dir.img
truncate -s 4M "$img"
trap 'sh "$helper" stop "$dir"; rm -f "$img"' EXIT
sh "$helper" start "$dir" "$port" "$img" "$iqn"
url=iscsi://127.0.0.1:$port/$iqn/1

"$prtest" run "$url" > "$dir/run.txt" || { cat "$dir/run.txt"; exit 1; }
cat "$dir/run.txt"
# 7 scenarios for each of the 6 types, and the registration handoff.
grep -c ' PASS ' "$dir/run.txt" | grep -qx 43
! grep -q ' FAIL ' "$dir/run.txt"
for t in we ea we-ro ea-ro we-ar ea-ar; do
    grep -q "^$t  *handoff  *PASS" "$dir/run.txt"
done

# The third host's view after the run cleaned up, then one registration.
"$prtest" show "$url" > "$dir/show0.txt"
grep -qx 'keys none' "$dir/show0.txt"
grep -qx 'reservation none' "$dir/show0.txt"
[ "$("$prtest" out "$url" iqn.2024-01.org.stormig:sh-a register none 0 \
     0x1234)" = GOOD ]
"$prtest" show "$url" > "$dir/show.txt"
cat "$dir/show.txt"
grep -qx 'keys 0x1234' "$dir/show.txt"
# No reservation: another nexus may write.
[ "$("$prtest" rw "$url" iqn.2024-01.org.stormig:sh-c write 8)" = GOOD ]
# A failure exits non-zero.
if "$prtest" run iscsi://127.0.0.1:1/$iqn/1 >/dev/null 2>&1; then
    echo "run against nothing succeeded"; exit 1
fi
echo ok
