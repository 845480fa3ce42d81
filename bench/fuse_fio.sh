#!/bin/bash
# fio through `ninefold mount` (FUSE) against the directory itself: sequential 1 MiB read
# and write and 4 KiB random read, libaio at iodepth 16, O_DIRECT (so the client's page
# cache is out of the measurement and every byte crosses the mount), on:
#   local      the exported directory itself
#   serve/shm  `ninefold mount` of `ninefold serve` over the shared-memory transport
#   serve/unix the same over a unix socket
#   serve/tcp  the same over tcp (127.0.0.1)
#   diod/tcp   `ninefold mount` of diod over tcp
# Prints one markdown table (MiB/s and IOPS per job). All servers export a directory on
# one file system (BENCH_DIR, default /dev/shm: memory, so the network path and the
# client are measured, not a disk).
# Then the issue's target (shm seq read / local seq read) from RATIO_ROUNDS (3) pairs of
# seq read runs, local and the shm mount back to back: on a shared VM the local row alone
# moves by 2x over a day, so one pair says little and the median of several says more.
# usage: fuse_fio.sh NINEFOLD_BINARY
#   env: BENCH_DIR, FIO_SIZE (256M), FIO_RUNTIME (10), RATIO_ROUNDS (3)
set -u
BIN=${1:?usage: fuse_fio.sh NINEFOLD_BINARY}
BASE=${BENCH_DIR:-/dev/shm}
SIZE=${FIO_SIZE:-256M}
RUNTIME=${FIO_RUNTIME:-10}
RATIO_ROUNDS=${RATIO_ROUNDS:-3}
command -v fio >/dev/null || { echo "fio not found (apt-get install fio)" >&2; exit 1; }
[ -c /dev/fuse ] || { echo "no /dev/fuse" >&2; exit 1; }

T=$(mktemp -d "$BASE/ninefold-fio.XXXXXX")
PIDS=() MOUNTS=()
declare -A SEQREAD
cleanup() {
  for m in "${MOUNTS[@]}"; do fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/export" "$T/mnt"

# run_fio DIR NAME RW BS: prints "MiB/s IOPS"
run_fio() {
  local out
  out=$(fio --name="$2" --directory="$1" --filename=fio.data --size="$SIZE" --rw="$3" \
    --bs="$4" --ioengine=libaio --iodepth=16 --direct=1 --runtime="$RUNTIME" --time_based \
    --group_reporting --output-format=json 2>/dev/null) || { echo "- -"; return; }
  python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
d = j["read"] if j["read"]["io_bytes"] else j["write"]
print("%.0f %.0f" % (d["bw_bytes"] / 1048576, d["iops"]))' <<< "$out"
}

row() {  # row NAME DIR
  local sw sr rr
  # Lay the file out once (the write job rewrites it), then measure.
  fio --name=layout --directory="$2" --filename=fio.data --size="$SIZE" --rw=write --bs=1M \
    --ioengine=psync --end_fsync=1 >/dev/null 2>&1
  sw=$(run_fio "$2" seqwrite write 1M)
  sr=$(run_fio "$2" seqread read 1M)
  rr=$(run_fio "$2" randread randread 4k)
  set -- "$1" $sw $sr $rr
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$4" "$6" "$7"
  SEQREAD[$1]=$4
  rm -f "$T/export/fio.data"
}

start_serve() {
  timeout -k 5 3600 "$BIN" serve --listen 'tcp!127.0.0.1!0' --listen "unix!$T/s.sock" \
    --listen "shm!$T/shm.sock" --export "$T/export" 2> "$T/serve.log" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -qs "listening on unix" "$T/serve.log" && break; sleep 0.1; done
  SERVE_TCP="tcp!127.0.0.1!$(sed -n 's/.*listening on tcp!127\.0\.0\.1!\([0-9]*\)$/\1/p' "$T/serve.log")"
}
start_diod() {
  DIOD_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # In $T, where a core dump would go: diod 1.0.24 was seen to segfault when stopped.
  (cd "$T" && exec timeout -k 5 3600 diod -f -n -c /dev/null -l "127.0.0.1:$DIOD_PORT" \
    -e "$T/export" > "$T/diod.log" 2>&1) &
  PIDS+=($!)
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$DIOD_PORT") 2>/dev/null && break; sleep 0.1; done
}
mounted_row() {  # mounted_row NAME ADDR
  MOUNTS+=("$T/mnt")
  if ! timeout 60 "$BIN" mount "$2" "$T/mnt" --aname "$T/export"; then
    printf '| %s | mount failed | | | |\n' "$1"; return
  fi
  row "$1" "$T/mnt"
  fusermount3 -u "$T/mnt"
}

echo "fio: libaio, iodepth 16, O_DIRECT, ${SIZE} file, ${RUNTIME} s a job; exports on $(df --output=fstype "$T" | tail -1) ($BASE)"
echo "$(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%d), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo
echo "| target | seq write 1 MiB (MiB/s) | seq read 1 MiB (MiB/s) | rand read 4 KiB (MiB/s) | rand read 4 KiB (IOPS) |"
echo "|---|---|---|---|---|"
row local "$T/export"
start_serve
mounted_row "ninefold mount, serve over shm" "shm!$T/shm.sock"
mounted_row "ninefold mount, serve over unix" "unix!$T/s.sock"
mounted_row "ninefold mount, serve over tcp" "$SERVE_TCP"
start_diod
mounted_row "ninefold mount, diod over tcp" "tcp!127.0.0.1!$DIOD_PORT"
echo
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "target (issue 6): over shm, sequential reads at least half the local directory's throughput"
echo "(the table's pair, then $RATIO_ROUNDS pairs of seq read runs back to back, MiB/s):"
shm=${SEQREAD[ninefold mount, serve over shm]:--} local=${SEQREAD[local]:--}
ratios=()
pair() {  # pair LABEL SHM LOCAL: prints the pair and its ratio, keeps the ratio
  local r
  r=$(python3 -c '
import sys
s, l = sys.argv[1], sys.argv[2]
print("-" if s == "-" or l == "-" or float(l) == 0 else "%.2f" % (float(s) / float(l)))' "$2" "$3")
  printf '  %-7s shm %6s / local %6s = %s\n' "$1" "$2" "$3" "$r"
  [ "$r" = - ] || ratios+=("$r")
}
pair table "$shm" "$local"
if [ "$RATIO_ROUNDS" -gt 0 ]; then
  fio --name=layout --directory="$T/export" --filename=fio.data --size="$SIZE" --rw=write \
    --bs=1M --ioengine=psync --end_fsync=1 >/dev/null 2>&1
  MOUNTS+=("$T/mnt")
  if timeout 60 "$BIN" mount "shm!$T/shm.sock" "$T/mnt" --aname "$T/export"; then
    for i in $(seq "$RATIO_ROUNDS"); do
      l=$(run_fio "$T/export" seqread read 1M)
      m=$(run_fio "$T/mnt" seqread read 1M)
      pair "pair $i" "${m%% *}" "${l%% *}"
    done
    fusermount3 -u "$T/mnt"
  fi
fi
python3 -c '
import statistics, sys
r = [float(x) for x in sys.argv[1:]]
if not r: print("  not measured"); sys.exit()
m = statistics.median(r)
print("  median of %d: %.2f: %s" % (len(r), m, "met" if m >= 0.5 else "not met"))' "${ratios[@]}"
