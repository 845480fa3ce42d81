#!/bin/bash
# The shm transport against Unix sockets and TCP, beside the machine's own limits, in one
# run (`make bench-shm`).
#
#   bench/shm_vs_sockets.sh [BUILD_DIR]        (default build/release; builds nothing)
#
# 1. bench/pingpong: thread round trips over a shared cache line, the shared ring
#    (spinning / sleeping), a futex, an eventfd, a Unix socket, TCP; memcpy of 1 MiB hot
#    (in cache) and cold (from memory: the ceiling of any copying read of a large file).
# 2. Null-op round trip: `ninefold bench --op getattr` on a ramfs file, 1 outstanding,
#    over shm spinning (the default), shm sleeping (NINEFOLD_SHM_SPIN_US=0 on both
#    sides), unix and tcp: p50 and p99.
# 3. Sequential read of a IO_BYTES (1G) file from ramfs and from exportfs (on tmpfs) in
#    1020 KiB requests (the largest page multiple under msize 1 MiB: requests that start
#    on a page are what page sharing needs), READ_OUTSTANDING (4) in flight: over shm once
#    per `ninefold bench --buffer` (private: the client copies, strategy a; shared:
#    buffers in the arena, the server places the data, b; aligned: page-aligned private
#    memory, page sharing c where the server offers it (ramfs), else a copy), then unix
#    and tcp. Each row shows MB/s and bytes copied / placed / shared per byte delivered,
#    as the session counted them (so a row shows the strategy that really ran), then
#    ratios between rows. Delivering is not consuming (a shared page is only mapped; it
#    faults in when read), so the ramfs rows run again with --touch: the client reads
#    every byte it was given, inside the measured time.
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
source "$(dirname "$0")/lib.sh"
need_executables "$NINEFOLD" "$PINGPONG"
command -v perl >/dev/null || { echo "missing perl" >&2; exit 2; }

mkdir -p "$BENCH_DIR/export"
stop_on_exit

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
LIMITS=$("$PINGPONG" --iterations 50000)
echo "$LIMITS"
# A large file's sequential read pays copies from memory, not cache: the cold figure is
# the ceiling for any strategy that copies (a, b).
COLD_MBPS=$(awk '/memcpy 1 MiB \(cold\)/ { print $(NF-1) * 1000 }' <<<"$LIMITS")
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

echo "== sequential read, 1020 KiB requests, $READ_OUTSTANDING in flight, $IO_BYTES file, $SECS s each"
echo "   (copied / placed / shared: bytes the client copied, the server placed in the"
echo "   caller's shared buffer, or shared as pages, per byte delivered)"
printf "%-10s %-22s %10s %8s %8s %8s %8s  %s\n" "back end" transport "MB/s" "GB/s" copied placed \
  shared strategy
declare -A MBPS
read_row() {  # TREE NAME ADDR [BUFFER [MORE BENCH OPTIONS]]
  local tree=$1 name=$2 addr=$3 buffer=${4:-private}
  shift 4 2>/dev/null || shift $#
  local out bytes copied placed shared strategy
  out=$("$NINEFOLD" bench "$addr" --aname "$tree" --op read --file-size "$IO_BYTES" --size 1020K \
    --outstanding "$READ_OUTSTANDING" --buffer "$buffer" --duration "$SECS" --warmup 1 --json "$@")
  MBPS[$tree,$name]=$(json_field "$out" mb_s)
  bytes=$(json_field "$out" bytes)
  copied=$(json_field "$out" bytes_copied)
  placed=$(json_field "$out" bytes_placed)
  shared=$(json_field "$out" bytes_shared)
  # The strategy that moved (nearly) every byte, from the counters.
  strategy=$(perl -e 'my ($b, %n) = @ARGV; my @s = grep { $b && $n{$_} >= 0.99 * $b } sort keys %n;
    print @s ? $s[0] : "mixed"' "$bytes" "a: copy" "$copied" "b: placed" "$placed" \
    "c: shared" "$shared")
  printf "%-10s %-22s %10.0f %8.2f %8.2f %8.2f %8.2f  %s\n" "$tree" "$name" "${MBPS[$tree,$name]}" \
    "$(perl -e 'print $ARGV[0] / 1000' "${MBPS[$tree,$name]}")" \
    "$(json_field "$out" copied_per_byte)" "$(json_field "$out" placed_per_byte)" \
    "$(json_field "$out" shared_per_byte)" "$strategy"
}
ratio() {  # TREE LABEL A B: "LABEL: N.Nx", MB/s of row A over row B
  printf "%-10s %-30s %6.1fx\n" "$1" "$2:" \
    "$(perl -e 'printf "%.3f", $ARGV[1] > 0 ? $ARGV[0] / $ARGV[1] : 0' "${MBPS[$1,$3]}" \
      "${MBPS[$1,$4]}")"
}
start_server
for tree in ram disk; do
  read_row $tree "shm --buffer private" "$SHM" private
  read_row $tree "shm --buffer shared" "$SHM" shared
  read_row $tree "shm --buffer aligned" "$SHM" aligned
  read_row $tree unix "$UNIX"
  read_row $tree tcp "$TCP"
done
read_row ram "shm private, touched" "$SHM" private --touch
read_row ram "shm shared, touched" "$SHM" shared --touch
read_row ram "shm aligned, touched" "$SHM" aligned --touch
read_row ram "tcp, touched" "$TCP" private --touch
echo
for tree in ram disk; do
  ratio $tree "shm placed vs tcp" "shm --buffer shared" tcp
  ratio $tree "shm placed vs unix" "shm --buffer shared" unix
  ratio $tree "shm placed vs shm copy" "shm --buffer shared" "shm --buffer private"
  ratio $tree "shm aligned vs tcp" "shm --buffer aligned" tcp
  ratio $tree "shm aligned vs shm copy" "shm --buffer aligned" "shm --buffer private"
  ratio $tree "shm copy vs tcp" "shm --buffer private" tcp
  ratio $tree "shm copy vs unix" "shm --buffer private" unix
  printf "%-10s %-30s %6.2fx\n" $tree "shm placed vs cold memcpy:" \
    "$(perl -e 'printf "%.3f", $ARGV[1] > 0 ? $ARGV[0] / $ARGV[1] : 0' \
      "${MBPS[$tree,shm --buffer shared]}" "${COLD_MBPS:-0}")"
done
ratio ram "touched: shm aligned vs tcp" "shm aligned, touched" "tcp, touched"
ratio ram "touched: shm placed vs tcp" "shm shared, touched" "tcp, touched"
ratio ram "touched: shm copy vs tcp" "shm private, touched" "tcp, touched"
stop_server
