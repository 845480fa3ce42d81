#!/bin/bash
# The client side, measured (issue 4): `ninefold bench` (one client thread, N requests in
# flight on one connection) against diod's own load generator `diodload` (N threads, one
# connection and one request in flight each), both driving the same diod server; and
# `ninefold bench` against diod vs against `ninefold serve`. docs/client-performance.md
# explains the rows and keeps a run's results.
#
#   bench/client_vs_diodload.sh [BUILD_DIR]     (default build/release; builds nothing)
#
# Table 1, against diod, ctl tree (aname ctl), N = 1, 4, 16, 64:
#   getattr/s  diodload -g -n N (Tgetattr of ctl/null, one per thread) vs
#              ninefold bench --op getattr --path null --outstanding N
#   read       diodload -n N: each op is a 64 KiB Tread of ctl/zero then a 64 KiB Twrite to
#              ctl/null, so it moves as much to the server as from it; its rMB/s is MiB/s.
#              ninefold bench --op read --path zero --msize 64K --outstanding N: Treads
#              only. Both are shown as read MiB/s and as requests/s (diodload: 2 per op).
# Table 2, ninefold bench (1 thread) against diod vs ninefold serve exporting the same
#   directory on tmpfs: getattr of the root, and read of a 64 MiB file at msize 64 KiB
#   (diod's largest) and 1 MiB (ninefold serve's default; diod answers 64 KiB).
# Then the issue's target, stated explicitly: from one thread ninefold bench drives diod
#   at least as hard as diodload -n 4 does.
#
# Environment: SECONDS_PER_RUN (3; diodload gets whole seconds), WARMUP (0.5, ninefold
# bench only: diodload has no warm-up), REPEAT (1: with more, runs alternate order and the
# table shows medians), BENCH_DIR (/dev/shm/ninefold-client-bench: tmpfs, removed at the
# end), THREADS (ninefold serve --threads, 8). Servers listen on 127.0.0.1 only, run under
# `timeout` and are stopped by PID.
set -euo pipefail

BUILD=${1:-build/release}
NINEFOLD=$BUILD/ninefold
SECONDS_PER_RUN=${SECONDS_PER_RUN:-3}
WARMUP=${WARMUP:-0.5}
REPEAT=${REPEAT:-1}
THREADS=${THREADS:-8}
BENCH_DIR=${BENCH_DIR:-/dev/shm/ninefold-client-bench}
OUTSTANDING=(1 4 16 64)
SERVER_SECONDS=1800

[ -x "$NINEFOLD" ] || { echo "missing $NINEFOLD: cmake --build $BUILD" >&2; exit 2; }
for tool in diod diodload perl; do
  command -v $tool >/dev/null || { echo "missing $tool (scripts/install-deps.sh)" >&2; exit 2; }
done

source "$(dirname "$0")/lib.sh"
stop_on_exit

EXPORT=$BENCH_DIR/export
mkdir -p "$EXPORT"
chmod 755 "$BENCH_DIR" "$EXPORT"
# A private copy of the binary: a rebuild during the run must not change what is measured
# (or replace the file while it is being started).
cp "$NINEFOLD" "$BENCH_DIR/ninefold"
NINEFOLD=$BENCH_DIR/ninefold
head -c $((64 * 1024 * 1024)) /dev/urandom > "$EXPORT/big"

free_port() {
  perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 1)->sockport, "\n"'
}
DIOD_PORT=$(free_port)
timeout -k 5 $SERVER_SECONDS diod -f -n -c /dev/null -l "127.0.0.1:$DIOD_PORT" \
  -e "$EXPORT" -e ctl > "$BENCH_DIR/diod.log" 2>&1 &
PIDS+=($!)
timeout -k 5 $SERVER_SECONDS "$NINEFOLD" serve --listen 'tcp!127.0.0.1!0' --export "$EXPORT" \
  --ctl --threads "$THREADS" > "$BENCH_DIR/ninefold.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "listening on tcp" "$BENCH_DIR/ninefold.log" && break; sleep 0.1; done
NF_PORT=$(sed -n 's/.*listening on tcp!127\.0\.0\.1!\([0-9]*\)$/\1/p' "$BENCH_DIR/ninefold.log")
[ -n "$NF_PORT" ] || { echo "ninefold serve did not start:" >&2; cat "$BENCH_DIR/ninefold.log" >&2; exit 1; }
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$DIOD_PORT") 2>/dev/null && break; sleep 0.1; done
(exec 3<>"/dev/tcp/127.0.0.1/$DIOD_PORT") 2>/dev/null || { echo "diod did not start:" >&2; cat "$BENCH_DIR/diod.log" >&2; exit 1; }
DIOD="tcp!127.0.0.1!$DIOD_PORT"
NF="tcp!127.0.0.1!$NF_PORT"

