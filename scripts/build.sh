#!/usr/bin/env bash
# Configures and builds ferry into a build directory.
#   scripts/build.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
shift || true
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} "$@" > "$BUILD_DIR.cmake.log" 2>&1 || {
  cat "$BUILD_DIR.cmake.log"; exit 1; }
cmake --build "$BUILD_DIR" -j "$JOBS"
