#!/usr/bin/env bash
# Proves the baselines' result check has teeth: run a tiny sweep on loopback with 2 ranks,
# once clean (every JSON line must say "errors":0) and once with the hidden
# --corrupt-rank 1 flag (every JSON line must say errors > 0).
#   baseline_check_has_teeth.sh mpi  /path/to/mpi-coll
#   baseline_check_has_teeth.sh gloo /path/to/gloo-coll
# Each launch is bounded by `timeout` and retried once (mpirun occasionally hangs at start).
set -uo pipefail
kind=${1:?usage: $0 mpi|gloo BINARY}
bin=${2:?usage: $0 mpi|gloo BINARY}
[[ -x $bin ]] || { echo "FAIL: $bin not executable"; exit 1; }
work=$(mktemp -d /tmp/ferry-teeth.XXXXXX)
trap 'rm -rf "$work"' EXIT
sweep=(--min-bytes 1K --max-bytes 16K --factor 4 --iters 2 --warmup 0 --op sum --dtype f32)

launch() { # launch OUTFILE EXTRA...: one 2-rank run; 0 when it finished in time
  local out=$1
  shift
  if [[ $kind == mpi ]]; then
    timeout -k 2 15 mpirun --allow-run-as-root --oversubscribe -np 2 \
      --mca btl tcp,self --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
      --mca mpi_yield_when_idle 1 --mca orte_tmpdir_base "$work" \
      "$bin" "${sweep[@]}" "$@" >"$out" 2>&1
  else
    local store
    store=$(mktemp -d "$work/store.XXXXXX")
    local pids=() r rc=0
    for r in 0 1; do
      timeout -k 2 15 "$bin" --rank "$r" --size 2 --store-dir "$store" --hostname 127.0.0.1 \
        --algos tree,reduce,ring_chunked,halving_doubling "${sweep[@]}" "$@" \
        >"$out.rank$r" 2>&1 &
      pids+=($!)
    done
    for r in "${pids[@]}"; do wait "$r" || rc=$?; done
    cat "$out.rank0" "$out.rank1" >"$out"
    # exit 1 (errors found) is expected with corruption; only a timeout counts as a hang
    [[ $rc -ne 124 && $rc -ne 137 ]]
    return
  fi
  local rc=$?
  [[ $rc -ne 124 && $rc -ne 137 ]]
}

run() { # run NAME EXTRA...: launch, retrying once on a timeout
  local name=$1
  shift
  launch "$work/$name.txt" "$@" && return 0
  echo "note: $name launch timed out, retrying once"
  launch "$work/$name.txt" "$@"
}

fail=0
run clean || { echo "FAIL: clean run timed out twice"; cat "$work/clean.txt"; exit 1; }
run corrupt --corrupt-rank 1 || { echo "FAIL: corrupt run timed out twice"; cat "$work/corrupt.txt"; exit 1; }

clean_lines=$(grep -c '^{"system"' "$work/clean.txt")
clean_bad=$(grep '^{"system"' "$work/clean.txt" | grep -vc '"errors":0}')
corrupt_lines=$(grep -c '^{"system"' "$work/corrupt.txt")
# In a reduce only the root's result is checked; rank 1 corrupts nothing there, so reduce
# lines are excluded from the "must be > 0" check (and must still be 0).
corrupt_expect=$(grep '^{"system"' "$work/corrupt.txt" | grep -v '"coll":"reduce"')
corrupt_zero=$(grep -c '"errors":0}' <<<"$corrupt_expect")
corrupt_n=$(grep -c . <<<"$corrupt_expect")
echo "clean:   $clean_lines result lines, $clean_bad with errors != 0"
echo "corrupt: $corrupt_lines result lines; $corrupt_n broadcast/allreduce lines, $corrupt_zero of them with errors == 0"
((clean_lines >= 6)) || { echo "FAIL: too few result lines in the clean run"; fail=1; }
((clean_bad == 0)) || { echo "FAIL: the clean run reported errors"; fail=1; }
((corrupt_n >= 3)) || { echo "FAIL: too few result lines in the corrupted run"; fail=1; }
((corrupt_zero == 0)) || { echo "FAIL: corruption went unnoticed"; fail=1; }
if ((fail)); then
  echo "---- clean ----"; cat "$work/clean.txt"; echo "---- corrupt ----"; cat "$work/corrupt.txt"
  exit 1
fi
echo "PASS"
