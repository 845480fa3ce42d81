#!/bin/sh
# fileops.sh: guest script for run.sh (busybox sh). Checks file operations on the 9P
# mount at $P9MNT with TAP-like output, one line per check:
#   ok N - description            (passed)
#   ok N - description # SKIP why (not applicable to this protocol version)
#   not ok N - description: details
# then "1..N", "# K skipped" and the summary line "P passed, F failed" (skips count as
# passed). Exit status: the number of failures, at most 100.
# Env: P9MNT, P9VERSION (set by run.sh); FILEOPS_BIG_MB (size of the random file,
# default 64); FILEOPS_DIR_ENTRIES (default 5000); FILEOPS_KEEP=1 keeps the work tree.
# FILEOPS_FSTYPE: the mount's type in /proc/mounts (default 9p; tests/fuse: fuse.ninefold);
# FILEOPS_DROP_CACHES=0 skips dropping the page cache (on a shared host, tests/fuse).
# Needs /bin/p9x (guest-helper.c) for errno-exact checks, xattrs and locks.
M=${P9MNT:?run me with run.sh (P9MNT unset)}
V=${P9VERSION:-9p2000.L}
BIG=${FILEOPS_BIG_MB:-64}
NDIR=${FILEOPS_DIR_ENTRIES:-5000}
T=$M/fileops.work
n=0 npass=0 nfail=0 nskip=0

