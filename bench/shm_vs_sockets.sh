#!/bin/bash
# The shm transport against Unix sockets and TCP, beside the machine's own limits, in one
# run (`make bench-shm`).
#
#   bench/shm_vs_sockets.sh [BUILD_DIR]        (default build/release; builds nothing)
#
# 1. bench/pingpong: thread round trips over a shared cache line, the shared ring
#    (spinning / sleeping), a futex, an eventfd, a Unix socket, TCP; memcpy of 1 MiB.
# 2. Null-op round trip: `ninefold bench --op getattr` on a ramfs file, 1 outstanding,
#    over shm spinning (the default), shm sleeping (NINEFOLD_SHM_SPIN_US=0 on both
#    sides), unix and tcp: p50 and p99.
# 3. Sequential read of a IO_BYTES (1G) file from ramfs and from exportfs (on tmpfs) in
#    msize-sized requests (1 MiB - 24), READ_OUTSTANDING (4) in flight: MB/s and bytes
#    copied per byte delivered.
#
# Environment: SECONDS_PER_ROW (3), IO_BYTES (1G), READ_OUTSTANDING (4), BENCH_DIR
# (/dev/shm/ninefold-shm-bench, removed at the end). Servers listen on 127.0.0.1 or
# sockets under BENCH_DIR and stop by themselves (timeout) even if this script is killed.
set -euo pipefail

BUILD=${1:-build/release}
NINEFOLD=$BUILD/ninefold
PINGPONG=$BUILD/bench/pingpong
SECS=${SECONDS_PER_ROW:-3}
IO_BYTES=${IO_BYTES:-1G}
READ_OUTSTANDING=${READ_OUTSTANDING:-4}
BENCH_DIR=${BENCH_DIR:-/dev/shm/ninefold-shm-bench}
for f in "$NINEFOLD" "$PINGPONG"; do
  [ -x "$f" ] || { echo "missing $f: cmake --build $BUILD" >&2; exit 2; }
done
command -v perl >/dev/null || { echo "missing perl" >&2; exit 2; }

mkdir -p "$BENCH_DIR/export"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$BENCH_DIR"
}
trap cleanup EXIT

port=$(perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 1)->sockport')
SHM="shm!$BENCH_DIR/shm.sock"
UNIX="unix!$BENCH_DIR/unix.sock"
TCP="tcp!127.0.0.1!$port"

# start_server ENV...: ninefold serve on all three transports with ramfs 'ram' and the
# tmpfs export 'disk'; waits until it answers.
start_server() {
  rm -f "$BENCH_DIR"/*.sock
  env "$@" timeout 1800 "$NINEFOLD" serve --listen "$SHM" --listen "$UNIX" --listen "$TCP" \
    --ramfs ram --export "disk=$BENCH_DIR/export" >"$BENCH_DIR/serve.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    "$NINEFOLD" stat "$TCP" / --aname ram >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "ninefold serve did not start:" >&2
  cat "$BENCH_DIR/serve.log" >&2
  exit 1
}
stop_server() {
  local pid=${PIDS[-1]}
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset 'PIDS[-1]'
}

# json_field JSON KEY...: a number from `ninefold bench --json` (flat or nested keys).
json_field() {
  perl -MJSON::PP -e '$j = decode_json($ARGV[0]); shift; $v = $j; $v = $v->{$_} for @ARGV; printf "%s", $v' "$@"
}

echo "== machine limits (bench/pingpong)"
"$PINGPONG" --iterations 50000
echo

echo "== null-op round trip: getattr on a ramfs file, 1 outstanding, $SECS s each"
printf "%-22s %10s %10s %10s %12s\n" transport "p50 us" "p99 us" "mean us" "ops/s"
getattr_row() {  # NAME ADDR ENV...
  local name=$1 addr=$2
  shift 2
  local out
  out=$(env "$@" "$NINEFOLD" bench "$addr" --aname ram --op getattr --duration "$SECS" \
    --warmup 1 --json)
  printf "%-22s %10.1f %10.1f %10.1f %12.0f\n" "$name" "$(json_field "$out" latency_us p50)" \
    "$(json_field "$out" latency_us p99)" "$(json_field "$out" latency_us mean)" \
    "$(json_field "$out" ops_s)"
}
start_server
"$NINEFOLD" put "$TCP" --aname ram f </dev/null
getattr_row "shm, spinning" "$SHM"
getattr_row unix "$UNIX"
getattr_row tcp "$TCP"
stop_server
start_server NINEFOLD_SHM_SPIN_US=0
getattr_row "shm, sleeping" "$SHM" NINEFOLD_SHM_SPIN_US=0
stop_server
echo

echo "== sequential read, (1 MiB - 24) requests, $READ_OUTSTANDING in flight, $IO_BYTES file, $SECS s each"
printf "%-10s %-22s %12s %16s\n" "back end" transport "MB/s" "copied/byte"
start_server
for tree in ram disk; do
  for t in "shm:$SHM" "unix:$UNIX" "tcp:$TCP"; do
    name=${t%%:*}
    addr=${t#*:}
    out=$("$NINEFOLD" bench "$addr" --aname $tree --op read --file-size "$IO_BYTES" \
      --outstanding "$READ_OUTSTANDING" --duration "$SECS" --warmup 1 --json)
    mbps=$(json_field "$out" mb_s)
    copied=$(json_field "$out" bytes_copied)
    bytes=$(json_field "$out" bytes)
    printf "%-10s %-22s %12.0f %16s\n" $tree "$name" "$mbps" \
      "$(perl -e 'printf "%.2f", $ARGV[1] ? $ARGV[0] / $ARGV[1] : 0' "$copied" "$bytes")"
  done
done
stop_server
