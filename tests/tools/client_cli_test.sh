#!/bin/bash
# The client commands (ninefold ls, cat, put, stat, mkdir, rm, mv) against two servers:
# `ninefold serve` on a Unix socket (in 9P2000.L, 9P2000.u and 9P2000) and diod on
# 127.0.0.1 (9P2000.L, the only dialect it speaks). Every effect is checked on the
# exported directory itself, not only through the client; errors are checked to the exact
# message and exit status.
# usage: client_cli_test.sh NINEFOLD_BINARY
set -u
BIN=${1:?usage: client_cli_test.sh NINEFOLD_BINARY}
command -v diod >/dev/null || { echo "missing diod: run scripts/install-deps.sh"; exit 1; }
command -v perl >/dev/null || { echo "missing perl"; exit 1; }

T=$(mktemp -d /tmp/ninefold-cli.XXXXXX)
chmod 755 "$T"
NF_EXPORT=$T/nf-export
DIOD_EXPORT=$T/diod-export
mkdir -p "$NF_EXPORT" "$DIOD_EXPORT"
SOCK=$T/ninefold.sock
# A multi-MiB file whose size is not a multiple of the 4 MiB streaming chunk or of any msize.
head -c $((9 * 1024 * 1024 + 12345)) /dev/urandom > "$T/random.bin"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT

# Both servers stop by themselves after 240 s whatever happens; they are stopped by PID.
timeout -k 5 240 "$BIN" serve --listen "unix!$SOCK" --export "$NF_EXPORT" 2> "$T/serve.log" &
PIDS+=($!)
free_port() {
  perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 1)->sockport, "\n"'
}
PORT=$(free_port)
timeout -k 5 240 diod -f -n -c /dev/null -l "127.0.0.1:$PORT" -e "$DIOD_EXPORT" \
  > "$T/diod.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "listening on unix" "$T/serve.log" && break; sleep 0.1; done
grep -q "listening on unix" "$T/serve.log" || { echo "ninefold serve did not start:"; cat "$T/serve.log"; exit 1; }
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || { echo "diod did not start:"; cat "$T/diod.log"; exit 1; }

pass=0 fail=0
check() {  # check DESCRIPTION COMMAND...: runs COMMAND, counts the result
  local desc=$1; shift
  if out=$("$@" 2>&1); then
    echo "ok - $desc"; pass=$((pass + 1))
  else
    echo "not ok - $desc"; echo "$out" | sed 's/^/#   /' | head -20; fail=$((fail + 1))
  fi
}
# expect STATUS STDERR COMMAND...: COMMAND exits STATUS and prints exactly STDERR on stderr
# (STDERR "*" accepts any).
expect() {
  local status=$1 want=$2 rc err; shift 2
  err=$("$@" 2>&1 >/dev/null); rc=$?
  [ "$rc" = "$status" ] || { echo "exit status $rc, want $status; stderr: $err"; return 1; }
  [ "$want" = "*" ] || [ "$err" = "$want" ] || { echo "stderr: '$err'"; echo "want:   '$want'"; return 1; }
}
contains() {  # contains TEXT LINE: TEXT has LINE as a whole line
  grep -qxF -- "$2" <<<"$1" || { echo "no line '$2' in:"; echo "$1"; return 1; }
}
has() {  # has TEXT REGEX
  grep -qE -- "$2" <<<"$1" || { echo "no match for /$2/ in:"; echo "$1"; return 1; }
}

# --- the cases, against one server in one dialect -------------------------------------
# nf ARGS...: the client command with this run's ADDR and options.
nf() { local cmd=$1; shift; "$BIN" "$cmd" "$ADDR" "${OPTS[@]}" "$@"; }

