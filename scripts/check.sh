#!/bin/sh
# make check: build, run every test, then the unit, corpus-replay and
# integration tests again under AddressSanitizer + UBSan, then each fuzz
# target for a bounded time.
# Prints one closing line "check: N passed, N failed".
set -u
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
ASAN_BUILD=${ASAN_BUILD:-build-asan}
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-15}
JOBS=$(nproc)

passed=0
failed=0
skipped=0
failures=""

# meson writes testlog.json, one JSON object per test.
count_results() {
    log="$1/meson-logs/testlog.json"
    [ -f "$log" ] || return 0
    p=$(grep -c '"result": "OK"' "$log" || true)
    s=$(grep -c '"result": "SKIP"' "$log" || true)
    f=$(grep -Ec '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)
    passed=$((passed + p))
    skipped=$((skipped + s))
    failed=$((failed + f))
    if [ "$f" != 0 ]; then
        failures="$failures $(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    t = json.loads(line)
    if t["result"] not in ("OK", "SKIP", "EXPECTEDFAIL"):
        print(t["name"], end=" ")
' "$log")"
    fi
}

step_failed() {
    failed=$((failed + 1))
    failures="$failures $1"
}

setup() {
    dir=$1; shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || {
            cat "$dir.setup.log"; return 1; }
    fi
}

# The guest tests on QEMU 11.1 run it from a Debian 13 root; building that
# root (minutes, the first time or when its recipe changed) here keeps it
# out of their time limits.  A failure fails those tests, and is counted.
echo "== QEMU 11.1 root (scripts/build-vmm-root.sh)"
sh scripts/build-vmm-root.sh || step_failed vmm-root

echo "== build"
if setup "$BUILD" && ninja -C "$BUILD" -j "$JOBS"; then
    echo "== tests"
    meson test -C "$BUILD" --num-processes "$JOBS" --print-errorlogs \
        --no-suite fuzz-run
    count_results "$BUILD"
else
    step_failed build
fi

echo "== unit, fuzz-corpus and integration tests under AddressSanitizer + UBSan"
if setup "$ASAN_BUILD" -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debug && ninja -C "$ASAN_BUILD" -j "$JOBS"; then
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ASAN_OPTIONS=detect_leaks=1 \
        meson test -C "$ASAN_BUILD" --num-processes "$JOBS" \
        --print-errorlogs --suite unit --suite fuzz --suite integration
    count_results "$ASAN_BUILD"
else
    step_failed asan-build
fi

echo "== fuzzing (${FUZZ_SECONDS}s per target)"
# Only the fuzz targets are built here (the rest of the tree was built
# and tested above).
fuzz_targets() {
    meson introspect --targets "$FUZZ_BUILD" | python3 -c '
import json, os, sys
build = sys.argv[1]
for t in json.load(sys.stdin):
    if t["type"] == "executable" and t["name"].startswith("fuzz-"):
        print(os.path.relpath(t["filename"][0], build))
' "$FUZZ_BUILD"
}
if CC=clang setup "$FUZZ_BUILD" -Dfuzz=true -Db_lundef=false \
        && ninja -C "$FUZZ_BUILD" -j "$JOBS" $(fuzz_targets); then
    FUZZ_SECONDS=$FUZZ_SECONDS meson test -C "$FUZZ_BUILD" --no-rebuild \
        --num-processes "$JOBS" --print-errorlogs --suite fuzz-run
    count_results "$FUZZ_BUILD"
else
    step_failed fuzz-build
fi

echo
if [ -n "$failures" ]; then
    echo "failed:$failures"
fi
echo "check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
