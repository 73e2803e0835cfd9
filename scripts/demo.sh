#!/bin/sh
# make demo: a live migration between two stormigd processes.
#
# Starts a source stormigd with a pattern-writer (a test device that writes
# verifiable blocks and keeps each block's generation as device state) on a
# scratch image, and a destination waiting for it; migrates; reports the
# downtime, the device-state size, who owns the disk before and after, and
# what the destination found when it read every block back. Then saves the
# destination's state to a file, shows it with stormig-analyze, and
# restores it into a third process. Finally a real QEMU guest whose SCSI
# disks stormigd serves over vhost-user migrates to a second QEMU+stormigd
# pair while fio verifies its disks (tests/guest/demo_vm_migration.py).
#
# Usage: scripts/demo.sh BUILD_DIR
set -eu

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STORMIGD=$BUILD/stormigd
QMP="python3 $ROOT/tools/stormig-qmp"
ANALYZE=$BUILD/stormig-analyze

if [ ! -x "$STORMIGD" ]; then
    echo "demo: $STORMIGD not found (run 'make build' first)" >&2
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stormig-demo.XXXXXX")
PIDS=""
cleanup() {
    for pid in $PIDS; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

IMG=$WORK/disk.img
truncate -s 16M "$IMG"
DISK="driver=file,node-name=disk0,filename=$IMG"
WRITER="pattern-writer,id=writer0,drive=disk0,block-size=4096,blocks=32,interval=5"

# start NAME ARGS...: runs stormigd in the background, waits for its monitor.
start() {
    name=$1
    shift
    "$STORMIGD" --name "$name" --monitor "unix:$WORK/$name.qmp" \
        --blockdev "$DISK" --device "$WRITER" "$@" 2>"$WORK/$name.log" &
    PIDS="$PIDS $!"
    i=0
    until $QMP "$WORK/$name.qmp" query-status >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
            echo "demo: $name did not start:" >&2
            cat "$WORK/$name.log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

q() {   # q NAME COMMAND [ARGS] [--field PATH]
    name=$1
    shift
    $QMP "$WORK/$name.qmp" "$@"
}

field() {   # field NAME COMMAND PATH
    $QMP --field "$3" "$WORK/$1.qmp" "$2"
}

owner() {   # which of the given daemons owns disk0
    out=""
    for name in "$@"; do
        if [ "$(field "$name" query-block 0.owned)" = "true" ]; then
            out="$out $name"
        fi
    done
    echo "${out:- nobody}"
}

wait_status() {   # wait_status NAME STATUS...
    name=$1
    shift
    i=0
    while :; do
        st=$(field "$name" query-migrate status)
        for want in "$@"; do
            [ "$st" = "$want" ] && return 0
        done
        i=$((i + 1))
        [ $i -gt 300 ] && { echo "demo: $name stuck in '$st'" >&2; exit 1; }
        sleep 0.05
    done
}

wait_verified() {
    i=0
    while [ "$(field "$1" query-devices 0.verifying)" = "true" ]; do
        i=$((i + 1))
        [ $i -gt 200 ] && { echo "demo: verification stuck" >&2; exit 1; }
        sleep 0.05
    done
}

echo "== 1. two stormigd processes sharing $(basename "$IMG") (16 MiB)"
start source
start destination --incoming "unix:$WORK/migrate.sock"
sleep 1
echo "source:       $(field source query-status status)," \
     "$(field source query-devices 0.writes) writes so far"
echo "destination:  $(field destination query-status status)"
echo "disk owner:  $(owner source destination)"

echo
echo "== 2. live migration source -> destination (unix socket)"
q source migrate "{\"uri\": \"unix:$WORK/migrate.sock\"}" >/dev/null
wait_status source completed failed
wait_status destination completed failed
wait_verified destination
sleep 0.5

echo "status:             $(field source query-migrate status)"
echo "downtime:           $(field source query-migrate downtime) ms" \
     "(devices stopped on the source -> destination acknowledged)"
echo "setup time:         $(field source query-migrate setup-time) ms"
echo "total time:         $(field source query-migrate total-time) ms"
echo "device-state size:  $(field source query-migrate device-state-size) bytes"
echo "run states:         source $(field source query-status status)," \
     "destination $(field destination query-status status)"
echo "disk owner after:  $(owner source destination)"
echo "destination verify: $(field destination query-devices 0.verified-blocks)" \
     "blocks read back, $(field destination query-devices 0.verify-errors) errors"
echo "destination writes: $(field destination query-devices 0.writes)" \
     "(the count carried over, still growing)"

echo
echo "== 3. save the destination to a file, read it with stormig-analyze"
q destination migrate "{\"uri\": \"file:$WORK/state.bin\"}" >/dev/null
echo "saved $(stat -c %s "$WORK/state.bin") bytes;" \
     "destination is now $(field destination query-status status)," \
     "disk owner:$(owner source destination)"
if [ -x "$ANALYZE" ]; then
    "$ANALYZE" "$WORK/state.bin"
    echo
else
    echo "(stormig-analyze not built)"
fi

echo
echo "== 4. restore the file into a third process"
start restored --incoming "file:$WORK/state.bin"
wait_verified restored
echo "restored: $(field restored query-status status)," \
     "$(field restored query-devices 0.verified-blocks) blocks verified," \
     "$(field restored query-devices 0.verify-errors) errors," \
     "disk owner:$(owner source destination restored)"

errors=$(( $(field destination query-devices 0.verify-errors) +
           $(field restored query-devices 0.verify-errors) ))
if [ "$errors" != 0 ]; then
    echo "demo: $errors verify errors"
    exit 1
fi

echo
echo "== 5. SCSI over vhost-user: a QEMU VM migrated between two" \
     "QEMU+stormigd pairs under fio verify"
if ! python3 "$ROOT/tests/guest/demo_vm_migration.py" \
        --stormigd "$STORMIGD" \
        --build-script "$ROOT/scripts/build-guest.sh" \
        --image-dir "$BUILD/tests/guest/image" --work-dir "$WORK/vm"; then
    echo "demo: the VM migration failed (logs were in $WORK/vm)"
    exit 1
fi

# ---- NVMe over vfio-user -------------------------------------------------
# A small VM (stormig-testvm) drives an NVMe controller served by one
# stormigd over vfio-user, with a verifying workload on 4 queues and 2
# namespaces, and live-migrates to a second stormigd: guest memory by
# pre-copy, the controller's state through vfio-user, the disks with the
# daemons' own migration.
nvme_demo() {
    testvm=$BUILD/stormig-testvm
    if [ ! -x "$testvm" ]; then
        echo "demo: $testvm not found" >&2
        exit 1
    fi
    nd=$WORK/nvme
    mkdir -p "$nd"
    truncate -s 16M "$nd/n0.img" "$nd/n1.img"
    for side in A B; do
        set -- --name "nvme-$side" --monitor "unix:$nd/$side.qmp" \
            --blockdev "driver=file,node-name=n0,filename=$nd/n0.img" \
            --blockdev "driver=file,node-name=n1,filename=$nd/n1.img" \
            --device "nvme,id=nvme0,socket=$nd/$side.sock,drive=n0:n1,serial=DEMO,num-queues=4"
        [ "$side" = B ] && set -- "$@" --incoming defer
        "$STORMIGD" "$@" 2>"$nd/$side.log" &
        PIDS="$PIDS $!"
    done
    sleep 0.5
    echo
    echo "== 6. NVMe over vfio-user: a test VM migrates between two stormigd"
    if ! "$testvm" migrate-test --src-socket "$nd/A.sock" \
            --dst-socket "$nd/B.sock" --src-qmp "$nd/A.qmp" \
            --dst-qmp "$nd/B.qmp" --rounds 1 --queues 4 --qd 32 \
            --namespaces 2 --round-ms 500 >"$nd/out" 2>&1; then
        cat "$nd/out"
        echo "demo: NVMe migration FAILED"
        exit 1
    fi
    sed -n 's/^round 0: A -> other: downtime \([0-9]*\) us, device state \([0-9]*\) bytes, in flight at stop \([0-9]*\),.*/downtime:           \1 us (VM paused -> running on the destination)\
device-state size:  \2 bytes (controller, queues, pending completions)\
in flight at stop:  \3 commands/p' "$nd/out"
    sed -n 's/^ops \([0-9]*\) (.*verified \([0-9]*\))/workload:           \1 commands, \2 reads verified/p' "$nd/out"
    sed -n 's/^errors: /verify result:      /p' "$nd/out"
    echo "demo (nvme): OK"
}
nvme_demo

# ---- SCSI persistent reservations move with the VM -----------------------
# A QEMU guest reserves its scsi-block disk (a tgtd LUN) with sg_persist
# and migrates to a second QEMU+stormigd pair: the reservation goes along
# (docs/migrate-pr.md). Shows the holder before and after, fio verify on
# the destination and the handoff and takeover times.
pr_demo() {
    prtest=$BUILD/stormig-prtest
    echo
    echo "== 7. SCSI persistent reservation moves with a QEMU VM"
    if [ ! -x "$prtest" ]; then
        echo "demo: $prtest not found (built without libiscsi): skipped"
        return 0
    fi
    if ! STORMIG_PRTEST="$prtest" python3 \
            "$ROOT/tests/guest/demo_pr_migration.py" \
            --stormigd "$STORMIGD" \
            --build-script "$ROOT/scripts/build-guest.sh" \
            --image-dir "$BUILD/tests/guest/image" --work-dir "$WORK/pr"; then
        echo "demo: the reservation demo failed (logs were in $WORK/pr)"
        exit 1
    fi
    echo "demo (reservations): OK"
}
pr_demo

echo
echo "demo: OK"
