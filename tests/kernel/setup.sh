#!/bin/bash
# usage: tests/kernel/setup.sh [CACHE]
# Prepares everything run.sh needs, idempotently; a rerun with nothing to do takes well
# under 2 s:
#   1. installs the missing Debian packages (qemu-system-x86 busybox-static gcc
#      libc6-dev xz-utils; with SETUP_DIOD=1 also diod, used only to validate the
#      harness);
#   2. downloads the kernel package that linux-image-amd64 depends on (apt-get download)
#      and extracts it (dpkg -x) into CACHE/kernel, only when that version changed, and
#      unpacks the uncompressed kernel (CACHE/vmlinux, booted as a PVH ELF: ~3 s faster
#      under TCG than letting the bzImage decompress itself);
#   3. builds CACHE/base.cpio: static busybox and the 9p, 9pnet_fd, virtio_pci,
#      virtio_net and virtio_console modules with their dependencies, in load order
#      (only when the kernel, busybox or the module list changed);
#   4. compiles guest-helper.c with `cc -static` into CACHE/helper/ (once per source).
# CACHE: argument, else $NINEFOLD_KERNEL_CACHE, else /var/cache/ninefold-kernel; never
# inside a git checkout. If you pick another one, export NINEFOLD_KERNEL_CACHE for run.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
die() { echo "setup.sh: $*" >&2; exit 1; }
case "${1:-}" in -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;; esac
[ $# -le 1 ] || die "usage: setup.sh [CACHE]"
CACHE=$(abs_cache "${1:-$DEFAULT_CACHE}") || exit 1
t0=$(now_ms)

SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo)

