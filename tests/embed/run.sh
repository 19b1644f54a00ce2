#!/usr/bin/env bash
# embed.add_subdirectory: builds tests/embed (a project embedding ferry) and runs its program.
#   run.sh FERRY_SOURCE_DIR WORK_DIR [COMPILER_LAUNCHER]
set -euo pipefail
# Build type None (no -O, no -g): this is a build check, and unoptimised code compiles faster
# (control/coordinator.cc: -O0 in 60% of the time of -O2 -g).
src=$1 work=$2 launcher=${3:-}
args=(-S "$src/tests/embed" -B "$work" -DFERRY_SOURCE_DIR="$src" -DCMAKE_BUILD_TYPE=None)
if [ -n "$launcher" ]; then
  args+=(-DCMAKE_CXX_COMPILER_LAUNCHER="$launcher" -DCMAKE_C_COMPILER_LAUNCHER="$launcher")
fi
cmake "${args[@]}" > "$work.configure.log" 2>&1 || { cat "$work.configure.log"; exit 1; }
cmake --build "$work" --target embed_smoke -j "$(nproc)" > "$work.build.log" 2>&1 || { tail -50 "$work.build.log"; exit 1; }
exe=$(find "$work" -name embed_smoke -type f -perm -u+x | head -1)
[ -n "$exe" ] || { echo "embed_smoke was not built" >&2; exit 1; }
"$exe"
