#!/bin/sh
# Fuzzes one target for FUZZ_SECONDS (default 15) with libFuzzer, starting
# from its committed corpus. New inputs and crash artifacts go to WORKDIR.
set -eu
exe=$1 corpus=$2 work=$3
mkdir -p "$work/new" "$work/artifacts"
exec "$exe" "$work/new" "$corpus" \
    -max_total_time="${FUZZ_SECONDS:-15}" -timeout=10 -rss_limit_mb=2048 \
    -error_exitcode=1 -timeout_exitcode=1 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/"
