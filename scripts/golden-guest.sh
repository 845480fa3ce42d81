# Guest script (busybox sh, run by kernel-client.sh) for scripts/capture-golden.sh:
# mounts the export through the capture tap and exercises many 9P2000.L operations on
# small data, one at a time, so the capture holds one exchange (or a few) per step.
# Env (GUEST_ENV): EXPORT = aname (required); P9VER = version= option (default
# 9p2000.L); OPTS = extra mount options. With P9VER other than 9p2000.L it only tries
# the mount (diod speaks .L only, so that is expected to fail) and exits 0.
# A failing step is reported ("!!! ... rc=N") but does not stop the script; the exit
# status is the number of unexpected failures (capped at 100).
: "${EXPORT:?set GUEST_ENV=EXPORT=/path}"
V=${P9VER:-9p2000.L}
M=/mnt/p9
if [ "$V" != 9p2000.L ]; then
  echo "--- mount version=$V (expected to fail against diod)"
  if p9mount $M "version=$V,aname=$EXPORT${OPTS:+,$OPTS}"; then
    echo "mount version=$V succeeded"; ls -la $M; umount $M
  else
    echo "mount version=$V failed: rc=$?"
  fi
  exit 0
fi

p9mount $M "version=$V,aname=$EXPORT${OPTS:+,$OPTS}" || { echo "mount failed"; exit 100; }
grep " $M " /proc/mounts
bad=0
step() { echo "--- $*"; "$@"; r=$?; [ $r = 0 ] || { echo "!!! rc=$r: $*"; bad=$((bad + 1)); }; }
xfail() { echo "--- (expect failure) $*"; "$@"; r=$?; [ $r != 0 ] || { echo "!!! succeeded: $*"; bad=$((bad + 1)); }; }
has() { command -v "$1" >/dev/null 2>&1; }
D=$M/g
step mkdir $D
step mkdir -m 0755 $D/sub
step ls -la $M
# create + write (Tlcreate, Twrite), read back (Twalk, Tlopen, Tread)
step sh -c "echo 'hello from the guest' > $D/hello.txt"
step cat $D/hello.txt
step sh -c "seq 1 1000 > $D/numbers.txt"          # ~3.9 KB, one Twrite
step md5sum $D/numbers.txt
step sh -c "[ \"\$(wc -l < $D/numbers.txt)\" = 1000 ]"
step dd if=$D/numbers.txt of=/dev/null bs=1000 count=2 2>/dev/null  # short reads
# readdir + getattr
step ls -l $D
step ls -lai $D/sub
step stat $D/hello.txt
step stat -f $M                                   # Tstatfs
step df $M
# setattr: times, mode, owner, size
step touch $D/hello.txt
step touch -d '2001-02-03 04:05:06' $D/hello.txt
step touch $D/newfile                             # create via touch (empty)
step chmod 0640 $D/hello.txt
step chmod 0755 $D/sub
step chown 1000:1000 $D/newfile
step chgrp 100 $D/hello.txt
step truncate -s 5 $D/hello.txt
step truncate -s 100 $D/newfile                   # extend
step cat $D/hello.txt
# append (Tlopen with O_APPEND), positional I/O
step sh -c "echo ' appended' >> $D/hello.txt"
step cat $D/hello.txt
# hard link, symlink, readlink
step ln $D/hello.txt $D/hardlink.txt
step stat -c '%h links' $D/hello.txt
step ln -s hello.txt $D/symlink
step readlink $D/symlink
step cat $D/symlink
step ln -s /does/not/exist $D/dangling
step readlink $D/dangling
# rename within a directory and across directories
step mv $D/numbers.txt $D/renamed.txt
step mv $D/renamed.txt $D/sub/moved.txt
step mv $D/sub/moved.txt $M/top-moved.txt
step ls -l $D/sub $M
# special files
step mkfifo $D/fifo
step mknod $D/chardev c 1 3
step ls -l $D
# sync / fsync
step sync
if has p9x; then
  step p9x fsync $D/newfile
  step p9x fdatasync $D/newfile
  step p9x pwrite $D/newfile 50 XYZ
  step p9x pread $D/newfile 48 8
  # xattrs (Txattrcreate, Txattrwalk)
  step p9x setxattr $D/hello.txt user.golden value-1
  step p9x getxattr $D/hello.txt user.golden
  step p9x listxattr $D/hello.txt
  step p9x removexattr $D/hello.txt user.golden
  xfail p9x getxattr $D/hello.txt user.golden     # ENODATA
  # locks (Tlock, Tgetlock)
  step p9x flock $D/newfile
  step p9x posixlock $D/newfile
  step p9x excl $D/hello.txt                      # EEXIST
else
  echo "--- no p9x helper: skipping fsync/xattr/lock steps"
fi
# errors
xfail cat $M/no-such-file                         # ENOENT (Rlerror 2)
xfail ls $M/no-such-dir/x
xfail rmdir $D                                    # ENOTEMPTY
xfail mkdir $D/sub                                # EEXIST
if has p9x; then                                  # another uid: new Tattach, EACCES
  step chmod 0600 $D/hello.txt
  xfail p9x asuser 1000 1000 cat $D/hello.txt
  step p9x asuser 1000 1000 ls -l $D/sub
fi
# remove everything (Tunlinkat, with AT_REMOVEDIR for directories)
step rm $D/hello.txt $D/hardlink.txt $D/symlink $D/dangling $D/fifo $D/newfile
step rm -f $D/chardev
step rm $M/top-moved.txt
step rmdir $D/sub
step rmdir $D
step ls -la $M
cd /
step umount $M
echo "=== golden-guest: $bad unexpected failure(s)"
[ $bad -le 100 ] || bad=100
exit $bad
