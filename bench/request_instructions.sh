#!/bin/bash
# What one request costs in instructions, on each side of a getattr round trip (a ramfs
# file, one outstanding), counted by callgrind: the server's Connection::OnFrame (decode,
# the back end, encode, hand to the channel) per request, and the client's
# Session::OnFrame (decode the reply, complete the call, issue the next request) per
# reply. Counts, unlike times, do not move with a noisy machine, so a change to the
# request path shows here even when latencies cannot tell it from noise.
#
#   bench/request_instructions.sh [BUILD_DIR]     (default build/release)
#   TRANSPORTS="shm unix" SECS=4                  (defaults)
#
# Each side runs under valgrind in turn while the other runs natively, SECS seconds.
set -euo pipefail
BUILD=${1:-build/release}
source "$(dirname "$0")/lib.sh"
NINEFOLD=$BUILD/ninefold
need_executables "$NINEFOLD"
command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null ||
  { echo "needs valgrind (scripts/install-deps.sh installs it)" >&2; exit 2; }
TRANSPORTS=${TRANSPORTS:-shm unix}
SECS=${SECS:-4}
BENCH_DIR=$(mktemp -d /tmp/ninefold-instr.XXXXXX)
stop_on_exit

# cost OUT FUNCTION: "instructions calls" of FUNCTION (inclusive) in callgrind file OUT.
cost() {
  callgrind_annotate --tree=calling --inclusive=yes "$1" 2>/dev/null | awk -v f="$2" '
    index($0, f "(std::span<std::byte const, 18446744073709551615ul>)") {
      line = $0; gsub(",", "", line)
      if (line ~ /^ *[0-9]+ \([ 0-9.%]+\)  \*  /) { split(line, w, " "); ir = w[1] }
      else if (line ~ /^ *[0-9]+ \([ 0-9.%]+\)  >   / && match(line, /\(([0-9]+)x\)/)) {
        calls += substr(line, RSTART + 1, RLENGTH - 3)
      }
    }
    END { print ir + 0, calls + 0 }'
}

# start_server [valgrind...]: ninefold serve with ramfs 'ram' on $ADDR; waits for it.
start_server() {
  rm -f "$BENCH_DIR/s.sock"
  "$@" "$NINEFOLD" serve --listen "$ADDR" --ramfs ram >"$BENCH_DIR/serve.log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  for _ in $(seq 200); do [ -S "$BENCH_DIR/s.sock" ] && return; sleep 0.1; done
  echo "ninefold serve did not start:" >&2
  cat "$BENCH_DIR/serve.log" >&2
  exit 1
}
stop_server() {
  kill -INT "$SERVER"
  wait "$SERVER" || true
}
client() {  # client [valgrind...]
  "$@" "$NINEFOLD" bench "$ADDR" --aname ram --op getattr --duration "$SECS" >/dev/null 2>&1
}

printf "%-6s %18s %18s\n" transport "server per request" "client per reply"
for t in $TRANSPORTS; do
  ADDR="$t!$BENCH_DIR/s.sock"
  start_server valgrind --tool=callgrind --callgrind-out-file="$BENCH_DIR/server.out"
  client
  stop_server
  read -r s_ir s_calls < <(cost "$BENCH_DIR/server.out" "ninefold::server::Connection::OnFrame")
  start_server
  client valgrind --tool=callgrind --callgrind-out-file="$BENCH_DIR/client.out"
  stop_server
  read -r c_ir c_calls < <(cost "$BENCH_DIR/client.out" "ninefold::client::Session::OnFrame")
  [ "$s_calls" -gt 0 ] && [ "$c_calls" -gt 0 ] || { echo "$t: no requests counted" >&2; exit 1; }
  printf "%-6s %18d %18d   (%d requests, %d replies)\n" "$t" $((s_ir / s_calls)) \
    $((c_ir / c_calls)) "$s_calls" "$c_calls"
done
