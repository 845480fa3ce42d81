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
# bytes), 4 in flight, ROUNDS rounds alternating which server goes first; the table shows
# the median MB/s of each and the ratio spliced / copied.
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
for f in "$NINEFOLD" "$P9LOAD"; do
  [ -x "$f" ] || { echo "missing $f: cmake --build $BUILD" >&2; exit 2; }
done

mkdir -p "$BENCH_DIR/export"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$BENCH_DIR"
}
trap cleanup EXIT

echo "writing a $IO_BYTES file to $BENCH_DIR/export ..." >&2
head -c "$IO_BYTES" /dev/urandom >"$BENCH_DIR/export/big"
cp "$BENCH_DIR/export/big" "$BENCH_DIR/export/wfile"

# run PIPES: one server, every row once; appends "row pipes mb_s" lines to $RESULTS.
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
  for op in read write; do
    local args=(--op read --file big)
    [ "$op" = write ] && args=(--op write --file wfile --overwrite --size "$IO_BYTES")
    for addr in "unix!$sock" "tcp!127.0.0.1!$port"; do
      for msize in 64K 1M; do
        local out mbs
        out=$("$P9LOAD" --addr "$addr" --aname "$BENCH_DIR/export" "${args[@]}" \
          --outstanding 4 --msize "$msize" --bytes "$IO_BYTES")
        mbs=$(sed -n 's/.*mb_s=\([0-9.]*\).*/\1/p' <<<"$out")
        echo "$op-${addr%%!*}-$msize $pipes $mbs" >>"$RESULTS"
        echo "  $op ${addr%%!*} msize $msize, splice pipes $pipes: $mbs MB/s" >&2
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
printf '%-16s | %14s | %14s | %6s\n' "MB/s" "spliced (med)" "copied (med)" "ratio"
printf '%-16s | %14s | %14s | %6s\n' "---" "---:" "---:" "---:"
for row in {read,write}-{unix,tcp}-{64K,1M}; do
  med() { awk -v r="$row" -v p="$1" '$1==r && $2==p {print $3}' "$RESULTS" | sort -n |
    awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
  s=$(med 16)
  c=$(med 0)
  printf '%-16s | %14s | %14s | %6s\n' "$row" "$s" "$c" "$(awk -v s="$s" -v c="$c" 'BEGIN{printf "%.2f", s/c}')"
done
echo
echo "every reading (row, splice pipes, MB/s) in run order:"
cat "$RESULTS"
