#!/bin/bash
# Spliced reads and writes against copied ones, side by side in one run: the same
# `ninefold serve` export with --splice-pipes 16 (the default: Tread data goes file ->
# pipe -> socket and Twrite data socket -> pipe -> file, inside the kernel) and
# --splice-pipes 0 (pread into memory then send; receive into memory then pwrite), over
# unix and tcp.
#
#   bench/splice_vs_copy.sh [BUILD_DIR]        (default build/release; builds nothing)
#
# Each row: `p9load --op read` of an IO_BYTES file on tmpfs, or `p9load --op write
# --overwrite` of IO_BYTES into an existing file there, in msize-sized requests (msize - 24
# bytes), 4 in flight, no warm-up, ROUNDS rounds alternating which server goes first; the
# table shows the median MB/s of each and their ratio, and the median CPU time the server
# spent per GiB moved (user + system, from /proc/PID/stat: on this machine the client
# shares the two CPUs, so a server that needs less CPU is not always faster here).
#
# Environment: ROUNDS (3), IO_BYTES (1G), BENCH_DIR (/dev/shm/ninefold-splice-bench,
# removed at the end). Servers listen on 127.0.0.1 or a socket under BENCH_DIR and stop by
# themselves (timeout) even if this script is killed.
set -euo pipefail

BUILD=${1:-build/release}
NINEFOLD=$BUILD/ninefold
P9LOAD=$BUILD/bench/p9load
ROUNDS=${ROUNDS:-3}
IO_BYTES=${IO_BYTES:-1G}
BENCH_DIR=${BENCH_DIR:-/dev/shm/ninefold-splice-bench}
source "$(dirname "$0")/lib.sh"
need_executables "$NINEFOLD" "$P9LOAD"

mkdir -p "$BENCH_DIR/export"
stop_on_exit

echo "writing a $IO_BYTES file to $BENCH_DIR/export ..." >&2
head -c "$IO_BYTES" /dev/urandom >"$BENCH_DIR/export/big"
cp "$BENCH_DIR/export/big" "$BENCH_DIR/export/wfile"

# run PIPES: one server, every row once; appends "row pipes mb_s cpu_ms_per_gib" lines to
# $RESULTS.
RESULTS=$BENCH_DIR/results
run() {
  local pipes=$1 port sock pid log
  sock=$BENCH_DIR/s$pipes.sock
  log=$BENCH_DIR/serve$pipes.log
  # tcp port 0: the server picks a free one and logs it.
  timeout 600 "$NINEFOLD" serve --listen 'tcp!127.0.0.1!0' --listen "unix!$sock" \
    --export "$BENCH_DIR/export" --splice-pipes "$pipes" 2>"$log" &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
  port=$(sed -n 's/.*listening on tcp!127\.0\.0\.1!\([0-9]*\)$/\1/p' "$log")
  [ -n "$port" ] || { echo "ninefold serve did not start:" >&2; cat "$log" >&2; exit 1; }
  local server ticks
  server=$(pgrep -P "$pid")  # timeout's child
  ticks=$(getconf CLK_TCK)
  cpu_ms() { awk -v t="$ticks" '{print int(($14 + $15) * 1000 / t)}' "/proc/$server/stat"; }
  for op in read write; do
    local args=(--op read --file big)
    [ "$op" = write ] && args=(--op write --file wfile --overwrite --size "$IO_BYTES")
    for addr in "unix!$sock" "tcp!127.0.0.1!$port"; do
      for msize in 64K 1M; do
        local out mbs bytes before after per_gib
        before=$(cpu_ms)
        out=$("$P9LOAD" --addr "$addr" --aname "$BENCH_DIR/export" "${args[@]}" \
          --outstanding 4 --msize "$msize" --bytes "$IO_BYTES" --warmup 0)
        after=$(cpu_ms)
        mbs=$(sed -n 's/.*mb_s=\([0-9.]*\).*/\1/p' <<<"$out")
        bytes=$(sed -n 's/.* bytes=\([0-9]*\).*/\1/p' <<<"$out")
        per_gib=$(awk -v c=$((after - before)) -v b="$bytes" 'BEGIN{printf "%d", c * 1073741824 / b}')
        echo "$op-${addr%%!*}-$msize $pipes $mbs $per_gib" >>"$RESULTS"
        echo "  $op ${addr%%!*} msize $msize, splice pipes $pipes: $mbs MB/s, server $per_gib ms/GiB" >&2
      done
    done
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  if ((round % 2)); then run 16; run 0; else run 0; run 16; fi
done

echo
fmt='%-16s | %9s | %9s | %6s | %13s | %13s | %6s\n'
printf "$fmt" "medians" "spliced" "copied" "ratio" "spliced CPU" "copied CPU" "ratio"
printf "$fmt" "" "MB/s" "MB/s" "" "ms/GiB" "ms/GiB" ""
printf "$fmt" "---" "---:" "---:" "---:" "---:" "---:" "---:"
for row in {read,write}-{unix,tcp}-{64K,1M}; do
  med() { awk -v r="$row" -v p="$1" -v f="$2" '$1==r && $2==p {print $f}' "$RESULTS" | sort -n |
    awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
  s=$(med 16 3)
  c=$(med 0 3)
  sc=$(med 16 4)
  cc=$(med 0 4)
  printf "$fmt" "$row" "$s" "$c" "$(awk -v s="$s" -v c="$c" 'BEGIN{printf "%.2f", s/c}')" \
    "$sc" "$cc" "$(awk -v s="$sc" -v c="$cc" 'BEGIN{printf "%.2f", (c > 0 ? s / c : 0)}')"
done
echo
echo "every reading (row, splice pipes, MB/s, server CPU ms/GiB) in run order:"
cat "$RESULTS"
