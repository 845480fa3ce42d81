#!/bin/bash
# The shm null-op (getattr on a ramfs file, 1 outstanding) of two or more ninefold
# binaries, each against its own server, alternating in rounds: on this VM the speed
# of the cores' communication moves by ~0.2 µs between minutes, so builds are only
# compared within one run, turn about. Prints every round, then each binary's mean.
#
#   bench/nullop_builds.sh OLD_BINARY NEW_BINARY [...]     (copies of build/release/ninefold)
#   ROUNDS=4 SECS=2                                        (defaults)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ $# -ge 2 ] || { echo "usage: $0 NINEFOLD_A NINEFOLD_B [...]" >&2; exit 2; }
need_executables "$@"
ROUNDS=${ROUNDS:-4}
SECS=${SECS:-2}
BENCH_DIR=$(mktemp -d /tmp/ninefold-nullop.XXXXXX)
stop_on_exit

declare -A sum
for round in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    rm -f "$BENCH_DIR/s.sock"
    "$bin" serve --listen "shm!$BENCH_DIR/s.sock" --ramfs ram >"$BENCH_DIR/serve.log" 2>&1 &
    server=$!
    PIDS+=("$server")
    for _ in $(seq 100); do [ -S "$BENCH_DIR/s.sock" ] && break; sleep 0.1; done
    out=$("$bin" bench "shm!$BENCH_DIR/s.sock" --aname ram --op getattr --duration "$SECS")
    ops=$(awk '/^  ops /{print $3}' <<<"$out")
    p50=$(sed -n 's/.*latency.* p50 \([0-9.]*\).*/\1/p' <<<"$out")
    printf "round %d  %-40s %10d ops/s  p50 %s us\n" "$round" "$bin" "$ops" "$p50"
    sum[$bin]=$((${sum[$bin]:-0} + ops))
    kill -INT "$server"
    wait "$server" || true
  done
done
for bin in "$@"; do printf "mean  %-40s %10d ops/s\n" "$bin" $((sum[$bin] / ROUNDS)); done
