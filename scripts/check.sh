#!/bin/sh
# make check: build, run every test, then the unit, corpus-replay and
# integration tests again under AddressSanitizer + UBSan, and each fuzz
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

# The guest tests run one at a time and leave most of the second core
# idle; the sanitizer and fuzzing builds (and the fuzz runs, which last a
# fixed time) use it meanwhile, at the lowest CPU priority so the guests
# keep theirs.  Their output is shown when they are done.
asan_build() {
    setup "$ASAN_BUILD" -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debug && ninja -C "$ASAN_BUILD" -j 1
}

# Only the fuzz targets are built (the rest of the tree is built and
# tested in the other two builds).
fuzz_targets() {
    meson introspect --targets "$FUZZ_BUILD" | python3 -c '
import json, os, sys
build = sys.argv[1]
for t in json.load(sys.stdin):
    if t["type"] == "executable" and t["name"].startswith("fuzz-"):
        print(os.path.relpath(t["filename"][0], build))
' "$FUZZ_BUILD"
}
fuzz_build_and_run() {
    CC=clang setup "$FUZZ_BUILD" -Dfuzz=true -Db_lundef=false \
        && ninja -C "$FUZZ_BUILD" -j 1 $(fuzz_targets) || return 0
    touch "$FUZZ_BUILD.built"
    FUZZ_SECONDS=$FUZZ_SECONDS meson test -C "$FUZZ_BUILD" --no-rebuild \
        --num-processes 1 --print-errorlogs --suite fuzz-run
}

background() {
    renice -n 19 -p "$(exec sh -c 'echo $PPID')" >/dev/null
    asan_build >"$ASAN_BUILD.build.log" 2>&1
    echo $? >"$ASAN_BUILD.build.rc"
    fuzz_build_and_run >"$FUZZ_BUILD.run.log" 2>&1
}

echo "== build"
if setup "$BUILD" && ninja -C "$BUILD" -j "$JOBS"; then
    mkdir -p "$ASAN_BUILD" "$FUZZ_BUILD"
    rm -f "$ASAN_BUILD.build.rc" "$FUZZ_BUILD.built"
    echo "== sanitizer and fuzzing builds, fuzzing (${FUZZ_SECONDS}s per" \
         "target): in the background, at low priority"
    ( background ) </dev/null &
    bg_pid=$!
    echo "== tests"
    meson test -C "$BUILD" --num-processes "$JOBS" --print-errorlogs \
        --no-suite fuzz-run
    count_results "$BUILD"
    wait "$bg_pid"
else
    step_failed build
    asan_build >"$ASAN_BUILD.build.log" 2>&1
    echo $? >"$ASAN_BUILD.build.rc"
    fuzz_build_and_run >"$FUZZ_BUILD.run.log" 2>&1
fi

echo "== unit, fuzz-corpus and integration tests under AddressSanitizer + UBSan"
if [ "$(cat "$ASAN_BUILD.build.rc" 2>/dev/null)" = 0 ]; then
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ASAN_OPTIONS=detect_leaks=1 \
        meson test -C "$ASAN_BUILD" --num-processes "$JOBS" \
        --print-errorlogs --suite unit --suite fuzz --suite integration
    count_results "$ASAN_BUILD"
else
    tail -50 "$ASAN_BUILD.build.log"
    step_failed asan-build
fi

echo "== fuzzing (${FUZZ_SECONDS}s per target)"
cat "$FUZZ_BUILD.run.log"
if [ -f "$FUZZ_BUILD.built" ]; then
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
