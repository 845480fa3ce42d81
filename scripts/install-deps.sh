#!/bin/bash
# Installs the Debian 12 packages ninefold needs to build and test, and nothing else.
# Non-interactive and idempotent: only missing packages are installed, and apt-get update
# runs only when an install needs it. Run as root, or as a user with sudo.
set -euo pipefail

PACKAGES=(
  # toolchain
  cmake ninja-build g++ make pkg-config
  # clang for libFuzzer (runtime in libclang-rt-14-dev) and the format check
  clang libclang-rt-14-dev clang-format
  # libraries
  libfmt-dev libcli11-dev libasio-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # real 9P peers for the interoperability tests: diod (server and clients)
  diod
  # the Linux kernel's v9fs client booted under QEMU (tests/kernel)
  qemu-system-x86 busybox-static xz-utils
  # ninefold mount (FUSE): libfuse3, fusermount3, and fio for bench/fuse_fio.sh
  libfuse3-dev fuse3 fio
  # test and benchmark scripts (free ports, JSON, the FUSE test's checks)
  perl python3
  # instructions per request (bench/request_instructions.sh: callgrind)
  valgrind
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Peers such as diod ship init scripts: keep them from starting system-wide daemons while
# installing (a policy-rc.d that says no), and remove that policy afterwards.
made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
  made_policy=1
fi
trap '[ $made_policy = 1 ] && "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
apt_install() { "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; }
# The package lists may be missing or stale on a fresh machine: update once and retry.
apt_install || { "${SUDO[@]}" apt-get update -q && apt_install; }
