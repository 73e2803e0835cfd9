#!/bin/sh
# Runs a throw-away tgtd for the scsi-block tests.
#   tgtd-helper.sh start DIR PORT IMAGE IQN  - tgtd on 127.0.0.1:PORT with
#       target IQN, LUN 1 backed by IMAGE, open to every initiator
#   tgtd-helper.sh stop DIR                  - kill it (SIGKILL: the
#       sessions drop at once, as in a crash)
#   tgtd-helper.sh freeze DIR / thaw DIR      - SIGSTOP / SIGCONT
# The control port (-C, at most a few thousand) is derived from the iSCSI
# port, so parallel runs do not meet.
set -eu
cmd=$1 dir=$2
pidfile=$dir/tgtd.pid

case $cmd in
start)
    port=$3 image=$(realpath "$4") iqn=$5
    ctl=$((port % 4000 + 100))
    mkdir -p "$dir"
    tgtd -f --iscsi "portal=127.0.0.1:$port" -C "$ctl" \
        >"$dir/tgtd.log" 2>&1 &
    echo $! >"$pidfile"
    i=0
    until tgtadm -C "$ctl" --lld iscsi --op show --mode target \
            >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 50 ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "tgtd did not start:" >&2
            cat "$dir/tgtd.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    tgtadm -C "$ctl" --lld iscsi --op new --mode target --tid 1 -T "$iqn"
    tgtadm -C "$ctl" --lld iscsi --op new --mode logicalunit --tid 1 \
        --lun 1 -b "$image"
    tgtadm -C "$ctl" --lld iscsi --op bind --mode target --tid 1 -I ALL
    ;;
stop)
    [ -f "$pidfile" ] || exit 0
    pid=$(cat "$pidfile")
    kill -KILL "$pid" 2>/dev/null || true
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
        i=$((i + 1))
        sleep 0.1
    done
    rm -f "$pidfile"
    ;;
freeze)
    kill -STOP "$(cat "$pidfile")"
    ;;
thaw)
    kill -CONT "$(cat "$pidfile")"
    ;;
*)
    echo "usage: $0 start|stop|freeze|thaw DIR ..." >&2
    exit 2
    ;;
esac