put_cat_roundtrip() {
  nf put "$P-big" < "$T/random.bin" || return 1
  cmp "$T/random.bin" "$EXPORT/$P-big" || return 1
  nf cat "$P-big" | cmp - "$T/random.bin"
}
put_truncates() {
  printf 'short\n' | nf put "$P-big" || return 1
  [ "$(cat "$EXPORT/$P-big")" = short ] || { echo "export has: $(head -c 80 "$EXPORT/$P-big")"; return 1; }
  [ "$(nf cat "$P-big")" = short ]
}
put_empty() {
  nf put "$P-empty" < /dev/null || return 1
  [ -f "$EXPORT/$P-empty" ] && [ ! -s "$EXPORT/$P-empty" ]
}
cat_several() {
  printf 'one\n' > "$EXPORT/$P-one"; printf 'two\n' > "$EXPORT/$P-two"
  [ "$(nf cat "$P-one" "$P-two")" = "$(printf 'one\ntwo')" ]
}
ls_lists() {
  local out; out=$(nf ls) || return 1
  contains "$out" "$P-big" && contains "$out" "$P-one" && contains "$out" "$P-empty"
}
ls_long() {
  local out; out=$(nf ls -l /) || return 1
  has "$out" "^-rw-r--r-- +[0-9]+ +[^ ]+ +[^ ]+ +6 [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} $P-big\$"
}
ls_file() {
  local out; out=$(nf ls "$P-one") || return 1
  [ "$out" = "$P-one" ] || { echo "ls FILE said: $out"; return 1; }
}
stat_file() {
  local out; out=$(nf stat "$P-big") || return 1
  contains "$out" "  File: $P-big" && contains "$out" "  Type: regular file" &&
    contains "$out" "  Size: 6" && contains "$out" "  Mode: 0644 (-rw-r--r--)" &&
    has "$out" "^Modify: $(date +%Y)-"
}
stat_dir() {
  local out; out=$(nf stat /) || return 1
  contains "$out" "  Type: directory" && has "$out" "^  Mode: 0[0-7]{3} \(d"
}
mkdir_makes() {
  nf mkdir "$P-dir" "$P-dir2" || return 1
  [ -d "$EXPORT/$P-dir" ] && [ -d "$EXPORT/$P-dir2" ]
}
mkdir_parents() {
  nf mkdir -p "$P-dir/a/b/c" || return 1
  [ -d "$EXPORT/$P-dir/a/b/c" ] || return 1
  nf mkdir -p "$P-dir/a" # exists: no error with -p
}
mv_renames() {
  nf mv "$P-one" "$P-uno" || return 1
  [ ! -e "$EXPORT/$P-one" ] && [ "$(cat "$EXPORT/$P-uno")" = one ]
}
mv_into_dir() {  # 9P2000.L only: 9P2000/.u rename within a directory
  nf mv "$P-uno" "$P-dir" || return 1
  [ ! -e "$EXPORT/$P-uno" ] && [ "$(cat "$EXPORT/$P-dir/$P-uno")" = one ]
}
rm_removes() {
  nf rm "$P-two" "$P-dir2" || return 1
  [ ! -e "$EXPORT/$P-two" ] && [ ! -e "$EXPORT/$P-dir2" ]
}
rm_continues() {  # a missing path is reported; the paths after it are still removed
  expect 1 "ninefold rm: $P-nope: No such file or directory" nf rm "$P-nope" "$P-empty" || return 1
  [ ! -e "$EXPORT/$P-empty" ]
}
rm_nonempty_dir() {
  expect 1 "ninefold rm: $P-dir: Directory not empty" nf rm "$P-dir" || return 1
  [ -d "$EXPORT/$P-dir" ]
}

run_cases() {  # run_cases LABEL EXPORT DIALECT ADDR [OPTION...]
  LABEL=$1 EXPORT=$2 DIALECT=$3 ADDR=$4
  shift 4
  OPTS=(--dialect "$DIALECT" "$@")
  P=t-$(echo "$DIALECT" | tr -cd 'a-zA-Z0-9')  # this run's file name prefix
  local on="on $LABEL ($DIALECT)"
  check "put + cat round trip of 9 MiB $on" put_cat_roundtrip
  check "put truncates an existing file $on" put_truncates
  check "put of empty input creates an empty file $on" put_empty
  check "cat of several files $on" cat_several
  check "ls lists created names $on" ls_lists
  check "ls -l shows mode, size and name $on" ls_long
  check "ls FILE names the file $on" ls_file
  check "stat of a file $on" stat_file
  check "stat of a directory $on" stat_dir
  check "mkdir makes directories in the export $on" mkdir_makes
  check "mkdir -p makes parents $on" mkdir_parents
  check "mkdir of an existing directory: exit 1, File exists $on" \
    expect 1 "ninefold mkdir: $P-dir: File exists" nf mkdir "$P-dir"
  check "mv renames in the export $on" mv_renames
  if [ "$DIALECT" = 9P2000.L ]; then check "mv into a directory $on" mv_into_dir; fi
  check "rm removes a file and an empty directory $on" rm_removes
  check "rm reports a missing path, continues, exit 1 $on" rm_continues
  check "rm of a non-empty directory: exit 1 $on" rm_nonempty_dir
  check "cat of a missing path: exact message, exit 1 $on" \
    expect 1 "ninefold cat: $P-nope: No such file or directory" nf cat "$P-nope"
  check "ls of a missing path: exact message, exit 1 $on" \
    expect 1 "ninefold ls: $P-nope: No such file or directory" nf ls "$P-nope"
  check "stat of a missing path: exact message, exit 1 $on" \
    expect 1 "ninefold stat: $P-nope/x: No such file or directory" nf stat "$P-nope/x"
  check "cat of a directory: exit 1, Is a directory $on" \
    expect 1 "ninefold cat: $P-dir: Is a directory" nf cat "$P-dir"
  check "put into a missing directory: exit 1 $on" \
    expect 1 "ninefold put: $P-nope/x: No such file or directory" nf put "$P-nope/x" </dev/null
}

run_cases "ninefold serve" "$NF_EXPORT" 9P2000.L "unix!$SOCK"
run_cases "ninefold serve" "$NF_EXPORT" 9P2000.u "unix!$SOCK"
run_cases "ninefold serve" "$NF_EXPORT" 9P2000 "unix!$SOCK"
run_cases "diod" "$DIOD_EXPORT" 9P2000.L "tcp!127.0.0.1!$PORT" --aname "$DIOD_EXPORT" --msize 64K

