#!/bin/bash
# Runs the benchmarks of a release build and prints a table of medians (`make bench`).
#
#   scripts/run-bench.sh BUILD_DIR [extra Google Benchmark flags...]
#
# Each benchmark runs REPETITIONS times (default 5) for at least MIN_TIME seconds each
# (default 0.3), interleaved in random order so that a burst of load from elsewhere does
# not land on one benchmark only; the table shows the median and the coefficient of
# variation across repetitions. Google Benchmark's own report and warnings go to
# BUILD_DIR/bench/wire_bench.log. The raw results go to BUILD_DIR/bench/wire_bench.json.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 BUILD_DIR [benchmark flags...]" >&2
  exit 2
fi
build=$1
shift
repetitions=${REPETITIONS:-5}
min_time=${MIN_TIME:-0.3}
bench=$build/bench/wire_bench

# A build configured with -DNINEFOLD_BENCH=OFF has no benchmarks yet: turn them on.
if [ ! -x "$bench" ]; then
  cmake -DNINEFOLD_BENCH=ON "$build" >/dev/null
  cmake --build "$build" --target wire_bench
fi

json=$build/bench/wire_bench.json
"$bench" --benchmark_repetitions="$repetitions" --benchmark_min_time="$min_time" \
  --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true \
  --benchmark_out="$json" --benchmark_out_format=json "$@" >/dev/null 2>"$build/bench/wire_bench.log" ||
  { cat "$build/bench/wire_bench.log" >&2; exit 1; }

# name | median CPU ns/op | cv % | bytes/s (median) | frames/s (median). CPU time, not
# wall time: on a shared machine it leaves out the time the benchmark was descheduled.
perl -MJSON::PP -e '
  local $/; open(my $f, "<", $ARGV[0]) or die "$ARGV[0]: $!"; my $r = decode_json(<$f>);
  my $c = $r->{context};
  printf "%s, %d CPUs at %d MHz, load average %s; %s repetitions, median\n\n",
    $c->{host_name}, $c->{num_cpus}, $c->{mhz_per_cpu},
    join(" ", map { sprintf "%.2f", $_ } @{$c->{load_avg} // []}), $ARGV[1];
  my (%median, %cv, %family);
  for my $b (@{$r->{benchmarks}}) {
    my $name = $b->{run_name};
    $family{$name} = $b->{family_index};
    $median{$name} = $b if $b->{aggregate_name} eq "median";
    $cv{$name} = $b if $b->{aggregate_name} eq "cv";
  }
  my @order = sort { $family{$a} <=> $family{$b} } keys %family;  # registration order
  sub si { my ($v, $unit) = @_; return "" unless defined $v;
    for my $p (["T", 1e12], ["G", 1e9], ["M", 1e6], ["k", 1e3]) {
      return sprintf("%.1f %s%s", $v / $p->[1], $p->[0], $unit) if $v >= $p->[1] }
    return sprintf("%.0f %s", $v, $unit) }
  my $fmt = "%-32s %12s %7s %14s %14s\n";
  printf $fmt, "benchmark", "ns/op", "cv", "bytes/s", "frames/s";
  printf $fmt, "-" x 32, "-" x 12, "-" x 7, "-" x 14, "-" x 14;
  for my $name (@order) {
    my $m = $median{$name} or next;
    die "unexpected time unit $m->{time_unit}" unless $m->{time_unit} eq "ns";
    printf $fmt, $name, sprintf("%.1f", $m->{cpu_time}),
      $cv{$name} ? sprintf("%.1f%%", 100 * $cv{$name}{cpu_time}) : "",
      si($m->{bytes_per_second}, "B/s"), si($m->{items_per_second}, "/s");
  }
' "$json" "$repetitions"
echo
echo "raw results: $json"
