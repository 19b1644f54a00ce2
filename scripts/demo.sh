#!/usr/bin/env bash
# The demo: installs dependencies, builds ferry, starts a local cluster on loopback (one
# ferry-coord and NODES ferryd, each with its own socket, arena and data-plane endpoint),
# then moves real data through it and checks every byte:
#   1. put an object of SIZE on node 0 and get it on every other node at once (implicit
#      broadcast: receivers chain off each other's partial copies), sha256 on every node;
#   2. an explicit broadcast of a second object to every node;
#   3. a tiny (inline) object, a listing and the cluster status.
# Everything it starts is stopped on exit. Env: NODES (4), SIZE (256MiB), ARENA (1GiB).
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-4}
SIZE=${SIZE:-256MiB}
ARENA=${ARENA:-1GiB}
scripts/install-deps.sh
BUILD_TYPE=${BUILD_TYPE:-Release} scripts/build.sh build-demo -DFERRY_BUILD_TESTS=OFF -DFERRY_BUILD_PERF=OFF > /tmp/ferry-demo-build.log 2>&1 || {
  tail -50 /tmp/ferry-demo-build.log; exit 1; }
BIN=$PWD/build-demo/bin
RUN=$(mktemp -d /tmp/ferry-demo.XXXXXX)
PIDS=()
cleanup() {
  # ferryd first, the coordinator last; SIGKILL only what has not exited within 5 s.
  for ((j = ${#PIDS[@]} - 1; j >= 0; j--)); do kill "${PIDS[j]}" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$RUN"
}
trap cleanup EXIT INT TERM

export UCX_TLS=${UCX_TLS:-tcp,self} UCX_NET_DEVICES=${UCX_NET_DEVICES:-lo} UCX_WARN_UNUSED_ENV_VARS=n
PORT=$((20000 + RANDOM % 20000))
echo "== starting ferry-coord on 127.0.0.1:$PORT and $NODES ferryd (arena $ARENA each, logs in $RUN) =="
"$BIN/ferry-coord" --listen 127.0.0.1:$PORT --log-level warn > "$RUN/coord.log" 2>&1 &
PIDS+=($!)
for i in $(seq 0 $((NODES - 1))); do
  "$BIN/ferryd" --name n$i --coord 127.0.0.1:$PORT --socket "$RUN/n$i.sock" --arena "$ARENA" --log-level warn \
    > "$RUN/n$i.log" 2>&1 &
  PIDS+=($!)
done
ferry() { "$BIN/ferry" "$@"; }
for _ in $(seq 1 100); do
  alive=$(ferry --socket "$RUN/n0.sock" --json status 2>/dev/null | python3 -c \
    'import json,sys; print(sum(1 for n in json.load(sys.stdin)["cluster"] if n["alive"]))' 2>/dev/null || echo 0)
  [ "$alive" = "$NODES" ] && break
  sleep 0.2
done
[ "$alive" = "$NODES" ] || { echo "cluster did not come up:"; tail -n 20 "$RUN"/*.log; exit 1; }
ferry --socket "$RUN/n0.sock" status

echo
echo "== 1. put $SIZE on n0, get it on n1..n$((NODES - 1)) concurrently =="
head -c "$(numfmt --from=iec "${SIZE%B}" 2>/dev/null || echo 268435456)" /dev/urandom > "$RUN/input.bin"
want=$(sha256sum "$RUN/input.bin" | cut -d' ' -f1)
ferry --socket "$RUN/n0.sock" put "$RUN/input.bin" demo/weights-v1
for i in $(seq 1 $((NODES - 1))); do
  ferry --socket "$RUN/n$i.sock" get demo/weights-v1 "$RUN/out$i.bin" 2> "$RUN/get$i.txt" &
done
wait $(jobs -p | tail -n $((NODES - 1)))
fail=0
for i in $(seq 1 $((NODES - 1))); do
  got=$(sha256sum "$RUN/out$i.bin" | cut -d' ' -f1)
  verdict=$([ "$got" = "$want" ] && echo "sha256 OK" || { fail=1; echo "sha256 MISMATCH"; })
  echo "n$i: $verdict; $(grep -o 'from node.*get took [0-9.]* s' "$RUN/get$i.txt" || cat "$RUN/get$i.txt")"
done

echo
echo "== 2. explicit broadcast of a second object from n1 to every node =="
head -c 64M /dev/urandom > "$RUN/second.bin"
ferry --socket "$RUN/n1.sock" put "$RUN/second.bin" demo/weights-v2
ferry --socket "$RUN/n1.sock" bcast demo/weights-v2 --timeout 60s
want2=$(sha256sum "$RUN/second.bin" | cut -d' ' -f1)
for i in $(seq 0 $((NODES - 1))); do
  ferry --socket "$RUN/n$i.sock" get demo/weights-v2 "$RUN/b$i.bin" 2>/dev/null
  [ "$(sha256sum "$RUN/b$i.bin" | cut -d' ' -f1)" = "$want2" ] && echo "n$i: sha256 OK (local copy)" || { fail=1; echo "n$i: MISMATCH"; }
done

echo
echo "== 3. a small object travels inline through the coordinator =="
echo "hello from ferry" | ferry --socket "$RUN/n2.sock" put - demo/greeting
ferry --socket "$RUN/n3.sock" get demo/greeting - 2>/dev/null
ferry --socket "$RUN/n0.sock" ls demo/
echo
echo "== 4. allreduce (i32 sum, 4 MiB) on a static group of every node: a pipelined ring =="
members=$(for i in $(seq 0 $((NODES - 1))); do printf 'n%d ' "$i"; done)
ferry --socket "$RUN/n0.sock" group create demo-ring $members
inputs=""
for i in $(seq 0 $((NODES - 1))); do
  python3 -c "import struct,sys; sys.stdout.buffer.write(struct.pack('<1048576i', *[$i * 1000 + j % 1000 for j in range(1048576)]))" > "$RUN/grad$i.bin"
  ferry --socket "$RUN/n$i.sock" put "$RUN/grad$i.bin" demo/grad$i --dtype i32 > /dev/null
  inputs="$inputs demo/grad$i"
done
ferry --socket "$RUN/n0.sock" group run allreduce demo-ring demo/grad-sum $inputs --dtype i32
for i in $(seq 0 $((NODES - 1))); do
  ferry --socket "$RUN/n$i.sock" get demo/grad-sum "$RUN/sum$i.bin" 2>/dev/null
  python3 -c "
import struct, sys
got = struct.unpack('<1048576i', open('$RUN/sum$i.bin', 'rb').read())
n = $NODES
ok = all(v == 1000 * n * (n - 1) // 2 + n * (j % 1000) for j, v in enumerate(got))
print('n$i: allreduce result', 'OK (every element)' if ok else 'WRONG')
sys.exit(0 if ok else 1)" || fail=1
done

echo
ferry --socket "$RUN/n0.sock" status
[ $fail = 0 ] && echo "demo: all copies verified" || { echo "demo: VERIFICATION FAILED"; exit 1; }