ms() { read -r u _ < /proc/uptime; echo $(( ${u%.*} * 1000 + 1${u#*.}0 - 1000 )); }
secs() { printf '%d.%d' $(($1 / 1000)) $(($1 % 1000 / 100)); }

# check DESCRIPTION FUNCTION: runs FUNCTION in a subshell with its output captured.
# Status 0 = pass, 77 = skip (the output is the reason), else fail (the output, joined
# on one line, is the detail). Output lines starting with "# " are always shown.
check() {
  desc=$1; shift
  n=$((n + 1))
  t0=$(ms)
  out=$("$@" 2>&1)
  rc=$?
  dt=$(( $(ms) - t0 ))
  if [ $rc = 0 ]; then
    npass=$((npass + 1)); echo "ok $n - $desc"
  elif [ $rc = 77 ]; then
    npass=$((npass + 1)); nskip=$((nskip + 1)); echo "ok $n - $desc # SKIP $out"; return
  else
    nfail=$((nfail + 1))
    echo "not ok $n - $desc: $(echo "$out" | grep -v '^# ' | tail -n 4 | tr '\n' ' ' | sed 's/ *$//')"
  fi
  echo "$out" | grep '^# '
  [ $dt -lt 1000 ] || echo "#   ($(secs $dt) s)"
}
# eq WHAT GOT WANT
eq() { [ "$2" = "$3" ] || { echo "$1: got '$2', want '$3'"; return 1; }; }
only_L() { [ "$V" = 9p2000.L ] || { echo "$1"; return 77; }; }
not_legacy() { [ "$V" != 9p2000 ] || { echo "$1"; return 77; }; }

c_mount() {
  fstype=${FILEOPS_FSTYPE:-9p}
  line=$(grep " $M $fstype " /proc/mounts) || { echo "no $fstype mount on $M"; return 1; }
  echo "# $line"
}
c_workdir() {
  rm -rf "$T" 2>/dev/null
  [ ! -e "$T" ] || { echo "cannot remove an old $T"; return 1; }
  mkdir "$T" || return 1
  [ -d "$T" ] || { echo "$T is not a directory after mkdir"; return 1; }
}
c_append() {
  f=$T/append.txt
  printf 'one\n' > "$f" && printf 'two\n' >> "$f" && printf 'three\n' >> "$f" || return 1
  eq content "$(cat "$f" | tr '\n' ' ')" "one two three " || return 1
  eq size "$(stat -c %s "$f")" 14
}
c_truncate() {
  f=$T/trunc.txt
  printf 'one two three\n' > "$f" || return 1
  truncate -s 3 "$f" || return 1
  eq "size after truncate -s 3" "$(stat -c %s "$f")" 3 || return 1
  eq "content after truncate -s 3" "$(cat "$f")" one || return 1
  truncate -s 10000 "$f" || return 1
  eq "size after truncate -s 10000" "$(stat -c %s "$f")" 10000 || return 1
  eq "non-zero bytes in the extension" "$(tail -c +4 "$f" | tr -d '\000' | wc -c)" 0 || return 1
  eq "head after extension" "$(head -c 3 "$f")" one || return 1
  truncate -s 0 "$f" || return 1
  eq "size after truncate -s 0" "$(stat -c %s "$f")" 0
}
c_rename() {
  mkdir "$T/ra" "$T/rb" || return 1
  printf 'moving data\n' > "$T/ra/f" || return 1
  r=$(p9x rename "$T/ra/f" "$T/rb/g")
  if [ "$r" = EXDEV ] && [ "$V" != 9p2000.L ]; then
    echo "# rename(2) across directories: EXDEV (v9fs does that only with 9P2000.L); mv copies"
    mv "$T/ra/f" "$T/rb/g" || return 1
  else
    eq "rename(2) across directories" "$r" OK || return 1
  fi
  [ ! -e "$T/ra/f" ] || { echo "old name still exists"; return 1; }
  eq "content under the new name" "$(cat "$T/rb/g")" "moving data" || return 1
  eq "rename(2) within a directory" "$(p9x rename "$T/rb/g" "$T/rb/h")" OK || return 1
  eq "content after the second rename" "$(cat "$T/rb/h")" "moving data"
}
c_rename_replace() {
  printf 'new\n' > "$T/rb/src" && printf 'old\n' > "$T/rb/dst" || return 1
  eq "rename(2) onto an existing file" "$(p9x rename "$T/rb/src" "$T/rb/dst")" OK || return 1
  [ ! -e "$T/rb/src" ] || { echo "source still exists"; return 1; }
  eq "content of the target" "$(cat "$T/rb/dst")" new
}
c_hardlink() {
  not_legacy "9P2000 has no hard links" || return
  printf 'linked\n' > "$T/hl1" || return 1
  ln "$T/hl1" "$T/hl2" || return 1
  # A 9P2000.u stat has no link count (the kernel shows 1): check it only on .L.
  if [ "$V" = 9p2000.L ]; then
    eq "link count of the original" "$(stat -c %h "$T/hl1")" 2 || return 1
    eq "link count of the link" "$(stat -c %h "$T/hl2")" 2 || return 1
  fi
  eq "same inode" "$(stat -c %i "$T/hl2")" "$(stat -c %i "$T/hl1")" || return 1
  eq "content through the link" "$(cat "$T/hl2")" linked || return 1
  rm "$T/hl1" || return 1
  [ "$V" != 9p2000.L ] || eq "link count after removing the original" "$(stat -c %h "$T/hl2")" 1
}
c_symlink() {
  not_legacy "9P2000 has no symbolic links" || return
  printf 'pointed at\n' > "$T/target.txt" || return 1
  ln -s target.txt "$T/sym" || return 1
  [ -L "$T/sym" ] || { echo "not a symlink (test -L)"; return 1; }
  eq readlink "$(readlink "$T/sym")" target.txt || return 1
  eq "content through the symlink" "$(cat "$T/sym")" "pointed at" || return 1
  ln -s /does/not/exist "$T/dangling" || return 1
  eq "readlink of a dangling symlink" "$(readlink "$T/dangling")" /does/not/exist
}
c_chmod() {
  f=$T/mode.txt
  printf 'x\n' > "$f" || return 1
  chmod 0640 "$f" || return 1
  eq "mode after chmod 0640" "$(stat -c %a "$f")" 640 || return 1
  chmod 0755 "$f" || return 1
  eq "mode after chmod 0755" "$(stat -c %a "$f")" 755 || return 1
  eq "file type" "$(stat -c %F "$f")" "regular file"
}
c_chown() {
  not_legacy "9P2000 carries owners as names only (no numeric ids)" || return
  f=$T/owner.txt
  printf 'x\n' > "$f" || return 1
  chown 1234:5678 "$f" || return 1
  eq "uid:gid after chown 1234:5678" "$(stat -c %u:%g "$f")" 1234:5678 || return 1
  chgrp 100 "$f" || return 1
  eq "uid:gid after chgrp 100" "$(stat -c %u:%g "$f")" 1234:100
}
c_touch() {
  f=$T/time.txt
  printf 'x\n' > "$f" || return 1
  touch -d '2001-02-03 04:05:06' "$f" || return 1          # the guest runs in UTC
  eq "mtime after touch -d 2001-02-03 04:05:06" "$(stat -c %Y "$f")" 981173106 || return 1
  eq "atime after touch -d" "$(stat -c %X "$f")" 981173106 || return 1
  touch "$f" || return 1
  now=$(date +%s); m=$(stat -c %Y "$f")
  [ $((now - m)) -le 120 ] && [ $((m - now)) -le 120 ] ||
    { echo "mtime after touch is $m, guest clock $now"; return 1; }
}
c_mkdir_rmdir() {
  d=$T/dir
  mkdir "$d" || return 1
  eq "type" "$(stat -c %F "$d")" directory || return 1
  err=$(mkdir "$d" 2>&1) && { echo "mkdir of an existing directory succeeded"; return 1; }
  case "$err" in *"File exists"*) ;; *) echo "mkdir again: want EEXIST, got: $err"; return 1;; esac
  mkdir -p "$d/a/b/c" || return 1
  printf 'x\n' > "$d/a/file" || return 1
  err=$(rmdir "$d/a" 2>&1) && { echo "rmdir of a non-empty directory succeeded"; return 1; }
  case "$err" in *"not empty"*) ;; *) echo "rmdir non-empty: want ENOTEMPTY, got: $err"; return 1;; esac
  rm "$d/a/file" && rmdir "$d/a/b/c" "$d/a/b" "$d/a" "$d" || return 1
  [ ! -e "$d" ] || { echo "$d still exists after rmdir"; return 1; }
}
c_unlink_open() {
  f=$T/unlinked.txt
  printf 'still readable\n' > "$f" || return 1
  exec 3< "$f" || return 1
  rm "$f" || return 1
  [ ! -e "$f" ] || { echo "the name still exists after rm"; return 1; }
  got=$(cat <&3); rc=$?
  exec 3<&-
  [ $rc = 0 ] || { echo "reading the open descriptor failed (rc=$rc)"; return 1; }
  eq "content read through the open descriptor" "$got" "still readable"
}
c_enoent() {
  eq "open of a missing file" "$(p9x errno "$T/no-such-file")" ENOENT || return 1
  eq "open below a missing directory" "$(p9x errno "$T/no-such-dir/x")" ENOENT || return 1
  err=$(cat "$T/no-such-file" 2>&1) && { echo "cat of a missing file succeeded"; return 1; }
  case "$err" in *"No such file"*) ;; *) echo "cat: want 'No such file', got: $err"; return 1;; esac
  err=$(stat "$T/no-such-file" 2>&1) && { echo "stat of a missing file succeeded"; return 1; }
  return 0
}
c_xattr() {
  only_L "xattrs need 9P2000.L" || return
  f=$T/xattr.txt
  printf 'x\n' > "$f" || return 1
  p9x setxattr "$f" user.ninefold "hello xattr" >/dev/null || return 1
  eq getxattr "$(p9x getxattr "$f" user.ninefold)" "user.ninefold=hello xattr" || return 1
  p9x listxattr "$f" | grep -qx user.ninefold || { echo "listxattr lacks user.ninefold: $(p9x listxattr "$f")"; return 1; }
  p9x setxattr "$f" user.ninefold "replaced" >/dev/null || return 1
  eq "getxattr after replace" "$(p9x getxattr "$f" user.ninefold)" "user.ninefold=replaced" || return 1
  p9x removexattr "$f" user.ninefold >/dev/null || return 1
  eq "getxattr after removexattr" "$(p9x getxattr "$f" user.ninefold 2>/dev/null)" "FAIL getxattr: ENODATA"
}
c_flock() {
  printf 'x\n' > "$T/flock.txt" || return 1
  p9x flock "$T/flock.txt"
}
# 9P2000 and .u carry no byte-range locks: Linux's legacy v9fs lock operation succeeds
# without doing anything, so F_GETLK just echoes the request back.
c_posixlock() {
  only_L "9P2000 and 9P2000.u have no byte-range locks" || return
  printf 'x\n' > "$T/posix.txt" || return 1
  p9x posixlock "$T/posix.txt"
}
c_getlk() {
  only_L "9P2000 and 9P2000.u have no byte-range locks" || return
  printf 'x\n' > "$T/getlk.txt" || return 1
  p9x getlk "$T/getlk.txt"
}
c_fsync() {
  printf 'x\n' > "$T/fsync.txt" || return 1
  p9x fsync "$T/fsync.txt" >/dev/null || return 1
  eq "size after write + fsync" "$(stat -c %s "$T/fsync.txt")" 3
}
c_bigfile() {
  src=/tmp/fileops.big; f=$T/big.bin
  dd if=/dev/urandom of=$src bs=1M count="$BIG" 2>/dev/null || { echo "dd from /dev/urandom failed"; return 1; }
  want=$(md5sum < $src | cut -d' ' -f1)
  t0=$(ms)
  dd if=$src of="$f" bs=1M 2>/dev/null || { rm -f $src; echo "write through the mount failed"; return 1; }
  t1=$(ms)
  rm -f $src
  sync; [ "${FILEOPS_DROP_CACHES:-1}" = 0 ] || echo 3 > /proc/sys/vm/drop_caches
  eq size "$(stat -c %s "$f")" $((BIG * 1048576)) || return 1
  t2=$(ms)
  got=$(dd if="$f" bs=1M 2>/dev/null | md5sum | cut -d' ' -f1)
  t3=$(ms)
  echo "# ${BIG} MiB: write $(secs $((t1 - t0))) s, read+md5 $(secs $((t3 - t2))) s"
  eq "md5 read back" "$got" "$want"
}
c_bigdir() {
  d=$T/many
  mkdir "$d" || return 1
  t0=$(ms)
  p9x mkfiles "$d" "$NDIR" >/dev/null || return 1
  t1=$(ms)
  # readdir only: busybox ls would also stat every entry (~2 ms each under TCG)
  p9x listdir "$d" > /tmp/fileops.list || { echo "readdir failed"; return 1; }
  t2=$(ms)
  sort /tmp/fileops.list > /tmp/fileops.names
  awk -v n="$NDIR" 'BEGIN { for (i = 1; i <= n; i++) printf "f%05d\n", i }' > /tmp/fileops.want
  eq "entries listed by readdir" "$(wc -l < /tmp/fileops.names)" "$NDIR" || return 1
  eq "distinct names" "$(uniq /tmp/fileops.names | wc -l)" "$NDIR" || return 1
  if ! cmp -s /tmp/fileops.names /tmp/fileops.want; then
    echo "names differ, e.g.: $(diff /tmp/fileops.want /tmp/fileops.names 2>&1 | grep '^[-+]f' | head -3 | tr '\n' ' ')"
    return 1
  fi
  rm -f /tmp/fileops.list /tmp/fileops.names /tmp/fileops.want
  t3=$(ms)
  rm -rf "$d" || { echo "rm -rf of the directory failed"; return 1; }
  t4=$(ms)
  echo "# $NDIR entries: create $(secs $((t1 - t0))) s, readdir $(secs $((t2 - t1))) s, rm -rf $(secs $((t4 - t3))) s"
  [ ! -e "$d" ] || { echo "directory still there after rm -rf"; return 1; }
}
c_cleanup() {
  [ "${FILEOPS_KEEP:-0}" = 1 ] && { echo "FILEOPS_KEEP=1"; return 77; }
  rm -rf "$T" || return 1
  [ ! -e "$T" ] || { echo "$T still exists"; return 1; }
  # shellcheck disable=SC2010  # readdir of the parent is the point
  ls -a "$M" | grep -qx fileops.work && { echo "the parent still lists it"; return 1; }
  return 0
}

