#!/bin/sh
# make bench: the benchmarks of docs/performance.md.
#
#   sh bench/run.sh BUILD [--quick] [--sections a,b,...]
#
# The figures come from a release build: when BUILD is not one, a release
# build next to it (BUILD-release, or $BENCH_BUILD) is set up and only
# stormigd and stormig-testvm are built there. Results go to
# bench/results/ (latest.json, latest.md, latest.png).
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD [--quick] [--sections LIST]" >&2
    exit 2
fi
BUILD=$1
shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)

for tool in fio gnuplot qemu-system-x86_64 meson ninja; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "bench: $tool missing (run scripts/install-deps.sh)" >&2
        exit 1
    }
done

buildtype() {
    meson introspect --buildoptions "$1" 2>/dev/null |
        python3 -c 'import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "buildtype"))' \
        2>/dev/null || echo none
}

if [ "$(buildtype "$BUILD")" != release ]; then
    BUILD=${BENCH_BUILD:-$BUILD-release}
    if [ ! -f "$BUILD/build.ninja" ]; then
        echo "bench: setting up the release build $BUILD"
        meson setup "$BUILD" "$ROOT" -Dbuildtype=release >/dev/null
    fi
fi
echo "bench: building stormigd and stormig-testvm in $BUILD"
ninja -C "$BUILD" -j2 stormigd stormig-testvm >/dev/null

mkdir -p "$ROOT/bench/results"
exec python3 "$ROOT/bench/bench.py" --build "$BUILD" --source-root "$ROOT" \
    --out "$ROOT/bench/results" "$@"
