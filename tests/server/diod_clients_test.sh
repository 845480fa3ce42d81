#!/bin/bash
# diod's own clients (diodls, diodcat, dioddate, diodload) against `ninefold serve`, over
# TCP and a Unix socket: real 9P2000.L peers we did not write.
# usage: diod_clients_test.sh NINEFOLD_BINARY
set -u
BIN=${1:?usage: diod_clients_test.sh NINEFOLD_BINARY}
for tool in diodls diodcat dioddate diodload; do
  command -v $tool >/dev/null || { echo "missing $tool: run scripts/install-deps.sh"; exit 1; }
done

T=$(mktemp -d /tmp/ninefold-diod.XXXXXX)
chmod 755 "$T"
EXPORT=$T/export
mkdir -p "$EXPORT/sub"
printf 'hello, 9p\n' > "$EXPORT/hello.txt"
ln -s hello.txt "$EXPORT/link"
head -c 300000 /dev/urandom > "$EXPORT/random.bin"
SOCK=$T/ninefold.sock

# The server stops by itself after 120 s whatever happens; it is stopped by its PID.
timeout -k 5 120 "$BIN" serve --listen 'tcp!127.0.0.1!0' --listen "unix!$SOCK" \
  --export "$EXPORT" --ctl 2> "$T/server.log" &
PID=$!
cleanup() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
for _ in $(seq 100); do grep -q "listening on unix" "$T/server.log" && break; sleep 0.1; done
PORT=$(sed -n 's/.*listening on tcp!127\.0\.0\.1!\([0-9]*\)$/\1/p' "$T/server.log")
[ -n "$PORT" ] || { echo "server did not start:"; cat "$T/server.log"; exit 1; }

pass=0 fail=0
check() {  # check DESCRIPTION COMMAND...: runs COMMAND, counts the result
  local desc=$1; shift
  if out=$("$@" 2>&1); then
    echo "ok - $desc"; pass=$((pass + 1))
  else
    echo "not ok - $desc"; echo "$out" | sed 's/^/#   /' | head -20; fail=$((fail + 1))
  fi
}
lists_export() {
  local out; out=$(diodls -s "$1" -a "$EXPORT" -l /) || return 1
  for name in hello.txt sub link random.bin; do
    grep -q " $name\$" <<<"$out" || { echo "no $name in:"; echo "$out"; return 1; }
  done
}
cats_file() { [ "$(diodcat -s "$1" -a "$EXPORT" hello.txt)" = "hello, 9p" ]; }
cats_binary() { diodcat -s "$1" -a "$EXPORT" random.bin | cmp - "$EXPORT/random.bin"; }
reads_version() { diodcat -s "$1" version | grep -q '^ninefold '; }
reads_date() {  # dioddate prints the server's time; it must be this year
  local out; out=$(dioddate -s "$1") || return 1
  grep -q "$(date -u +%Y)" <<<"$out" || { echo "dioddate said: $out"; return 1; }
}
loads() {  # diodload: zero -> null with 4 threads (or getattr with -g); must move data
  local out; out=$(timeout 30 diodload -s "$@" -n 4 -r 2 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  grep -Eq '^diodload: [1-9][0-9]* ops/s' <<<"$out"
}

for ADDR in "127.0.0.1:$PORT" "$SOCK"; do
  check "diodls -l lists the export over $ADDR" lists_export "$ADDR"
  check "diodcat reads a text file over $ADDR" cats_file "$ADDR"
  check "diodcat reads 300 KB byte for byte over $ADDR" cats_binary "$ADDR"
  check "diodcat reads ctl/version over $ADDR" reads_version "$ADDR"
  check "dioddate reads ctl/date over $ADDR" reads_date "$ADDR"
  check "diodload -n 4 (zero -> null) over $ADDR" loads "$ADDR"
  check "diodload -n 4 -g (getattr) over $ADDR" loads "$ADDR" -g
done

# SIGTERM: stop accepting, finish what is in flight, exit 0.
kill -TERM "$PID"
wait "$PID"; rc=$?
if [ $rc = 0 ]; then echo "ok - SIGTERM exits 0"; pass=$((pass + 1));
else echo "not ok - SIGTERM exit status $rc"; tail "$T/server.log"; fail=$((fail + 1)); fi
if grep -E ' (warn|error) ' "$T/server.log"; then
  echo "not ok - server logged warnings or errors"; fail=$((fail + 1))
else
  echo "ok - server log is clean"; pass=$((pass + 1))
fi
echo "$pass passed, $fail failed"
[ $fail = 0 ]
