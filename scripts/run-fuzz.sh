#!/bin/bash
# Runs the libFuzzer targets of a fuzz build (`make fuzz`) for a bounded time.
#
#   scripts/run-fuzz.sh BUILD_DIR SECONDS
#
# Regenerates the seed corpora from tests/wire/golden into BUILD_DIR/fuzz-seeds/, then runs
# wire_decode_fuzz for 2/3 of SECONDS and wire_stream_fuzz for the rest. Each keeps its
# grown corpus in BUILD_DIR/fuzz-corpus/TARGET/ (so a rerun resumes where the last one
# stopped) and writes reproducers to BUILD_DIR/fuzz-artifacts/TARGET/. Exits 1 on any
# finding (crash, sanitizer report, leak, timeout, out of memory) and prints how to
# reproduce it; prints "fuzz: TARGET: N runs, M findings" per target.
set -euo pipefail

if [ $# -ne 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
seconds=$2
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$build/fuzz

for exe in make_seeds wire_decode_fuzz wire_stream_fuzz; do
  [ -x "$bin/$exe" ] || { echo "run-fuzz: $bin/$exe missing; build with -DNINEFOLD_FUZZ=ON" >&2; exit 2; }
done

# Fresh seeds every run (the captures may have changed); the grown corpus is kept.
rm -rf "$build/fuzz-seeds"
"$bin/make_seeds" "$root/tests/wire/golden" "$build/fuzz-seeds/wire_decode_fuzz" \
  "$build/fuzz-seeds/wire_stream_fuzz"

decode_seconds=$((seconds * 2 / 3))
stream_seconds=$((seconds - decode_seconds))
[ "$decode_seconds" -ge 1 ] || decode_seconds=1
[ "$stream_seconds" -ge 1 ] || stream_seconds=1

status=0
summary=()

# run_one TARGET SECONDS [libFuzzer flags...]
run_one() {
  local target=$1 time=$2
  shift 2
  local corpus=$build/fuzz-corpus/$target
  local artifacts=$build/fuzz-artifacts/$target
  local log=$build/fuzz-logs/$target.log
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  local stamp
  stamp=$(mktemp)  # findings are the artifacts newer than this
  echo "== $target: ${time}s, corpus $corpus"
  local rc=0
  # -timeout: one input taking this long is a finding. Leak detection is on (ASan).
  "$bin/$target" -max_total_time="$time" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$@" \
    "$corpus" "$build/fuzz-seeds/$target" >"$log" 2>&1 || rc=$?
  local runs
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  local findings=()
  while IFS= read -r f; do findings+=("$f"); done < <(
    find "$artifacts" -type f -newer "$stamp" \
      \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
  rm -f "$stamp"
  if [ "$rc" -ne 0 ] && [ ${#findings[@]} -eq 0 ]; then
    findings+=("(exit status $rc, no artifact; see $log)")
  fi
  if [ ${#findings[@]} -ne 0 ]; then
    status=1
    tail -n 60 "$log"
    for f in "${findings[@]}"; do
      echo "run-fuzz: $target finding: $f"
      [ -f "$f" ] && echo "  reproduce: $bin/$target $f"
    done
  else
    grep -E '^(#[0-9]+ +DONE|Done )' "$log" | tail -2 || true
  fi
  summary+=("fuzz: $target: ${runs:-0} runs, ${#findings[@]} findings")
}

run_one wire_decode_fuzz "$decode_seconds" -max_len=8192
run_one wire_stream_fuzz "$stream_seconds" -max_len=16384

printf '%s\n' "${summary[@]}"
exit "$status"
