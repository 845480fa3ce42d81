# shellcheck shell=bash disable=SC2034
# Sourced by setup.sh and run.sh (host side). Not a guest file.
# NINEFOLD_KERNEL_CACHE (default /var/cache/ninefold-kernel) holds the downloaded kernel,
# the base initramfs and the compiled guest helper. It must not be inside a git checkout.

KDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEFAULT_CACHE=${NINEFOLD_KERNEL_CACHE:-/var/cache/ninefold-kernel}

# Exit codes of run.sh that are not the guest script's own status (documented in --help
# and README.md; guest scripts should exit below 120).
EX_HOST=120      # bad usage, missing setup, cannot start QEMU
EX_MOUNT=121     # the guest could not mount the 9P server
EX_TIMEOUT=124   # --timeout expired (QEMU killed)
EX_CRASH=125     # guest kernel crashed (panic/oops) or ended without reporting a status

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
fmt_ms() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

# abs_cache DIR: absolute path; refuses a directory inside a git checkout.
abs_cache() {
  local c=$1 d
  case "$c" in /*) ;; *) c=$PWD/$c;; esac
  d=$c
  while [ -n "$d" ] && [ "$d" != / ]; do
    if [ -e "$d/.git" ]; then
      echo "cache $c is inside a git checkout ($d); choose another (NINEFOLD_KERNEL_CACHE)" >&2
      return 1
    fi
    d=$(dirname "$d")
  done
  printf '%s\n' "$c"
}

# helper_path CACHE: where the guest helper built from the current guest-helper.c lives
helper_path() {
  local h; h=$(cat "$KDIR/guest-helper.c" | sha256sum | cut -c1-16)
  printf '%s/helper/p9x-%s\n' "$1" "$h"
}

# build_helper CACHE: compile guest-helper.c statically (the guest has no libc), once per
# source version. Atomic: concurrent callers each build to a temp file and rename.
build_helper() {
  local out tmp; out=$(helper_path "$1")
  [ -x "$out" ] && return 0
  command -v cc >/dev/null || { echo "no C compiler (cc): install gcc" >&2; return 1; }
  mkdir -p "$1/helper"
  tmp=$(mktemp "$1/helper/.p9x.XXXXXX")
  if ! cc -static -O2 -Wall -Wextra -o "$tmp" "$KDIR/guest-helper.c"; then
    rm -f "$tmp"; echo "cannot build the static guest helper (libc6-dev installed?)" >&2; return 1
  fi
  chmod 755 "$tmp"; mv -f "$tmp" "$out"
  # keep only the newest few builds
  ls -t "$1"/helper/p9x-* 2>/dev/null | tail -n +4 | xargs -r rm -f
}