declare -A RES  # RES[key]: space-separated readings
record() { RES[$1]="${RES[$1]:-} $2"; }
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]; else print "-"}'; }
get() { median <<<"${RES[$1]:-}"; }
json() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" <<<"$2"; }

bench() {  # bench KEY ADDR ARGS...: one ninefold bench run; records ops/s, MiB/s, req/s, p50, p99, msize
  local key=$1 addr=$2 out
  shift 2
  out=$(timeout 120 "$NINEFOLD" bench "$addr" --duration "$SECONDS_PER_RUN" --warmup "$WARMUP" \
    --json "$@") || { echo "ninefold bench $addr $*: failed: $out" >&2; exit 1; }
  record "$key|ops" "$(json ops_s "$out")"
  record "$key|mib" "$(json mib_s "$out")"
  record "$key|req" "$(json requests_s "$out")"
  record "$key|p50" "$(json p50 "$out")"
  record "$key|p99" "$(json p99 "$out")"
  record "$key|cpu" "$(awk -v c="$(json client_cpu_s "$out")" -v s="$(json seconds "$out")" 'BEGIN { printf "%.0f", 100 * c / s }')"
  RES[$key|msize]=$(json msize "$out")
}
# diodload stops its threads when time(NULL) reaches its start second + -r, but divides by
# -r: started late in a second it runs up to a second less than it divides by. It is started
# just after a second begins, so that it runs (almost) the whole -r seconds.
at_second_start() {
  sleep "$(awk -v ns="$(date +%N)" 'BEGIN { printf "%.3f", (1e9 - ns) / 1e9 + 0.005 }')"
}
diodload_run() {  # diodload_run KEY N [-g]
  local key=$1 n=$2 out ops mib
  shift 2
  at_second_start
  out=$(timeout 120 diodload -s "127.0.0.1:$DIOD_PORT" -n "$n" -r "$SECONDS_PER_RUN" "$@" 2>&1) ||
    { echo "diodload failed: $out" >&2; exit 1; }
  ops=$(sed -n 's/^diodload: \([0-9]*\) ops\/s.*/\1/p' <<<"$out")
  mib=$(sed -n 's/.* \([0-9]*\) rMB\/s.*/\1/p' <<<"$out")
  # It exits 0 even when it could not connect.
  [ "${ops:-0}" -gt 0 ] || { echo "diodload -n $n $*: no ops: $out" >&2; exit 1; }
  record "$key|ops" "$ops"
  record "$key|mib" "$mib"
  # getattr: one request per op; read/write: a Tread and a Twrite per op.
  record "$key|req" "$([ "${1:-}" = -g ] && echo "$ops" || echo $((ops * 2)))"
}

client_rows() {  # table 1: diodload and ninefold bench against diod's ctl tree
  local n
  for n in "${OUTSTANDING[@]}"; do
    diodload_run "dl-getattr-$n" "$n" -g
    bench "nb-getattr-$n" "$DIOD" --aname ctl --op getattr --path null --outstanding "$n"
    diodload_run "dl-read-$n" "$n"
    bench "nb-read-$n" "$DIOD" --aname ctl --op read --path zero --msize 64K --outstanding "$n"
  done
}
server_rows() {  # table 2: ninefold bench against SERVER (diod or nf)
  local s=$1 addr n
  addr=$([ "$s" = diod ] && echo "$DIOD" || echo "$NF")
  for n in "${OUTSTANDING[@]}"; do
    bench "$s-getattr-$n" "$addr" --aname "$EXPORT" --op getattr --outstanding "$n"
    bench "$s-read64k-$n" "$addr" --aname "$EXPORT" --op read --path big --msize 64K --outstanding "$n"
    bench "$s-read1m-$n" "$addr" --aname "$EXPORT" --op read --path big --msize 1M --outstanding "$n"
  done
}

echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start ($(date -u '+%Y-%m-%d %H:%M') UTC)"
echo "diod $(dpkg-query -W -f '${Version}' diod 2>/dev/null || echo '?') on 127.0.0.1:$DIOD_PORT;" \
  "ninefold serve --threads $THREADS on 127.0.0.1:$NF_PORT; ${SECONDS_PER_RUN} s per run," \
  "ninefold bench warm-up ${WARMUP} s; $REPEAT repetition(s)"
for r in $(seq "$REPEAT"); do
  echo "round $r/$REPEAT" >&2
  client_rows
  if [ $((r % 2)) = 1 ]; then order="diod nf"; else order="nf diod"; fi
  for s in $order; do server_rows $s; done
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
echo

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b != "-") printf "%.2f", b / a; else print "-" }'; }

