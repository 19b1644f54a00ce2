#!/usr/bin/env bash
# The test command: installs dependencies, builds ferry, runs the whole test suite.
# Then builds with clang-16 and ASan+UBSan, runs the suite again and runs every fuzzer for
# $FERRY_FUZZ_SECONDS (default 10) each (FERRY_SANITIZE=0 skips that pass).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export UCX_WARN_UNUSED_ENV_VARS=n
JOBS=${JOBS:-$(nproc)}
# Most tests wait on processes, sockets and timers rather than compute, so ctest runs twice as
# many at once as there are cores (tests that start a cluster still run one at a time: their
# RESOURCE_LOCK, tests/CMakeLists.txt).
CTEST_JOBS=${CTEST_JOBS:-$((2 * JOBS))}
# ccache (installed by install-deps.sh) makes a warm rerun's builds a few seconds.
CCACHE=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

echo "== build (RelWithDebInfo) =="
scripts/build.sh build "${CCACHE[@]}"
echo "== tests =="
ctest --test-dir build --output-on-failure -j "$CTEST_JOBS" --timeout 600

if [ "${FERRY_SANITIZE:-1}" != "0" ]; then
  # One clang-16 build serves three checks: ASan+UBSan on the whole suite, the fuzzers (the
  # tree carries libFuzzer's coverage instrumentation) and clang's stricter warnings,
  # -Wthread-safety included. Perf tools and CUDA are not needed for it.
  echo "== build (clang-16, ASan+UBSan, fuzzers) =="
  # The compilers are passed explicitly too: a build-asan left by an older GCC pass is then
  # reconfigured for clang instead of silently keeping GCC.
  # -O1 and line tables only (not -O2 -g): the sanitizers' usual level, still with file:line in
  # every report; one heavy file (control/coordinator.cc) compiled in about a fifth less time.
  CC=clang-16 CXX=clang++-16 scripts/build.sh build-asan -DCMAKE_C_COMPILER=clang-16 \
    -DCMAKE_CXX_COMPILER=clang++-16 -DFERRY_SANITIZE=address -DFERRY_BUILD_PERF=OFF \
    -DFERRY_WITH_CUDA=OFF -DFERRY_BUILD_FUZZERS=ON "${CCACHE[@]}" \
    "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG" \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG"
  echo "== tests (ASan+UBSan) and fuzzers (${FERRY_FUZZ_SECONDS:-10} s each) =="
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j "$CTEST_JOBS" --timeout 900 -LE no-sanitizer
fi
