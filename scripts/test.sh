#!/usr/bin/env bash
# The test command: installs dependencies, builds ferry, runs the whole test suite.
# Then builds with ASan+UBSan and runs the suite again (FERRY_SANITIZE=0 skips that pass).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export UCX_WARN_UNUSED_ENV_VARS=n
JOBS=${JOBS:-$(nproc)}

echo "== build (RelWithDebInfo) =="
scripts/build.sh build
echo "== tests =="
ctest --test-dir build --output-on-failure -j "$JOBS" --timeout 600

if [ "${FERRY_SANITIZE:-1}" != "0" ]; then
  echo "== build (ASan+UBSan) =="
  # Perf tools are not needed for the sanitizer pass.
  scripts/build.sh build-asan -DFERRY_SANITIZE=address -DFERRY_BUILD_PERF=OFF -DFERRY_WITH_CUDA=OFF
  echo "== tests (ASan+UBSan) =="
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j "$JOBS" --timeout 900 -LE no-sanitizer
fi