echo "# fileops: $V on $M (trans=$P9TRANS), big file ${BIG} MiB, directory of $NDIR entries"
check "mount is a ${FILEOPS_FSTYPE:-9p} file system" c_mount
check "mkdir the work directory" c_workdir
check "write and append (>>), content and size" c_append
check "truncate: shrink, extend with zeros, to zero" c_truncate
check "rename across directories and within one" c_rename
check "rename onto an existing file replaces it" c_rename_replace
check "hard link: link count 2, same inode, content" c_hardlink
check "symlink and readlink" c_symlink
check "chmod visible in stat" c_chmod
check "chown/chgrp visible in stat" c_chown
check "touch -d sets mtime/atime, touch sets now" c_touch
check "mkdir / rmdir, EEXIST and ENOTEMPTY" c_mkdir_rmdir
check "unlinked file still readable through an open descriptor" c_unlink_open
check "missing files: ENOENT" c_enoent
check "xattr set/get/list/replace/remove" c_xattr
check "flock: exclusive lock conflicts across open files, then released" c_flock
check "fcntl POSIX locks: F_SETLK, F_GETLK sees the holder, conflict, release" c_posixlock
check "fcntl F_GETLK on an unlocked file reports F_UNLCK" c_getlk
check "fsync and fdatasync" c_fsync
check "${BIG} MiB random file: write, drop caches, read back, same md5" c_bigfile
check "directory of $NDIR entries created and listed completely" c_bigdir
check "remove the work tree" c_cleanup
echo "1..$n"
echo "# $nskip skipped"
echo "$npass passed, $nfail failed"
[ $nfail -le 100 ] || nfail=100
exit $nfail
