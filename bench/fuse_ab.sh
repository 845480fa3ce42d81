#!/bin/bash
# Two builds (or two settings) of `ninefold mount` over shm against each other: fio
# sequential 1 MiB O_DIRECT reads (libaio, iodepth 16) of a file `ninefold serve` exports,
# alternating A and B in each round with the local directory first, so that both see the
# same machine. Prints MiB/s and the CPU time the server and the mount used during each
# run (from /proc/PID/stat), then the medians. What docs/fuse-performance.md's step-by-step
# comparisons come from.
#
# usage: fuse_ab.sh A_BINARY B_BINARY
#   env: ROUNDS (3), FIO_RUNTIME (5 s), FIO_SIZE (256M), BENCH_DIR (/dev/shm),
#        A_ENV, B_ENV: environment for A's or B's server and mount (e.g.
#        B_ENV="NINEFOLD_SHM_SPIN_US=0"); A_MOUNT_ARGS, B_MOUNT_ARGS: extra mount options
# Servers listen on shm!SOCKET in a fresh directory, run under timeout and are stopped
# by PID.
set -u
A=${1:?usage: fuse_ab.sh A_BINARY B_BINARY}
B=${2:?usage: fuse_ab.sh A_BINARY B_BINARY}
ROUNDS=${ROUNDS:-3}
RUNTIME=${FIO_RUNTIME:-5}
SIZE=${FIO_SIZE:-256M}
command -v fio >/dev/null || { echo "fio not found (apt-get install fio)" >&2; exit 1; }
[ -c /dev/fuse ] || { echo "no /dev/fuse" >&2; exit 1; }
for b in "$A" "$B"; do [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }; done

T=$(mktemp -d "${BENCH_DIR:-/dev/shm}/ninefold-ab.XXXXXX")
PIDS=()
cleanup() {
  fusermount3 -u "$T/mnt" 2>/dev/null
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/export" "$T/mnt"
fio --name=layout --directory="$T/export" --filename=fio.data --size="$SIZE" --rw=write --bs=1M \
  --ioengine=psync --end_fsync=1 >/dev/null 2>&1

seqread() {  # seqread DIR: MiB/s
  fio --name=seqread --directory="$1" --filename=fio.data --size="$SIZE" --rw=read --bs=1M \
    --ioengine=libaio --iodepth=16 --direct=1 --runtime="$RUNTIME" --time_based \
    --output-format=json 2>/dev/null |
    python3 -c 'import json, sys; print("%.0f" % (json.load(sys.stdin)["jobs"][0]["read"]["bw_bytes"] / 1048576))'
}
child_of() { ps -o pid= --ppid "$1" | tr -d ' ' | head -1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, all threads

one() {  # one BINARY ENV MOUNT_ARGS: "MiB/s server-cpu-s mount-cpu-s"
  local bin=$1 envs=$2 margs=$3 tserve tmount serve mount s0 m0 rate
  rm -f "$T/m.sock"
  env $envs timeout -k 5 600 "$bin" serve --listen "shm!$T/m.sock" --export "$T/export" \
    2>"$T/serve.log" &
  tserve=$!
  PIDS+=("$tserve")
  for _ in $(seq 100); do [ -S "$T/m.sock" ] && break; sleep 0.05; done
  env $envs timeout -k 5 600 "$bin" mount "shm!$T/m.sock" "$T/mnt" --aname "$T/export" -f \
    $margs 2>"$T/mount.log" &
  tmount=$!
  PIDS+=("$tmount")
  for _ in $(seq 100); do mountpoint -q "$T/mnt" && break; sleep 0.05; done
  serve=$(child_of "$tserve") mount=$(child_of "$tmount")
  if [ -z "$serve" ] || [ -z "$mount" ] || ! mountpoint -q "$T/mnt"; then
    echo "- - -"
  else
    s0=$(cpu_ticks "$serve") m0=$(cpu_ticks "$mount")
    rate=$(seqread "$T/mnt")
    echo "$rate $(cpu_ticks "$serve") $(cpu_ticks "$mount") $s0 $m0" |
      awk -v hz="$(getconf CLK_TCK)" '{printf "%s %.2f %.2f", $1, ($2 - $4) / hz, ($3 - $5) / hz}'
    echo
  fi
  fusermount3 -u "$T/mnt" 2>/dev/null
  wait "$tmount" 2>/dev/null
  kill "$tserve" 2>/dev/null
  wait "$tserve" 2>/dev/null
}

echo "fio seq read 1 MiB, libaio, iodepth 16, O_DIRECT, ${SIZE} file, ${RUNTIME} s a run; $(nproc) CPUs,"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the start ($(date -u +%H:%M) UTC)"
echo "A: $A ${A_ENV:-} ${A_MOUNT_ARGS:-}"
echo "B: $B ${B_ENV:-} ${B_MOUNT_ARGS:-}"
printf '%-6s %8s | %8s %9s %9s | %8s %9s %9s\n' round local "A MiB/s" "A serve s" "A mount s" \
  "B MiB/s" "B serve s" "B mount s"
declare -a LOCAL AR BR
for r in $(seq "$ROUNDS"); do
  l=$(seqread "$T/export")
  read -r a as am <<<"$(one "$A" "${A_ENV:-}" "${A_MOUNT_ARGS:-}")"
  read -r b bs bm <<<"$(one "$B" "${B_ENV:-}" "${B_MOUNT_ARGS:-}")"
  printf '%-6s %8s | %8s %9s %9s | %8s %9s %9s\n' "$r" "$l" "$a" "$as" "$am" "$b" "$bs" "$bm"
  LOCAL+=("$l") AR+=("$a") BR+=("$b")
done
python3 -c '
import statistics, sys
n = int(sys.argv[1]); v = sys.argv[2:]
cols = [v[:n], v[n:2 * n], v[2 * n:]]
med = [statistics.median(float(x) for x in c if x != "-") if any(x != "-" for x in c) else 0 for c in cols]
print("median: local %.0f, A %.0f (%.2f of local), B %.0f (%.2f of local); B / A = %.2f" %
      (med[0], med[1], med[1] / med[0] if med[0] else 0, med[2], med[2] / med[0] if med[0] else 0,
       med[2] / med[1] if med[1] else 0))' "$ROUNDS" "${LOCAL[@]}" "${AR[@]}" "${BR[@]}"
