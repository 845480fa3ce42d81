#!/bin/bash
# The main job of `make run`: serve a demo directory over 9P on the embedded default
# setup — tcp!127.0.0.1!5640 and unix!/tmp/ninefold.sock, plus diod's ctl tree — until
# Ctrl-C (or RUN_SECONDS, if set, have passed).
# usage: run-demo.sh NINEFOLD_BINARY [DEMO_DIR]
set -euo pipefail
BIN=${1:?usage: run-demo.sh NINEFOLD_BINARY [DEMO_DIR]}
DEMO=$(mkdir -p "${2:-build/demo}" && cd "${2:-build/demo}" && pwd)
TCP=${NINEFOLD_DEMO_TCP:-tcp!127.0.0.1!5640}
UNIX=${NINEFOLD_DEMO_UNIX:-unix!/tmp/ninefold.sock}

# A fresh demo tree each run (clients may write to it).
rm -rf "$DEMO"; mkdir -p "$DEMO/docs" "$DEMO/empty"
cp README.md "$DEMO/"
printf 'Hello from ninefold.\n' > "$DEMO/hello.txt"
seq 1 1000 > "$DEMO/docs/numbers.txt"
ln -s hello.txt "$DEMO/link-to-hello"
# The Linux kernel client attaches as 'nobody' first: the export must be reachable.
chmod -R a+rwX "$DEMO"

port=${TCP##*!}
cat <<MSG
ninefold: serving $DEMO
  on $TCP and $UNIX, plus diod's control files on aname 'ctl'.
Try, from another terminal:
  $BIN ls '$TCP' / --aname $DEMO
  $BIN cat '${UNIX}' hello.txt --aname $DEMO
  $BIN mount '$TCP' MOUNTPOINT --aname $DEMO   (FUSE; unmount: fusermount3 -u MOUNTPOINT)
  diodls -s 127.0.0.1:$port -a $DEMO -l /
  diodcat -s 127.0.0.1:$port -a $DEMO hello.txt
  diodcat -s ${UNIX#unix!} version
  mount -t 9p -o trans=tcp,port=$port,version=9p2000.L,aname=$DEMO 127.0.0.1 /mnt  (where 9p exists)
Every message printed: NINEFOLD_TRACE=1 make run.   Stop: Ctrl-C.
MSG
pre=()
[ -n "${RUN_SECONDS:-}" ] && pre=(timeout --preserve-status -s INT "$RUN_SECONDS")
exec "${pre[@]}" "$BIN" serve --listen "$TCP" --listen "$UNIX" --export "$DEMO" --ctl
