#!/bin/sh
# Runs a throw-away tgtd for the scsi-block tests.
#   tgtd-helper.sh start DIR PORT IMAGE IQN  - tgtd on 127.0.0.1:PORT with
#       target IQN, LUN 1 backed by IMAGE, open to every initiator
#   tgtd-helper.sh stop DIR                  - kill it (SIGKILL: the
#       sessions drop at once, as in a crash)
#   tgtd-helper.sh freeze DIR / thaw DIR      - SIGSTOP / SIGCONT
# The control port (-C, at most a few thousand) is derived from the iSCSI
# port; one another tgtd holds (a parallel run, or one a killed test left
# frozen) is skipped for the next candidate.
set -eu
cmd=$1 dir=$2
pidfile=$dir/tgtd.pid

case $cmd in
start)
    port=$3 image=$(realpath "$4") iqn=$5
    mkdir -p "$dir"
    # The control port is derived from the iSCSI port; another tgtd (of a
    # parallel run, or one left frozen by a killed test) may hold it: then
    # ours exits at once and the next candidate is tried. tgtadm is always
    # time-limited, as a stopped tgtd never answers.
    ctl=
    for attempt in 0 1 2 3 4 5 6 7; do
        cand=$(( (port + attempt * 7919) % 4000 + 100 ))
        tgtd -f --iscsi "portal=127.0.0.1:$port" -C "$cand" \
            >"$dir/tgtd.log" 2>&1 &
        pid=$!
        echo $pid >"$pidfile"
        i=0
        while kill -0 "$pid" 2>/dev/null; do
            if timeout 2 tgtadm -C "$cand" --lld iscsi --op show \
                    --mode target >/dev/null 2>&1; then
                ctl=$cand
                break
            fi
            i=$((i + 1))
            if [ $i -gt 50 ]; then
                break
            fi
            sleep 0.1
        done
        [ -n "$ctl" ] && break
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        grep -q "another tgtd" "$dir/tgtd.log" || break
    done
    if [ -z "$ctl" ]; then
        echo "tgtd did not start:" >&2
        cat "$dir/tgtd.log" >&2
        exit 1
    fi
    echo "$ctl" >"$dir/ctl"
    adm() { timeout 10 tgtadm -C "$ctl" --lld iscsi "$@"; }
    adm --op new --mode target --tid 1 -T "$iqn"
    adm --op new --mode logicalunit --tid 1 --lun 1 -b "$image"
    adm --op bind --mode target --tid 1 -I ALL
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
