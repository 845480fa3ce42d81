#!/bin/bash
# run.sh: boot Debian's kernel under QEMU (TCG), mount a 9P server running on this host
# with the kernel's v9fs client, run a guest script, exit with its status.
# See --help (below) and README.md.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<'USAGE'
usage: run.sh (--port PORT | --socket PATH) --version 9p2000.L|9p2000.u|9p2000
              [--aname A] [--msize N] [--opts O,P] [--timeout S] [--log FILE]
              [--env NAME=VALUE]... [--ports N] [--mem MIB] [--smp N] [--no-mount]
              SCRIPT [ARGS...]

Boots the Debian 12 kernel (fetched by setup.sh) under QEMU, TCG only, mounts the 9P
server on /mnt/9p in the guest and runs SCRIPT there with busybox sh (cwd /tmp, a tmpfs).

  --port PORT     trans=tcp: the guest connects to 10.0.2.2:PORT, which QEMU's user
                  network forwards to host 127.0.0.1:PORT
  --socket PATH   trans=fd: QEMU connects to the server's Unix socket PATH (one
                  connection per virtconsole port, opened at boot) and the guest mounts
                  with trans=fd over /dev/hvc0 in raw mode
  --version V     version= mount option: 9p2000.L, 9p2000.u or 9p2000
  --aname A       aname= mount option (default: none; diod wants the export path)
  --msize N       msize= mount option (default: the kernel's, 128 KiB asked for)
  --opts O,P      more mount options, e.g. cache=loose or access=user
  --timeout S     kill QEMU after S seconds (default 600)
  --log FILE      write the guest console to FILE instead of stdout
  --env N=V       environment for SCRIPT (repeatable; any characters). Host variables
                  named FILEOPS_* are passed on too.
  --ports N       trans=fd: number of virtconsole ports = mounts possible (default 1)
  --mem MIB       guest memory (default 1024)
  --smp N         guest CPUs (default 1: with TCG on a 2-core host, 2 vCPUs made
                  9P round trips 2-3x slower, the server needs a core too)
  --no-mount      do not mount; SCRIPT calls `p9mount DIR [OPTS]` itself
In the guest: P9MNT (/mnt/9p), P9TRANS, P9VERSION, P9ANAME, P9MSIZE, P9OPTS, P9PORT;
/bin/p9x is the static helper built from guest-helper.c; p9mount mounts (again).

Exit status:
  0-119  SCRIPT's exit status (scripts should stay below 120)
  120    host-side error: bad usage, setup.sh not run, QEMU could not start
  121    the guest could not mount the server (SCRIPT did not run)
  124    timeout: QEMU killed after --timeout seconds
  125    guest kernel crashed (panic, oops, BUG) or ended without reporting a status
Env: NINEFOLD_KERNEL_CACHE (default /var/cache/ninefold-kernel), QEMU (binary).
USAGE
}
die() { echo "run.sh: $*" >&2; exit $EX_HOST; }

PORT="" SOCK="" VERSION="" ANAME="" MSIZE="" OPTS="" TMO=600 LOG="" PORTS=1 MEM=1024 SMP=1
AUTOMOUNT=1; ENVS=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0;;
    --port) PORT=${2:-}; shift 2 || die "--port needs a value";;
    --socket) SOCK=${2:-}; shift 2 || die "--socket needs a value";;
    --version) VERSION=${2:-}; shift 2 || die "--version needs a value";;
    --aname) ANAME=${2:-}; shift 2 || die "--aname needs a value";;
    --msize) MSIZE=${2:-}; shift 2 || die "--msize needs a value";;
    --opts) OPTS=${2:-}; shift 2 || die "--opts needs a value";;
    --timeout) TMO=${2:-}; shift 2 || die "--timeout needs a value";;
    --log) LOG=${2:-}; shift 2 || die "--log needs a value";;
    --env) ENVS+=("${2:-}"); shift 2 || die "--env needs a value";;
    --ports) PORTS=${2:-}; shift 2 || die "--ports needs a value";;
    --mem) MEM=${2:-}; shift 2 || die "--mem needs a value";;
    --smp) SMP=${2:-}; shift 2 || die "--smp needs a value";;
    --no-mount) AUTOMOUNT=0; shift;;
    --) shift; break;;
    -*) usage >&2; die "unknown option $1";;
    *) break;;
  esac
done
[ $# -ge 1 ] || { usage >&2; die "no SCRIPT"; }
SCRIPT=$1; shift
[ -f "$SCRIPT" ] || die "no such script: $SCRIPT"
isnum() { case "$1" in ''|*[!0-9]*) return 1;; esac; }
if [ -n "$PORT" ] && [ -n "$SOCK" ]; then die "give --port or --socket, not both"; fi
if [ -n "$PORT" ]; then
  isnum "$PORT" && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "bad --port $PORT"
  TRANS=tcp
elif [ -n "$SOCK" ]; then
  [ -S "$SOCK" ] || die "--socket $SOCK is not a Unix socket"
  TRANS=fd
else
  die "give --port PORT or --socket PATH"
fi
case "$VERSION" in
  9p2000.L|9p2000.l) VERSION=9p2000.L;;
  9p2000.u|9p2000.U) VERSION=9p2000.u;;
  9p2000|9P2000) VERSION=9p2000;;
  *) die "--version must be 9p2000.L, 9p2000.u or 9p2000";;