echo "Table 1: against the same diod (ctl tree): diodload -n N (N threads, 1 request each) vs"
echo "ninefold bench --outstanding N (1 thread, N requests in flight on one connection)"
echo
t1="| %3s | %12s | %12s | %5s | %13s | %13s | %5s | %13s | %13s | %12s |\n"
printf "$t1" N "getattr/s dl" "getattr/s nb" ratio "read MiB/s dl" "read MiB/s nb" ratio "read req/s dl" "read req/s nb" "nb CPU g/r %"
printf "$t1" "--:" "---:" "---:" "---:" "---:" "---:" "---:" "---:" "---:" "---:"
for n in "${OUTSTANDING[@]}"; do
  dg=$(get "dl-getattr-$n|ops"); ng=$(get "nb-getattr-$n|ops")
  dr=$(get "dl-read-$n|mib"); nr=$(get "nb-read-$n|mib")
  dq=$(get "dl-read-$n|req"); nq=$(get "nb-read-$n|req")
  printf "$t1" "$n" "$dg" "$ng" "$(ratio "$dg" "$ng")" "$dr" "$nr" "$(ratio "$dr" "$nr")" "$dq" "$nq" \
    "$(get "nb-getattr-$n|cpu")/$(get "nb-read-$n|cpu")"
done
echo
echo "dl = diodload (its read op also writes as many bytes to ctl/null: 2 requests per op);"
echo "nb = ninefold bench (Treads only). ratio = nb / dl. nb CPU: ninefold bench's own CPU time"
echo "(user+system, all its threads) in % of one core, getattr/read runs."
echo

echo "Table 2: ninefold bench (1 thread) against diod vs ninefold serve, same tmpfs export"
echo
t2="| %-22s | %3s | %10s | %10s | %5s | %9s | %9s | %9s |\n"
printf "$t2" "op" N diod "ninefold" ratio "p99 us d" "p99 us n" "msize d/n"
printf "$t2" "---" "--:" "---:" "---:" "---:" "---:" "---:" "---"
for op in getattr read64k read1m; do
  for n in "${OUTSTANDING[@]}"; do
    metric=$([ $op = getattr ] && echo ops || echo mib)
    label=$([ $op = getattr ] && echo "getattr/s" || echo "read MiB/s, msize $([ $op = read64k ] && echo 64K || echo 1M)")
    d=$(get "diod-$op-$n|$metric"); v=$(get "nf-$op-$n|$metric")
    printf "$t2" "$label" "$n" "$d" "$v" "$(ratio "$d" "$v")" "$(get "diod-$op-$n|p99")" \
      "$(get "nf-$op-$n|p99")" "$((${RES[diod-$op-$n|msize]} / 1024))K/$((${RES[nf-$op-$n|msize]} / 1024))K"
  done
done
echo
echo "ratio = ninefold serve / diod: above 1, ninefold serve is faster for this client."
echo

echo "Target (issue 4): from one thread, ninefold's client drives a server at least as hard as"
echo "diodload does with four threads (same diod, same files):"
verdict() { awk -v a="$1" -v b="$2" 'BEGIN { if (b >= a) print "met"; else print "NOT met" }'; }
best() {  # best KEY METRIC (KEY with N for the outstanding count): the highest median of ninefold bench over N, and that N
  local n v top=0 at=-
  for n in "${OUTSTANDING[@]}"; do
    v=$(get "nb-${1/N/$n}|$2")
    if awk -v a="$v" -v b="$top" 'BEGIN { exit !(a > b) }'; then top=$v at=$n; fi
  done
  echo "$top $at"
}
dg4=$(get "dl-getattr-4|ops"); dq4=$(get "dl-read-4|req"); dr4=$(get "dl-read-4|mib")
row() {  # row LABEL DIODLOAD_VALUE NINEFOLD_AT_4 BEST BEST_N
  printf "  %-12s diodload -n 4: %9s | ninefold bench, 4 outstanding: %9s (%sx) | best, %2s outstanding: %9s (%sx): %s\n" \
    "$1" "$2" "$3" "$(ratio "$2" "$3")" "$5" "$4" "$(ratio "$2" "$4")" "$(verdict "$2" "$4")"
}
read -r bg bgn <<<"$(best getattr-N ops)"
read -r bq bqn <<<"$(best read-N req)"
read -r br brn <<<"$(best read-N mib)"
row "getattr/s" "$dg4" "$(get "nb-getattr-4|ops")" "$bg" "$bgn"
row "requests/s" "$dq4" "$(get "nb-read-4|req")" "$bq" "$bqn"
row "read MiB/s" "$dr4" "$(get "nb-read-4|mib")" "$br" "$brn"
echo "  (requests/s and MiB/s: the read workloads of table 1; the verdict compares the best N.)"
echo
echo "every reading, in run order:"
for k in $(printf '%s\n' "${!RES[@]}" | grep -E 'getattr-[0-9]+\|ops$|read[^|]*\|mib$' | sort -V); do
  printf "  %-22s %s\n" "$k" "${RES[$k]}"
done
