#!/bin/bash
# What several shm queue pairs per connection change, side by side in one run: threads
# sharing one client session (bench/session_threads) making blocking calls back to back
# against `ninefold serve`, over shm with 1 queue pair and with QUEUES (2), and over a
# Unix socket for reference.
#
#   bench/shm_queues.sh [BUILD_DIR]        (default build/release; builds nothing)
#
# Rows: THREADS (1 2 4) threads each doing File::stat (one Tgetattr round trip) and
# File::pread of 64 KiB (one Tread) on a ramfs file. Every round runs each setting once,
# alternating (1 queue, QUEUES queues, unix), so that all see the same machine; the table
# shows the median and the best ops/s over ROUNDS (5) rounds and the ratio of medians
# QUEUES/1. On a loaded 2-core machine single runs are bimodal (the spinning io threads
# and the callers fight for the cores): read the best column too.
# Environment: ROUNDS (5), SECONDS_PER_RUN (2), QUEUES (2), THREADS ("1 2 4"), BENCH_DIR
# (/dev/shm/ninefold-queues-bench, removed at the end). Servers listen on sockets under
# BENCH_DIR and stop by themselves (timeout) even if this script is killed.
set -euo pipefail

BUILD=${1:-build/release}
NINEFOLD=$BUILD/ninefold
CLIENT=$BUILD/bench/session_threads
ROUNDS=${ROUNDS:-5}
SECS=${SECONDS_PER_RUN:-2}
QUEUES=${QUEUES:-2}
THREADS=${THREADS:-1 2 4}
BENCH_DIR=${BENCH_DIR:-/dev/shm/ninefold-queues-bench}
source "$(dirname "$0")/lib.sh"
need_executables "$NINEFOLD" "$CLIENT"

mkdir -p "$BENCH_DIR"
stop_on_exit

# start_server NAME QUEUES: ninefold serve with ramfs 'ram' holding a 1 MiB file 'f', on
# shm and unix sockets named after NAME.
start_server() {
  local name=$1 queues=$2
  rm -f "$BENCH_DIR/$name".*
  timeout 1800 "$NINEFOLD" serve --shm-queues "$queues" \
    --listen "shm!$BENCH_DIR/$name.shm" --listen "unix!$BENCH_DIR/$name.unix" \
    --ramfs ram >"$BENCH_DIR/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    if head -c 1048576 /dev/urandom |
      "$NINEFOLD" put "unix!$BENCH_DIR/$name.unix" f --aname ram >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "ninefold serve did not start:" >&2
  cat "$BENCH_DIR/$name.log" >&2
  exit 1
}
start_server one 1
start_server many "$QUEUES"

# run ADDR THREADS OP [SIZE]: ops/s
run() {
  "$CLIENT" "$1" f --aname ram --threads "$2" --seconds "$SECS" --op "$3" --size "${4:-4096}" |
    sed -n 's/.*ops_s=\([0-9]*\).*/\1/p'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
best() { sort -n | tail -1; }
declare -A R
for round in $(seq "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  for t in $THREADS; do
    for op in stat pread; do
      R[$op,$t,one]+="$(run "shm!$BENCH_DIR/one.shm" "$t" "$op" 65536) "
      R[$op,$t,many]+="$(run "shm!$BENCH_DIR/many.shm" "$t" "$op" 65536) "
      R[$op,$t,unix]+="$(run "unix!$BENCH_DIR/one.unix" "$t" "$op" 65536) "
    done
  done
done

echo "== threads sharing one session: ops/s, median (best) of $ROUNDS rounds of ${SECS} s"
printf "%-14s %18s %18s %18s %12s\n" "op, threads" "shm 1 queue" "shm $QUEUES queues" "unix" \
  "$QUEUES/1 median"
for op in stat pread; do
  for t in $THREADS; do
    cells=()
    for s in one many unix; do
      values=$(tr ' ' '\n' <<<"${R[$op,$t,$s]}" | grep .)
      cells+=("$(median <<<"$values")" "$(best <<<"$values")")
    done
    label="$op"
    [ "$op" = pread ] && label="pread 64K"
    printf "%-14s %18s %18s %18s %11.2fx\n" "$label, $t" "${cells[0]} (${cells[1]})" \
      "${cells[2]} (${cells[3]})" "${cells[4]} (${cells[5]})" \
      "$(awk -v a="${cells[2]}" -v b="${cells[0]}" 'BEGIN { print (b > 0 ? a / b : 0) }')"
  done
done