esac
[ -z "$MSIZE" ] || isnum "$MSIZE" || die "bad --msize $MSIZE"
isnum "$TMO" && [ "$TMO" -ge 1 ] || die "bad --timeout $TMO"
isnum "$PORTS" && [ "$PORTS" -ge 1 ] && [ "$PORTS" -le 30 ] || die "bad --ports $PORTS"
isnum "$MEM" && isnum "$SMP" || die "bad --mem or --smp"
case "$ANAME$OPTS" in *[[:space:]]*) die "--aname/--opts may not contain white space";; esac
case "$ANAME" in *,*) die "--aname may not contain a comma (mount option syntax)";; esac
for e in "${ENVS[@]}"; do
  [[ "$e" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env wants NAME=VALUE, got: $e"
done
while IFS= read -r n; do ENVS+=("$n=${!n}"); done < <(compgen -e | grep '^FILEOPS_' || true)

CACHE=$(abs_cache "$DEFAULT_CACHE") || exit $EX_HOST
[ -f "$CACHE/vmlinuz" ] && [ -f "$CACHE/base.cpio" ] || die "no kernel in $CACHE: run tests/kernel/setup.sh"
build_helper "$CACHE" || die "cannot build the guest helper"
KERNEL=$CACHE/vmlinux   # uncompressed PVH ELF: boots ~3 s faster than the bzImage
[ -f "$KERNEL" ] || KERNEL=$CACHE/vmlinuz
QEMU=${QEMU:-qemu-system-x86_64}
command -v "$QEMU" >/dev/null || die "$QEMU not found: run tests/kernel/setup.sh"

W=$(mktemp -d "${TMPDIR:-/tmp}/ninefold-kernel.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$W"' EXIT
# The per-run part of the initramfs, appended to base.cpio (the kernel merges them).
R=$W/root
mkdir -p "$R/etc" "$R/bin" "$R/test"
cp "$KDIR/guest/init" "$R/init"
cp "$KDIR/guest/p9mount" "$R/bin/p9mount"
cp "$(helper_path "$CACHE")" "$R/bin/p9x"
cp "$SCRIPT" "$R/test/script"
chmod 755 "$R/init" "$R/bin/p9mount" "$R/bin/p9x"
q() { printf "'%s'" "$(printf %s "$1" | sed "s/'/'\\\\''/g")"; }   # sh single-quoting
NONCE=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
{
  echo "export NINEFOLD_NONCE=$NONCE P9MNT=/mnt/9p P9TRANS=$TRANS P9VERSION=$VERSION"
  echo "export P9ANAME=$(q "$ANAME") P9MSIZE=$MSIZE P9OPTS=$(q "$OPTS") P9PORT=$PORT"
  echo "export P9AUTOMOUNT=$AUTOMOUNT"
  for e in "${ENVS[@]}"; do echo "export ${e%%=*}=$(q "${e#*=}")"; done
} > "$R/etc/ninefold.env"
{ printf 'set --'; for a in "$@"; do printf ' %s' "$(q "$a")"; done; echo; } > "$R/etc/ninefold.args"
cp "$CACHE/base.cpio" "$W/initrd"
(cd "$R" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort |
  busybox cpio -o -H newc -R 0:0 2>/dev/null) >> "$W/initrd" || die "cannot build the initramfs"

DEV=()
if [ $TRANS = tcp ]; then
  # shellcheck disable=SC2054  # commas belong to QEMU option values
  DEV=(-netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile=)
else
  # shellcheck disable=SC2054
  DEV=(-device virtio-serial-pci,max_ports=$((PORTS + 1)))
  for ((i = 0; i < PORTS; i++)); do
    DEV+=(-chardev "socket,id=p9c$i,path=${SOCK//,/,,}" -device "virtconsole,chardev=p9c$i,name=p9.$i")
  done
fi

if [ -n "$LOG" ]; then
  : > "$LOG" || die "cannot write --log $LOG"
  console() { tee "$W/console" >> "$LOG"; }
else
  console() { tee "$W/console"; }
fi
t0=$(now_ms)
# KVM is broken on our machines (the guest hangs): TCG only, on purpose.
timeout -k 5 "$TMO" "$QEMU" -accel tcg -nodefaults -no-user-config \
  -m "$MEM" -smp "$SMP" -display none -monitor none -serial stdio -no-reboot \
  -kernel "$KERNEL" -initrd "$W/initrd" "${DEV[@]}" \
  -append "console=ttyS0 quiet loglevel=4 panic=-1 rdinit=/init" </dev/null 2>&1 |
  sed -u 's/\r$//' | console
qrc=${PIPESTATUS[0]}
wall=$(fmt_ms $(( $(now_ms) - t0 )))

C=$W/console
grc=$(sed -n "s/^=== NINEFOLD-END $NONCE rc=\([0-9]*\)\$/\1/p" "$C" | tail -1)
crash=$(grep -m1 -E 'Kernel panic|Oops:|BUG: unable to handle|kernel BUG at|general protection fault' "$C")
say() { echo "=== run.sh: $*" | tee -a "${LOG:-/dev/null}"; }
warn=$(grep -m1 -E '^\[ *[0-9.]+\] (WARNING:|BUG:|INFO: task .* blocked)' "$C")
[ -z "$warn" ] || say "note: the guest kernel logged: $warn"
what="trans=$TRANS version=$VERSION, wall ${wall} s"
if [ $qrc = 124 ] || [ $qrc = 137 ]; then
  say "TIMEOUT after $TMO s ($what; guest rc ${grc:-none})"; exit $EX_TIMEOUT
fi
if [ -n "$crash" ]; then
  say "GUEST KERNEL CRASH ($what): $crash"; exit $EX_CRASH
fi
if grep -q "^=== NINEFOLD-MOUNT-FAILED $NONCE " "$C"; then
  say "MOUNT FAILED ($what)"; exit $EX_MOUNT
fi
if [ -z "$grc" ]; then
  say "guest ended without a status (qemu rc=$qrc; $what)"; exit $EX_CRASH
fi
say "guest script rc=$grc ($what)"
exit "$grc"
