#!/bin/bash
# diod and `ninefold serve` side by side: both on loopback exporting the same directory
# (plus the ctl tree), the same client workload against each, one table of ratios.
#
#   bench/server_vs_diod.sh [BUILD_DIR]        (default build/release; builds nothing)
#
# Rows (each run REPEAT times, default 3, alternating which server goes first; the table
# shows the median and the best round of each server):
#   getattr 1/16 outstanding   p9load --op getattr on the 1 GiB file, one connection
#   diodload -g -n 1/16        diodload's getattr loop on ctl/null, 1 resp. 16 threads
#   read/write msize 64K/1M    p9load, 1 GiB sequential, IO_OUTSTANDING (4) in flight;
#                              each write makes a new file (tmpfs allocates its pages)
#   overwrite msize 64K/1M     the same writes into an existing 1 GiB file (p9load
#                              --overwrite): the server's work without the allocation
#   create+unlink 1/16         p9load --op create: Twalk, Tlcreate, Tclunk, Twalk, Tremove
#   RSS, RssAnon               VmRSS (all resident pages) and RssAnon (private memory)
#                              of each fresh server, idle and with 100 and 1000 idle
#                              connections (p9load --idle-connections); VmHWM at the end
# The msize columns show what each server negotiated (diod caps it at 64 KiB).
#
# Environment: REPEAT (3), OP_SECONDS (4: duration of the getattr and create rows),
# IO_BYTES (1G), IO_OUTSTANDING (4), THREADS (ninefold serve --threads, default 8; diod
# keeps its default of 16), BENCH_DIR (/dev/shm/ninefold-bench: tmpfs, so that the disk
# is not what is measured; removed at the end). Servers listen on 127.0.0.1 only and stop
# by themselves (timeout) even if this script is killed.
set -euo pipefail

BUILD=${1:-build/release}
NINEFOLD=$BUILD/ninefold
P9LOAD=$BUILD/bench/p9load
REPEAT=${REPEAT:-3}
OP_SECONDS=${OP_SECONDS:-4}
IO_BYTES=${IO_BYTES:-1G}
IO_OUTSTANDING=${IO_OUTSTANDING:-4}
THREADS=${THREADS:-8}
BENCH_DIR=${BENCH_DIR:-/dev/shm/ninefold-bench}
SERVER_SECONDS=900  # hard limit on each server's life

for f in "$NINEFOLD" "$P9LOAD"; do
  [ -x "$f" ] || { echo "missing $f: cmake --build $BUILD" >&2; exit 2; }
done
for tool in diod diodload perl; do
  command -v $tool >/dev/null || { echo "missing $tool (scripts/install-deps.sh)" >&2; exit 2; }
done

EXPORT=$BENCH_DIR/export
mkdir -p "$EXPORT"
chmod 755 "$BENCH_DIR" "$EXPORT"
# The 1 GiB file every read row reads and the one the overwrite rows write; created once,
# reused by every row.
for f in big wfile; do
  if [ "$(stat -c %s "$EXPORT/$f" 2>/dev/null || echo 0)" != 1073741824 ]; then
    rm -f "$EXPORT/$f"
    fallocate -l 1G "$EXPORT/$f" 2>/dev/null || dd if=/dev/zero of="$EXPORT/$f" bs=1M count=1024 status=none
  fi
done

source "$(dirname "$0")/lib.sh"
stop_on_exit

free_port() {
  perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 1)->sockport, "\n"'
}

# Server PIDs are those of `timeout`'s child, so /proc/PID/status is the server's own.
DIOD_PORT=$(free_port)
timeout -k 5 $SERVER_SECONDS diod -f -n -c /dev/null -l "127.0.0.1:$DIOD_PORT" \
  -e "$EXPORT" -e ctl >"$BENCH_DIR/diod.log" 2>&1 &
PIDS+=($!)
timeout -k 5 $SERVER_SECONDS "$NINEFOLD" serve --listen 'tcp!127.0.0.1!0' --export "$EXPORT" \
  --ctl --threads "$THREADS" >"$BENCH_DIR/ninefold.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "listening on tcp" "$BENCH_DIR/ninefold.log" && break; sleep 0.1; done