# 1. packages -------------------------------------------------------------------------
PKGS=(qemu-system-x86 busybox-static gcc libc6-dev xz-utils)
[ "${SETUP_DIOD:-0}" = 1 ] && PKGS+=(diod)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
updated=0
apt_update() { [ $updated = 1 ] || { "${SUDO[@]}" apt-get update -q; updated=1; }; }
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  inst() { "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; }
  inst || { apt_update; inst; }
fi
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || BUSYBOX=$(command -v busybox) || die "no busybox"
ldd "$BUSYBOX" >/dev/null 2>&1 && die "$BUSYBOX is dynamically linked: install busybox-static"

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w 600 9 || die "another setup.sh holds $CACHE/.lock"
rm -rf "$CACHE"/.dl.* "$CACHE"/.root.*       # leftovers of an interrupted run
tmp=""; trap '[ -z "$tmp" ] || rm -rf "$tmp"' EXIT

# 2. kernel ---------------------------------------------------------------------------
resolve() { apt-cache depends linux-image-amd64 2>/dev/null |
  sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -1; }
# apt-cache takes ~1 s per call here: reuse the last answer while the apt lists are
# unchanged (their names, sizes and mtimes are the key).
lists_key() { ls -l --time-style=+%s /var/lib/apt/lists/ 2>/dev/null | sha256sum | cut -c1-16; }
KPKG="" KPV=""
if [ -f "$CACHE/resolve.cache" ]; then
  read -r key KPKG KPV < "$CACHE/resolve.cache" || true
  [ "$key" = "$(lists_key)" ] || KPKG=""
fi
if [ -z "$KPKG" ]; then
  KPKG=$(resolve); [ -n "$KPKG" ] || { apt_update; KPKG=$(resolve); }
  [ -n "$KPKG" ] || die "cannot resolve linux-image-amd64 to a linux-image-*-amd64 package"
  KPV=$(apt-cache policy "$KPKG" | sed -n 's/^ *Candidate: //p')
  [ -n "$KPV" ] && [ "$KPV" != "(none)" ] || die "no candidate version for $KPKG"
  echo "$(lists_key) $KPKG $KPV" > "$CACHE/resolve.cache"
fi
KVER=${KPKG#linux-image-}
if [ "$(cat "$CACHE/kernel.stamp" 2>/dev/null)" = "$KPKG $KPV" ] && [ -f "$CACHE/vmlinuz" ]; then
  echo "setup.sh: kernel $KPKG $KPV already in $CACHE"
else
  echo "setup.sh: downloading $KPKG $KPV"
  tmp=$(mktemp -d "$CACHE/.dl.XXXXXX"); chmod 755 "$tmp"
  # apt-get download as root warns that _apt cannot write here; harmless
  (cd "$tmp" && apt-get download -q "$KPKG=$KPV" 2>&1 | grep -v -i 'unsandboxed' || true)
  deb=$(ls "$tmp/${KPKG}"_*.deb 2>/dev/null | head -1)
  [ -f "$deb" ] || die "apt-get download $KPKG=$KPV failed"
  dpkg -x "$deb" "$tmp/root"
  [ -f "$tmp/root/boot/vmlinuz-$KVER" ] || die "no boot/vmlinuz-$KVER in $deb"
  rm -f "$deb" "$CACHE/kernel.stamp"
  rm -rf "$CACHE/kernel"; mv "$tmp/root" "$CACHE/kernel"
  cp "$CACHE/kernel/boot/vmlinuz-$KVER" "$CACHE/.vmlinuz.tmp"; mv "$CACHE/.vmlinuz.tmp" "$CACHE/vmlinuz"
  rm -rf "$tmp"; tmp=""
  echo "$KPKG $KPV" > "$CACHE/kernel.stamp"
fi

# The bzImage decompresses itself, which takes ~3 s under TCG. Debian's kernel has
# CONFIG_PVH, so QEMU can boot the uncompressed ELF directly: extract it once.
if [ "$(cat "$CACHE/vmlinux.stamp" 2>/dev/null)" != "$KPKG $KPV" ] || [ ! -f "$CACHE/vmlinux" ]; then
  rm -f "$CACHE/vmlinux" "$CACHE/vmlinux.stamp"
  for fmt in 'xz:\xfd7zXZ\x00:xz -dc' 'zstd:\x28\xb5\x2f\xfd:zstd -qdc' 'gzip:\x1f\x8b\x08:gzip -dc'; do
    IFS=: read -r name magic cmd <<< "$fmt"
    command -v "${cmd%% *}" >/dev/null || continue
    off=$(LC_ALL=C grep -obUaP "$magic" "$CACHE/vmlinuz" | head -1 | cut -d: -f1)
    [ -n "$off" ] || continue
    # trailing data after the compressed stream makes the decompressor complain: ignore
    tail -c +$((off + 1)) "$CACHE/vmlinuz" | $cmd > "$CACHE/.vmlinux.tmp" 2>/dev/null || true
    if readelf -n "$CACHE/.vmlinux.tmp" 2>/dev/null | grep -q '(0x00000012)'; then  # XEN_ELFNOTE_PHYS32_ENTRY
      mv "$CACHE/.vmlinux.tmp" "$CACHE/vmlinux"; echo "$KPKG $KPV" > "$CACHE/vmlinux.stamp"
      echo "setup.sh: extracted the PVH-bootable vmlinux ($name)"; break
    fi
  done
  rm -f "$CACHE/.vmlinux.tmp"
  [ -f "$CACHE/vmlinux" ] || echo "setup.sh: no PVH vmlinux could be extracted; run.sh boots the (slower) bzImage"
fi

# 3. base initramfs -------------------------------------------------------------------
# Recipe version: bump when the layout below changes, so caches rebuild.
RECIPE=2
WANT="9p 9pnet_fd virtio_pci virtio_net virtio_console"
MODDIR=$CACHE/kernel/lib/modules/$KVER
stamp="recipe=$RECIPE kernel=$KPKG/$KPV busybox=$(sha256sum < "$BUSYBOX" | cut -c1-16) mods=$WANT"
if [ "$(cat "$CACHE/base.stamp" 2>/dev/null)" = "$stamp" ] && [ -f "$CACHE/base.cpio" ]; then
  echo "setup.sh: base.cpio up to date"
else
  tmp=$(mktemp -d "$CACHE/.root.XXXXXX"); R=$tmp
  mkdir -p "$R"/{bin,dev,etc,lib/modules,mnt,proc,root,sys,tmp}
  cp "$BUSYBOX" "$R/bin/busybox"
  declare -A seen=()
  modfile() {
    find "$MODDIR/kernel" \( -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" \
      -o -name "${1//_/-}.ko" -o -name "${1//_/-}.ko.xz" -o -name "${1//_/-}.ko.zst" \) | head -1
  }
  add_mod() {  # depth first: a module's dependencies load before it
    local m=$1 f deps d
    [ -n "${seen[$m]:-}" ] && return 0; seen[$m]=1
    f=$(modfile "$m")
    if [ -z "$f" ]; then
      grep -qE "/${m//_/[_-]}\.ko" "$MODDIR/modules.builtin" && return 0   # built in
      die "module $m not found under $MODDIR"
    fi
    case "$f" in
      *.xz) xz -dc "$f" > "$R/lib/modules/$m.ko";;
      *.zst) zstd -qdc "$f" > "$R/lib/modules/$m.ko";;
      *) cp "$f" "$R/lib/modules/$m.ko";;
    esac
    deps=$(tr '\0' '\n' < "$R/lib/modules/$m.ko" | sed -n 's/^depends=//p' | head -1)
    for d in ${deps//,/ }; do add_mod "$d"; done
    echo "$m" >> "$R/etc/modules.order"
  }
  for m in $WANT; do add_mod "$m"; done
  (cd "$R" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort |
    "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) > "$CACHE/.base.cpio.tmp"
  mv "$CACHE/.base.cpio.tmp" "$CACHE/base.cpio"
  echo "$stamp" > "$CACHE/base.stamp"
  echo "setup.sh: base.cpio rebuilt; modules: $(tr '\n' ' ' < "$R/etc/modules.order")"
  rm -rf "$tmp"; tmp=""
fi
echo "$KVER" > "$CACHE/kernel.version"

# 4. guest helper ---------------------------------------------------------------------
build_helper "$CACHE" || die "guest helper build failed"

echo "setup.sh: ready in $(fmt_ms $(( $(now_ms) - t0 ))) s: $CACHE ($KVER)"
[ "$CACHE" = /var/cache/ninefold-kernel ] || [ "$CACHE" = "${NINEFOLD_KERNEL_CACHE:-}" ] ||
  echo "setup.sh: for run.sh: export NINEFOLD_KERNEL_CACHE=$CACHE"
