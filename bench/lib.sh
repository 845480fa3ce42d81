# Shared by the bench scripts (sourced, not run).
#
#   source "$(dirname "$0")/lib.sh"
#   need_executables "$NINEFOLD" "$P9LOAD"   # exit 2 naming the first one missing
#   stop_on_exit                             # kill and reap every PID in PIDS, remove BENCH_DIR
#   some_server & PIDS+=($!)

# need_executables FILE...: each must be an executable file (built by cmake), else exit 2.
need_executables() {
  local f
  for f in "$@"; do
    [ -x "$f" ] || { echo "missing $f: cmake --build ${BUILD:-build/release}" >&2; exit 2; }
  done
}

# stop_on_exit: on exit, kill every process in PIDS (servers started in the background,
# by PID, never by name), wait for them and remove $BENCH_DIR.
PIDS=()
stop_on_exit() {
  trap _bench_cleanup EXIT
}
_bench_cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${BENCH_DIR:-}" ]; then rm -rf "$BENCH_DIR"; fi
}