NF_PORT=$(sed -n 's/.*listening on tcp!127\.0\.0\.1!\([0-9]*\)$/\1/p' "$BENCH_DIR/ninefold.log")
[ -n "$NF_PORT" ] || { echo "ninefold serve did not start:" >&2; cat "$BENCH_DIR/ninefold.log" >&2; exit 1; }
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$DIOD_PORT") 2>/dev/null && break
  sleep 0.1
done
server_pid() {  # the server process under `timeout`
  pgrep -P "${PIDS[$([ "$1" = diod ] && echo 0 || echo 1)]}" | head -1
}
DIOD_PID=$(server_pid diod)
NF_PID=$(server_pid ninefold)
declare -A ADDR=([diod]="tcp!127.0.0.1!$DIOD_PORT" [ninefold]="tcp!127.0.0.1!$NF_PORT")
declare -A HOSTPORT=([diod]="127.0.0.1:$DIOD_PORT" [ninefold]="127.0.0.1:$NF_PORT")
declare -A PID=([diod]=$DIOD_PID [ninefold]=$NF_PID)

status_kib() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }

declare -A RES MSIZE   # RES[row|server]: space-separated values, one per repetition
ROWS=()
record() {  # record ROW SERVER VALUE [MSIZE]
  [[ " ${ROWS[*]} " == *" $1 "* ]] || ROWS+=("$1")
  RES[$1|$2]="${RES[$1|$2]:-} $3"
  [ -z "${4:-}" ] || MSIZE[$1|$2]=$4
}
kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start ($(date -u +%H:%M) UTC)"
echo "diod $(dpkg-query -W -f '${Version}' diod 2>/dev/null || echo '?') on ${HOSTPORT[diod]} (pid $DIOD_PID);" \
  "ninefold serve --threads $THREADS on ${HOSTPORT[ninefold]} (pid $NF_PID)"

# Memory first, on fresh servers: VmRSS (every resident page, shared library pages
# included) and RssAnon (the server's private memory: heap, stacks), idle and with 100
# and 1000 connections that attached and wait.
ulimit -n 4096 2>/dev/null || true
for s in diod ninefold; do
  record "RSS idle (KiB)" $s "$(status_kib "${PID[$s]}" VmRSS)"
  record "RssAnon idle (KiB)" $s "$(status_kib "${PID[$s]}" RssAnon)"
  for conns in 100 1000; do
    timeout 60 "$P9LOAD" --addr "${ADDR[$s]}" --aname "$EXPORT" --idle-connections $conns \
      >"$BENCH_DIR/idle.out" 2>&1 &
    idle=$!
    for _ in $(seq 400); do grep -q ready "$BENCH_DIR/idle.out" && break; sleep 0.05; done
    grep -q ready "$BENCH_DIR/idle.out" || { cat "$BENCH_DIR/idle.out" >&2; exit 1; }
    sleep 0.5  # let the server finish setting the connections up
    record "RSS $conns idle conns (KiB)" $s "$(status_kib "${PID[$s]}" VmRSS)"
    record "RssAnon $conns idle conns (KiB)" $s "$(status_kib "${PID[$s]}" RssAnon)"
    kill "$idle"; wait "$idle" 2>/dev/null || true
    sleep 0.5  # the server lets the connections go
  done
done

p9load() {  # p9load ROW SERVER METRIC ARGS...: one run, records METRIC and msize
  local row=$1 s=$2 metric=$3 out
  shift 3
  out=$(timeout 120 "$P9LOAD" --addr "${ADDR[$s]}" --aname "$EXPORT" "$@") ||
    { echo "p9load against $s failed: $out" >&2; exit 1; }
  record "$row" "$s" "$(kv "$metric" "$out")" "$(kv msize "$out")"
}
diodload_row() {  # diodload_row ROW SERVER THREADS
  local out
  out=$(timeout 60 diodload -s "${HOSTPORT[$2]}" -n "$3" -r "$OP_SECONDS" -g 2>&1) ||
    { echo "diodload against $2 failed: $out" >&2; exit 1; }
  record "$1" "$2" "$(sed -n 's/^diodload: \([0-9]*\) ops\/s.*/\1/p' <<<"$out")" 65536
}