# --- usage errors (exit 2) and connection errors (exit 1) -----------------------------
check "cat without ADDR: exit 2" expect 2 "*" "$BIN" cat
check "cat without PATH: exit 2" expect 2 "*" "$BIN" cat "unix!$SOCK"
check "put with two paths: exit 2" expect 2 "*" "$BIN" put "unix!$SOCK" a b
check "mv with one path: exit 2" expect 2 "*" "$BIN" mv "unix!$SOCK" a
check "unknown option: exit 2" expect 2 "*" "$BIN" ls --bogus "unix!$SOCK"
check "malformed address: exit 2" expect 2 "*" "$BIN" ls 'bogus!x'
check "unknown dialect: exit 2" expect 2 "*" "$BIN" ls --dialect 9P1 "unix!$SOCK"
check "nobody listening: exit 1 with the reason" \
  expect 1 "ninefold ls: unix!$T/nobody.sock: No such file or directory" "$BIN" ls "unix!$T/nobody.sock"
check "diod refuses 9P2000.u: exit 1" \
  expect 1 "*" "$BIN" ls --dialect 9P2000.u "tcp!127.0.0.1!$PORT" --aname "$DIOD_EXPORT"
for cmd in ls cat put stat mkdir rm mv bench; do
  check "$cmd --help exits 0 and names --aname, --msize, --dialect" \
    bash -c "out=\$('$BIN' $cmd --help) && grep -q -- --aname <<<\"\$out\" && grep -q -- --msize <<<\"\$out\" && grep -q -- --dialect <<<\"\$out\""
done

# fd!R!W at both ends: a client on inherited descriptors (two fifos) to `serve --listen
# fd!0!1`, which exits once the client is done (its input closes). (Not a coprocess: bash
# makes its descriptors' copies close-on-exec.)
stat_over_fds() {
  local pid rc out
  rm -f "$T/fd.in" "$T/fd.out" && mkfifo "$T/fd.in" "$T/fd.out" || return 1
  timeout -k 5 30 "$BIN" serve --listen 'fd!0!1' --ramfs r <"$T/fd.in" >"$T/fd.out" \
    2>"$T/fdserve.log" &
  pid=$!
  # Opened in the order the server opens them (each open waits for the other end).
  timeout -k 5 30 "$BIN" stat 'fd!3!4' --aname r / 4>"$T/fd.in" 3<"$T/fd.out" >"$T/fdstat.out"; rc=$?
  wait $pid || { echo "serve over fd!0!1 exited $?:"; cat "$T/fdserve.log"; return 1; }
  out=$(cat "$T/fdstat.out")
  [ $rc = 0 ] && has "$out" 'Type: directory'
}
check "stat over fd!3!4 against serve --listen fd!0!1" stat_over_fds

# The server's and the FUSE mount's help name every kind of address they take.
for cmd in serve mount; do
  check "$cmd --help names tcp!, unix!, shm! and fd! addresses" \
    bash -c "out=\$('$BIN' $cmd --help) && for a in 'tcp!HOST!PORT' 'unix!/PATH' 'shm!/PATH' 'fd!R!W'; do grep -qF -- \"\$a\" <<<\"\$out\" || exit 1; done"
done

# --- bench, briefly, against both (it is measured elsewhere; here it must run) ----------
bench_runs() {  # bench_runs OP ADDR [OPTION...]: one short run printing a JSON object
  local op=$1 addr=$2 out; shift 2
  out=$("$BIN" bench "$addr" --op "$op" --outstanding 4 --warmup 0.1 --duration 0.3 --json "$@") || { echo "$out"; return 1; }
  has "$out" '^\{"op": "'"$op"'".*"ops": [1-9][0-9]*,.*"p99": [0-9.]+.*\}$'
}
for op in getattr read write create; do
  check "bench --op $op on ninefold serve" bench_runs $op "unix!$SOCK"
  check "bench --op $op on diod" bench_runs $op "tcp!127.0.0.1!$PORT" --aname "$DIOD_EXPORT"
done
for op in getattr create; do
  check "bench --op $op in 9P2000.u on ninefold serve" bench_runs $op "unix!$SOCK" --dialect 9P2000.u
  check "bench --op $op in 9P2000 on ninefold serve" bench_runs $op "unix!$SOCK" --dialect 9P2000
done
check "bench without --op: exit 2" expect 2 "*" "$BIN" bench "unix!$SOCK"
check "bench --op bogus: exit 2" expect 2 "*" "$BIN" bench "unix!$SOCK" --op bogus
bench_missing_path() {
  local err rc
  err=$("$BIN" bench "unix!$SOCK" --op read --path nope 2>&1 >/dev/null); rc=$?
  [ $rc = 1 ] || { echo "exit status $rc"; return 1; }
  has "$err" "^ninefold bench: setting up read: No such file or directory"
}
check "bench of a missing --path: exit 1, the reason" bench_missing_path
check "bench left no files behind" bash -c "! ls -A '$NF_EXPORT' '$DIOD_EXPORT' | grep -q ninefold-bench"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
