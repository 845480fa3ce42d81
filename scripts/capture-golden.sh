#!/bin/bash
# usage: scripts/capture-golden.sh [OUTDIR]        (root; ~1 min)
# Regenerates the golden 9P byte captures in OUTDIR (default tests/wire/golden): real
# traffic between peers we did not write (diod 9P2000.L server; its clients diodls,
# diodcat, dioddate, diodload; the Linux kernel v9fs client under QEMU), recorded by a
# logging TCP relay (scripts/tap9p.pl) between client and server. Each connection N of
# scenario NAME gives NAME-cN.c2s (client->server bytes) and NAME-cN.s2c
# (server->client), whole frames, unchanged. Also writes OUTDIR/README.md (peer
# versions, commands, per-file sizes, frame counts, type histograms).
# env: PEERS       the peers kit (default REPO/../shared/peers); setup.sh is run if its
#                  kernel/initramfs or diod are missing
#      GOLDEN_WORK scratch dir (default /tmp/ninefold-golden; wiped at start; the
#                  export inside it is the aname that appears in the captures)
#      KEEP=1      keep GOLDEN_WORK afterwards (console logs, diod log)
# Everything started here stops by itself: diod under PEER_TTL, each tap after its TTL,
# QEMU after TMO; on exit the trap stops them early, by pid.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PEERS=${PEERS:-$ROOT/../shared/peers}
[ -f "$PEERS/common.sh" ] || { echo "capture-golden: no peers kit at $PEERS (set PEERS)" >&2; exit 2; }
PEERS=$(cd "$PEERS" && pwd)
. "$PEERS/common.sh"
OUT=${1:-$ROOT/tests/wire/golden}
W=${GOLDEN_WORK:-/tmp/ninefold-golden}
TAP=$HERE/tap9p.pl
log() { echo "capture-golden: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "run as root (setup.sh, diod, mknod in the guest)"; exit 2; }

# 0. peers installed?
if ! command -v diod >/dev/null || ! command -v diodload >/dev/null ||
   [ ! -f "$PEERS_CACHE/vmlinuz" ] || [ ! -f "$PEERS_CACHE/base.cpio" ] ||
   ! command -v qemu-system-x86_64 >/dev/null; then
  log "running $PEERS/setup.sh"; "$PEERS/setup.sh"
fi

DIOD=""; TAP_PID=""
cleanup() {
  set +e
  [ -n "$TAP_PID" ] && kill "$TAP_PID" 2>/dev/null && wait "$TAP_PID" 2>/dev/null
  [ -n "$DIOD" ] && "$PEERS/diod.sh" stop "$DIOD" >/dev/null
  [ "${KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. scratch dir and export. The export (and its parents) must be searchable by nobody:
#    the kernel attaches as nobody at mount time.
case "$W" in /tmp/*|/var/tmp/*) ;; *) log "GOLDEN_WORK must be under /tmp or /var/tmp"; exit 2;; esac
rm -rf "$W"; mkdir -p "$W"/{cap,log,bin}; chmod 755 "$W"
E=$W/export; mkdir -m 0777 "$E"; chmod 0777 "$E"
printf 'hello, 9P\n' > "$E/hello.txt"
seq 1 600 > "$E/numbers.txt"                               # 2292 bytes
: > "$E/empty"
mkdir "$E/subdir"; printf 'inside subdir\n' > "$E/subdir/inner.txt"
ln -s hello.txt "$E/link-to-hello"
chmod 0666 "$E/hello.txt" "$E/numbers.txt" "$E/empty" "$E/subdir/inner.txt"; chmod 0777 "$E/subdir"
touch -h -d '2020-01-02 03:04:05 UTC' "$E"/* "$E/subdir/inner.txt"

# 2. diod on a free 127.0.0.1 port (stops by itself after PEER_TTL s)
DPORT=$(free_port)
PEER_TTL=900 "$PEERS/diod.sh" start "127.0.0.1:$DPORT" "$E" >&2
DIOD=127.0.0.1:$DPORT
DIODLOG=$PEERS_RUN/diod-127.0.0.1_$DPORT.log

# start_tap NAME TTL [BPS]: a fresh tap (new port, connection numbers from 1) for NAME
start_tap() {
  TPORT=$(free_port); rm -f "$W/ready"
  TAP_BPS=${3:-0} perl "$TAP" relay "$TPORT" "$DPORT" "$W/cap/$1" "$2" "$W/ready" &
  TAP_PID=$!
  for _ in $(seq 100); do [ -s "$W/ready" ] && return 0; kill -0 "$TAP_PID" 2>/dev/null || break; sleep 0.05; done
  log "tap for $1 did not start"; exit 1
}
stop_tap() { kill "$TAP_PID" 2>/dev/null || true; wait "$TAP_PID" 2>/dev/null || true; TAP_PID=""; }
CMDS=$W/log/commands           # NAME<TAB>command, for the README
run() {  # run NAME CMD...: run one client command through the tap, record it
  local name=$1; shift
  printf '%s\t%s\n' "$name" "$*" >> "$CMDS"
  log "[$name] $*"
  "$@" > "$W/log/$name.out" 2>&1 || { cat "$W/log/$name.out" >&2; log "[$name] failed"; exit 1; }
}

# 3. diod's own clients (9P2000.L; all send Tauth first, then attach with afid NOFID)
start_tap diodls 60
run diodls diodls -s "127.0.0.1:$TPORT" -a "$E" -l /
stop_tap
start_tap diodcat 60
run diodcat diodcat -s "127.0.0.1:$TPORT" version
run diodcat diodcat -s "127.0.0.1:$TPORT" -a "$E" hello.txt
stop_tap
start_tap dioddate 60
run dioddate dioddate -s "127.0.0.1:$TPORT"
stop_tap
# diodload runs for -r seconds in batches of 100 ops per thread (one connection per
# thread); the tap's bandwidth limit (TAP_BPS) keeps it to one batch, a few hundred KB
start_tap diodload 60 40000
run diodload diodload -s "127.0.0.1:$TPORT" -n 2 -r 1 -m 1024
stop_tap
start_tap diodload-g 60 100000
run diodload-g diodload -s "127.0.0.1:$TPORT" -n 2 -r 1 -g
stop_tap

# 4. the Linux kernel client in a QEMU guest (trans=tcp to the tap)
if command -v cc >/dev/null && cc -static -O2 -o "$W/bin/p9x" "$HERE/golden-guest-helper.c" 2>"$W/log/cc.err"; then
  GBIN=$W/bin
else
  log "no static C build (see $W/log/cc.err): the guest skips the fsync/xattr/lock steps"; GBIN=""
fi
kernel() {  # kernel NAME P9VER
  local name=$1 ver=$2 rc=0
  start_tap "$name" 400
  printf '%s\t%s\n' "$name" "GUEST_ENV=\"EXPORT=$E P9VER=$ver\" GUEST_BIN_DIR=DIR_WITH_P9X kernel-client.sh TAP scripts/golden-guest.sh" >> "$CMDS"
  log "[$name] kernel client, version=$ver"
  GUEST_BIN_DIR=$GBIN GUEST_ENV="EXPORT=$E P9VER=$ver" TMO=300 CONSOLE_LOG=$W/log/$name.console \
    "$PEERS/kernel-client.sh" "$TPORT" "$HERE/golden-guest.sh" > /dev/null 2>&1 || rc=$?
  stop_tap
  case $rc in
    0) ;;
    124|125) tail -20 "$W/log/$name.console" >&2; log "[$name] guest did not finish (rc $rc)"; exit 1 ;;
    *) grep -B2 '^!!!' "$W/log/$name.console" >&2 || true
       log "[$name] WARNING: $rc guest step(s) failed unexpectedly; the capture is kept" ;;
  esac
}
kernel kernel-L 9p2000.L
kernel kernel-u 9p2000.u
kernel kernel-9p2000 9p2000

# 5. verify: whole frames, Tversion first (c2s), Rversion/Rlerror first (s2c)
log "checking frames"
perl "$TAP" check "$W"/cap/* > "$W/log/check" || { cat "$W/log/check" >&2; log "frame check failed"; exit 1; }
big=$(find "$W/cap" -type f -size +300k)
[ -z "$big" ] || log "WARNING: captures over 300 KB: $big"

# 6. install into OUTDIR (only our files: *.c2s, *.s2c, *.console.txt, README.md)
mkdir -p "$OUT"
rm -f "$OUT"/*.c2s "$OUT"/*.s2c "$OUT"/*.console.txt
cp "$W"/cap/* "$OUT"/
for n in kernel-L kernel-u kernel-9p2000; do
  # the guest's console, minus kernel timestamps, so a reader can see which step made
  # which frames
  sed -e 's/^\[ *[0-9.]*\] //' "$W/log/$n.console" > "$OUT/$n.console.txt"
done

KSTAMP=$(cat "$PEERS_CACHE/kernel.stamp" 2>/dev/null || echo unknown)
{
  cat <<EOF
# Golden 9P captures

Real 9P traffic between peers nobody on this team wrote, recorded byte for byte by a
logging TCP relay (\`scripts/tap9p.pl\`) sitting between client and server on
127.0.0.1. Regenerate with \`scripts/capture-golden.sh\` (root; needs the peers kit,
\`PEERS=/work/shared/peers\` by default \`../shared/peers\`). Contents differ from run to
run (qids, times, tags, inode numbers) but the shape does not.

Files: \`NAME-cN.c2s\` = everything connection N sent client -> server,
\`NAME-cN.s2c\` = server -> client. Each file is a sequence of whole 9P frames
(size[4] little-endian, type[1], tag[2], body); \`perl scripts/tap9p.pl check FILE...\`
verifies that and \`perl scripts/tap9p.pl hist FILE...\` prints a type histogram.
T-messages and R-messages pair by tag (requests may be pipelined: the kernel and
diodload keep several in flight). \`kernel-*.console.txt\` is the guest's console: the
steps of \`scripts/golden-guest.sh\` in order, with their output.

## Peers

| package | version |
|---|---|
$(dpkg-query -W -f='| ${Package} | ${Version} |\n' diod qemu-system-x86 busybox-static 2>/dev/null)
| kernel (guest, \`dpkg -x\` of the Debian package, not installed) | $KSTAMP |

Captured $(date -u +%Y-%m-%d) on $(. /etc/os-release; echo "$PRETTY_NAME"), $(uname -m).
diod runs as \`diod -f -n -c /dev/null -l 127.0.0.1:PORT -e $E -e ctl\` (no auth; as
root): aname \`$E\` is the export, aname \`ctl\` diod's synthetic control fs.
Export at capture time: \`hello.txt\` (10 B), \`numbers.txt\` (\`seq 1 600\`, 2292 B),
\`empty\`, \`subdir/inner.txt\`, \`link-to-hello -> hello.txt\`.

## Scenarios

All 9P2000.L unless said otherwise. TAP = the relay's port.

| name | client | dialect | command |
|---|---|---|---|
EOF
  while IFS=$'\t' read -r n c; do
    c=$(printf %s "$c" | sed -E 's/127\.0\.0\.1:[0-9]+/127.0.0.1:TAP/g')
    case $n in
      kernel-L) d="9P2000.L (trans=tcp, msize 131072 asked)";;
      kernel-u) d="asks 9P2000.u; diod answers Rlerror EIO, mount fails";;
      kernel-9p2000) d="asks 9P2000; diod answers Rlerror EIO, mount fails";;
      *) d="9P2000.L";;
    esac
    case $n in kernel-*) cl="Linux v9fs (QEMU guest)";; *) cl="${c%% *} (diod's libnpclient)";; esac
    echo "| $n | $cl | $d | \`$c\` |"
  done < "$CMDS"
  cat <<'EOF'

Notes:
* `diodcat`: c1 reads `version` from aname `ctl`, c2 reads `hello.txt` from the export.
* `diodload` (`-m 1024`: Tversion msize 1024) and `diodload-g` (`-g`: Tgetattr on
  `null` instead of read/write) run one connection per thread (`-n 2`: c1, c2, running
  concurrently). diodload works in batches of 100 ops per thread until `-r` seconds
  have passed; the capture script slows the relay (TAP_BPS) so a run stays small. The
  bytes are not altered.
* `kernel-L`: `scripts/golden-guest.sh` mounts with `version=9p2000.L,aname=EXPORT`
  and walks through mkdir, create/write/read, readdir, stat/statfs, touch, chmod,
  chown/chgrp, truncate, append, hard link, symlink/readlink, rename in and across
  dirs, mkfifo/mknod, sync, fsync/fdatasync, pwrite/pread, xattr
  set/get/list/remove, flock and POSIX locks, errors (ENOENT, ENOTEMPTY, EEXIST,
  EACCES as uid 1000, ENODATA), rm/rmdir and umount. Helper ops come from
  `scripts/golden-guest-helper.c` (static, `p9x` in the guest).
* `kernel-u`, `kernel-9p2000`: only the mount attempt.

Observed with the versions above (check again after regenerating with others):
* diod's clients send Tauth (afid 0, uname "", n_uname = euid 0) and get Rlerror
  ENOENT (2); they then Tattach with afid NOFID, uname "" and n_uname 0. The kernel
  sends no Tauth; it attaches as uname "nobody", n_uname ~0 at mount, then with uname
  "" and n_uname 0 (root) on first use, and with n_uname 1000 for the uid-1000 step.
* msize: kernel asks 131072, diod answers 65536; diodls/diodcat/dioddate ask 65536;
  diodload `-m 1024` asks 1024 and gets 1024.
* diod 1.0.24 answers Trenameat and Tunlinkat with Rlerror EOPNOTSUPP (95); the kernel
  then falls back to Trename / Tremove every time (Tunlinkat flags 0x200 =
  AT_REMOVEDIR for rmdir). So the captures hold Trenameat/Tunlinkat requests but no
  Rrenameat/Runlinkat replies.
* Tfsync always carries the 4-byte datasync field: 0 for fsync, 1 for fdatasync.
* Tgetlock: the kernel (6.1) sends lock type UNLCK (2) when the lock is not held
  locally; diod answers Rlerror EINVAL (22). No Rgetlock appears. Tlock for flock()
  has flags 1 (BLOCK), start 0, length 0; for F_SETLK flags 0; unlocks (type 2) also
  come from close().
* Before writing, the kernel sends Txattrwalk "security.capability" (answered ENODATA,
  61). removexattr is Txattrcreate with attr_size 0 and flags 2 (XATTR_REPLACE);
  listxattr is Txattrwalk with an empty name.
* For 9p2000.u / 9p2000 diod answers the Tversion (tag NOTAG) with Rlerror EIO (5),
  an 11-byte frame, tag NOTAG; the kernel's mount then fails with EFAULT.
* Not covered by any capture: Tflush, Rrenameat, Runlinkat, Rgetlock, Tauth success
  (Rauth), Rerror, and all 9P2000/9P2000.u message bodies (no peer here speaks them).

## Files

| file | bytes | frames | types (type:count) |
|---|---|---|---|
EOF
  sed -E "s|^ok $W/cap/([^ ]*) ([0-9]+) bytes ([0-9]+) frames \[(.*)\]|\| \1 \| \2 \| \3 \| \4 \||" "$W/log/check"
  echo
  echo '## Message types over all captures'
  echo
  echo '```'
  perl "$TAP" hist "$W"/cap/*
  echo '```'
} > "$OUT/README.md"
log "done: $(ls "$OUT" | wc -l) files, $(du -sk "$OUT" | cut -f1) KB in $OUT"
cat "$W/log/check"