run_rows() {  # run_rows SERVER: every workload row once against SERVER
  local s=$1
  p9load "getattr, 1 outstanding (ops/s)" $s ops_s --op getattr --file big --outstanding 1 \
    --duration "$OP_SECONDS"
  p9load "getattr, 16 outstanding (ops/s)" $s ops_s --op getattr --file big --outstanding 16 \
    --duration "$OP_SECONDS"
  diodload_row "diodload -g -n 1 (ops/s)" $s 1
  diodload_row "diodload -g -n 16 (ops/s)" $s 16
  for msize in 64K 1M; do
    p9load "read $IO_BYTES, msize $msize (MB/s)" $s mb_s --op read --file big --msize $msize \
      --outstanding "$IO_OUTSTANDING" --bytes "$IO_BYTES"
    p9load "write $IO_BYTES, msize $msize (MB/s)" $s mb_s --op write --size 1G --msize $msize \
      --outstanding "$IO_OUTSTANDING" --bytes "$IO_BYTES"
    p9load "overwrite $IO_BYTES, msize $msize (MB/s)" $s mb_s --op write --file wfile --overwrite \
      --size 1G --msize $msize --outstanding "$IO_OUTSTANDING" --bytes "$IO_BYTES"
  done
  p9load "create+unlink, 1 outstanding (ops/s)" $s ops_s --op create --outstanding 1 \
    --duration "$OP_SECONDS"
  p9load "create+unlink, 16 outstanding (ops/s)" $s ops_s --op create --outstanding 16 \
    --duration "$OP_SECONDS"
}

for r in $(seq "$REPEAT"); do
  if [ $((r % 2)) = 1 ]; then order="diod ninefold"; else order="ninefold diod"; fi
  for s in $order; do
    echo "round $r/$REPEAT: $s" >&2
    run_rows $s
  done
done

for s in diod ninefold; do record "peak RSS, VmHWM (KiB)" $s "$(status_kib "${PID[$s]}" VmHWM)"; done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end ($(date -u +%H:%M) UTC)"
echo

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
best() { tr ' ' '\n' | sed '/^$/d' | sort -g | tail -1; }
ratio() { awk -v d="$1" -v n="$2" 'BEGIN { if (d > 0) printf "%.2f", n / d; else print "-" }'; }
fmt="| %-38s | %10s | %10s | %6s | %10s | %10s | %6s | %-11s |\n"
printf "$fmt" "row (of $REPEAT; RSS: one reading)" "diod med" "9fold med" ratio "diod best" "9fold best" ratio \
  "msize d/n"
printf "$fmt" "---" "---:" "---:" "---:" "---:" "---:" "---:" "---"
for row in "${ROWS[@]}"; do
  d=$(median <<<"${RES[$row|diod]}")
  n=$(median <<<"${RES[$row|ninefold]}")
  bd=$(best <<<"${RES[$row|diod]}")
  bn=$(best <<<"${RES[$row|ninefold]}")
  ms="${MSIZE[$row|diod]:-}"
  [ -z "$ms" ] || ms="$((ms / 1024))K/$((${MSIZE[$row|ninefold]} / 1024))K"
  printf "$fmt" "$row" "$d" "$n" "$(ratio "$d" "$n")" "$bd" "$bn" "$(ratio "$bd" "$bn")" "$ms"
done
echo
echo "ratio = ninefold / diod: above 1 is ninefold faster, except on the RSS rows (lower is less memory)."
echo "med: the median of the rounds; best: the best round of each server (on a machine shared"
echo "with other work, the best round is the one least disturbed by it)."
echo
echo "every reading (diod | ninefold), in run order:"
for row in "${ROWS[@]}"; do printf "  %-38s |%s |%s\n" "$row" "${RES[$row|diod]}" "${RES[$row|ninefold]}"; done
