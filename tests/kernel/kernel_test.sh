#!/bin/bash
# The Linux kernel's v9fs client against `ninefold serve`: Debian's 6.1 kernel under
# QEMU mounts an exported directory with version=9p2000.L, 9p2000.u and 9p2000, over
# trans=tcp and trans=fd, and runs fileops.sh (checked results) on each mount. The
# server's tally must show that the large file's writes came spliced (Channel::SpliceWrites).
# usage: kernel_test.sh NINEFOLD_BINARY [VERSION/TRANS ...]   (default: all six)
# env: FILEOPS_BIG_MB (64), FILEOPS_DIR_ENTRIES (5000), KERNEL_TEST_TIMEOUT (480 s a run)
# A run over trans=fd that times out is tried once more, and says so: the guest's tty path
# has been seen to stall (at msize 128 KiB; see issue notes) without any server error.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:?usage: kernel_test.sh NINEFOLD_BINARY [VERSION/TRANS ...]}; shift
COMBOS=("$@")
[ ${#COMBOS[@]} -gt 0 ] || COMBOS=(9p2000.L/tcp 9p2000.L/fd 9p2000.u/tcp 9p2000.u/fd
                                   9p2000/tcp 9p2000/fd)
export FILEOPS_BIG_MB=${FILEOPS_BIG_MB:-64} FILEOPS_DIR_ENTRIES=${FILEOPS_DIR_ENTRIES:-5000}
TMO=${KERNEL_TEST_TIMEOUT:-480}

"$HERE/setup.sh" >/dev/null || { echo "tests/kernel/setup.sh failed"; exit 1; }

T=$(mktemp -d /tmp/ninefold-kernel.XXXXXX)
chmod 755 "$T"   # the kernel attaches as 'nobody' first: the export must be reachable
pass=0 fail=0
PID=
stop_server() { [ -n "$PID" ] && { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; }; PID=; }
trap 'stop_server; rm -rf "$T"' EXIT

run_combo() {  # run_combo VERSION TRANS: one boot, one fileops run; sets rc
  local version=$1 trans=$2
  export_dir=$T/export-$version-$trans
  mkdir -p "$export_dir" && chmod 777 "$export_dir"
  # A server per run, so each run's log stands alone; it stops by itself in any case.
  # Its own socket path per run: a previous server still going away cannot be in the way.
  local sock=$T/s-$version-$trans-$RANDOM.sock
  timeout -k 5 $((TMO + 60)) "$BIN" serve --listen 'tcp!127.0.0.1!0' \
    --listen "unix!$sock" --export "$export_dir" 2> "$T/server.log" &
  PID=$!
  port=
  for _ in $(seq 300); do
    port=$(sed -n 's/.*listening on tcp!127\.0\.0\.1!\([0-9]*\)$/\1/p' "$T/server.log")
    [ -n "$port" ] && grep -q "listening on unix" "$T/server.log" && break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    echo "# ninefold serve did not start within 30 s:"
    sed 's/^/#   server: /' "$T/server.log"
    rc=125
    return
  fi
  case $trans in
    tcp) where=(--port "$port") ;;
    # Over the guest's virtconsole tty a 128 KiB msize (the kernel's default) has been
    # seen to stall a transfer now and then; 64 KiB, what diod offers, has not.
    fd) where=(--socket "$sock" --msize 65536) ;;
  esac
  echo "# $version over trans=$trans (${FILEOPS_BIG_MB} MiB file, ${FILEOPS_DIR_ENTRIES} entries)"
  rm -f "$T/console.log"
  "$HERE/run.sh" "${where[@]}" --version "$version" --aname "$export_dir" --timeout "$TMO" \
    --log "$T/console.log" "$HERE/fileops.sh" > "$T/run.out" 2>&1
  rc=$?
  grep -E '^(ok|not ok) |^# [0-9]+ MiB|entries: create' "$T/console.log" | sed 's/^/  /'
}

for combo in "${COMBOS[@]}"; do
  version=${combo%/*} trans=${combo#*/}
  export_dir=$T/export-$version-$trans
  run_combo "$version" "$trans"
  if [ $rc = 125 ]; then
    echo "# $version/$trans: the server did not come up; trying once more"
    stop_server
    rm -rf "$export_dir"
    run_combo "$version" "$trans"
  elif [ $rc = 124 ] && [ "$trans" = fd ]; then
    echo "# $version/$trans timed out; trying once more (trans=fd tty stalls, see above)"
    grep -E ' (warn|error) ' "$T/server.log" | tail -5 | sed 's/^/#   server: /'
    stop_server
    rm -rf "$export_dir"
    run_combo "$version" "$trans"
  fi
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$T/console.log" | tail -1)
  # The server's tally as it stops: the kernel's large writes over a socket must have come
  # as spliced data (socket -> pipe -> file). Not all of it: a write finding every pipe of
  # the pool busy, or its data already read with the frame before it, is read into memory
  # by design, and how often depends on timing (56-67 of the 67 MB on a quiet machine; 24
  # once, 9p2000.L over tcp with other tests running beside it). A quarter still tells
  # working splicing (most of the file) from broken (nothing).
  stop_server
  piped=$(sed -n 's/.*write data: \([0-9][0-9]*\) bytes from pipes.*/\1/p' "$T/server.log" | tail -1)
  echo "# $version/$trans: ${piped:-no} bytes of Twrite data came through pipes"
  if [ $rc = 0 ] && [ "${piped:-0}" -lt $((FILEOPS_BIG_MB * 1048576 / 4)) ]; then
    echo "# $version/$trans: fewer than a quarter of the ${FILEOPS_BIG_MB} MiB file's bytes were spliced"
    rc=1
  fi
  if [ $rc = 0 ]; then
    echo "ok - $version/$trans: $summary"; pass=$((pass + 1))
  else
    echo "not ok - $version/$trans: run.sh exit $rc ${summary:+($summary)}"
    tail -3 "$T/run.out" | sed 's/^/#   /'
    grep -E ' (warn|error) ' "$T/server.log" | tail -5 | sed 's/^/#   server: /'
    fail=$((fail + 1))
  fi
  stop_server
  rm -rf "$export_dir"
done
echo "$pass passed, $fail failed"
[ $fail = 0 ]
