#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time (the ctest fuzz.* tests call this).
#   run_fuzzer.sh FUZZER SEED_CORPUS_DIR WORK_DIR RSS_LIMIT_MB INPUT_TIMEOUT_S
# Fuzzes for $FERRY_FUZZ_SECONDS (default 10) from the seed corpus (read only), writing new
# inputs into WORK_DIR/corpus and crashing inputs into WORK_DIR/artifacts. With
# FERRY_FUZZ_SECONDS=0 it only runs every seed once (a regression check). Exit status:
# 0 = nothing found; otherwise libFuzzer's (non-zero), after naming the saved input.
set -uo pipefail
fuzzer=$1 seeds=$2 work=$3 rss=$4 input_timeout=$5
seconds=${FERRY_FUZZ_SECONDS:-10}
name=$(basename "$fuzzer")
mkdir -p "$work/corpus" "$work/artifacts"
if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
  echo "$name: seed corpus $seeds is missing or empty" >&2
  exit 1
fi
# A previous run's findings would be mistaken for this run's.
rm -f "$work/artifacts/"*
common=(-rss_limit_mb="$rss" -timeout="$input_timeout" -artifact_prefix="$work/artifacts/"
        -print_final_stats=1)
if [ "$seconds" = "0" ]; then
  "$fuzzer" "${common[@]}" "$seeds"/*
  rc=$?
else
  # Single process, single job: ctest runs the fuzzers side by side with the other tests.
  "$fuzzer" "${common[@]}" -max_total_time="$seconds" "$work/corpus" "$seeds"
  rc=$?
fi
if [ $rc -ne 0 ]; then
  found=$(ls "$work/artifacts/" 2>/dev/null)
  if [ -n "$found" ]; then
    for f in $found; do
      echo "$name: FAILED; input saved as $work/artifacts/$f (reproduce: $fuzzer $work/artifacts/$f)" >&2
    done
  else
    echo "$name: FAILED with exit status $rc and saved no input" >&2
  fi
fi
exit $rc
