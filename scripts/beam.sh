#!/usr/bin/env bash
# BEAM pair: the book's to-do servers on the BEAM (scripts/beampair.erl)
# and todo's in-memory path (BenchmarkBEAMPair in bench_test.go), in the
# same shape: 100 lists of 100 entries over 10 days, 2 clients, each
# making one synchronous call at a time to a list picked at random, an
# add (op add) or the entries of a day (op entries). The two run in turn,
# ROUNDS rounds, the first to go changing every round, so that both see
# the machine as loaded as it is; each run takes REPS repetitions of a
# WINDOW_MS window per op. It prints each round's medians and, at the end,
# the median of the rounds and the ratio Go/BEAM for each op.
#
# Usage: scripts/beam.sh   (needs Erlang/OTP: apt-get install erlang-nox)
# Environment: ROUNDS (default 3), REPS (3), WINDOW_MS (500).
# It takes about 30 s, builds in a temporary directory, and leaves nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
REPS=${REPS:-3}
WINDOW_MS=${WINDOW_MS:-500}

if ! command -v erl >/dev/null 2>&1 || ! command -v erlc >/dev/null 2>&1; then
	echo "beam.sh needs Erlang/OTP (erl and erlc), which is not on the PATH." >&2
	echo "Install it, then run this again: on Debian or Ubuntu, sudo apt-get install erlang-nox" >&2
	exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "building..."
erlc -o "$work" scripts/beampair.erl
go test -c -o "$work/todo.test" .

# median: the median of the numbers on stdin, one a line.
median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# beam: one run of the BEAM half; lines "op ops/s".
beam() {
	erl -noshell -pa "$work" -s beampair main -extra "$WINDOW_MS" "$REPS"
}

# gobench: one run of the Go half; lines "op ops/s".
gobench() {
	"$work/todo.test" -test.run '^$' -test.bench '^BenchmarkBEAMPair$' \
		-test.benchtime "${WINDOW_MS}ms" -test.count "$REPS" |
		awk '/^BenchmarkBEAMPair\/op=/ {
			split($1, name, /[=-]/)
			for (i = 2; i <= NF; i++) if ($i == "ops/s") print name[2], $(i - 1)
		}'
}

otp=$(erl -noshell -eval 'io:format("OTP ~s (erts ~s)", [erlang:system_info(otp_release), erlang:system_info(version)]), halt().')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "machine: $(nproc) CPUs ($cpu), $(go version | cut -d' ' -f3), $otp, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "each run: $REPS repetitions of ${WINDOW_MS}ms per op; ops/s, the median of a run's repetitions"
echo
printf '%-5s  %-7s  %10s  %10s  %7s\n' round op BEAM Go Go/BEAM
for round in $(seq "$ROUNDS"); do
	if [ $((round % 2)) = 1 ]; then
		beam >"$work/beam.$round"
		gobench >"$work/go.$round"
	else
		gobench >"$work/go.$round"
		beam >"$work/beam.$round"
	fi
	for op in add entries; do
		b=$(awk -v op="$op" '$1 == op { print $2 }' "$work/beam.$round" | median)
		g=$(awk -v op="$op" '$1 == op { print $2 }' "$work/go.$round" | median)
		if [ -z "$b" ] || [ -z "$g" ]; then
			echo "round $round: no figure for $op" >&2
			exit 1
		fi
		echo "$op $b" >>"$work/beam.medians"
		echo "$op $g" >>"$work/go.medians"
		printf '%-5s  %-7s  %10.0f  %10.0f  %7.2f\n' "$round" "$op" "$b" "$g" "$(awk -v g="$g" -v b="$b" 'BEGIN { print g / b }')"
	done
done
echo
for op in add entries; do
	b=$(awk -v op="$op" '$1 == op { print $2 }' "$work/beam.medians" | median)
	g=$(awk -v op="$op" '$1 == op { print $2 }' "$work/go.medians" | median)
	printf 'median of %s rounds  %-7s  BEAM %10.0f  Go %10.0f  Go/BEAM %.2f\n' "$ROUNDS" "$op" "$b" "$g" "$(awk -v g="$g" -v b="$b" 'BEGIN { print g / b }')"
done
