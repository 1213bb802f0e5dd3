#!/usr/bin/env bash
# BEAM pair: the book's to-do servers on the BEAM (scripts/beampair.erl)
# and todo's in-memory path (BenchmarkBEAMPair in bench_test.go), in the
# same shape: 100 lists of 100 entries over 10 days, 2 clients, each
# making one synchronous call at a time to a list picked at random, an
# add (op add) or the entries of a day (op entries). The two run in turn,
# ROUNDS rounds, the first to go changing every round, so that both see
# the machine as loaded as it is; each run takes REPS repetitions of a
# WINDOW_MS window per op. It prints each round's medians and, at the end,
# the median of the rounds and the ratio Go/BEAM for each op: of the calls
# answered per second, and of the CPU time each call took (the process's,
# all threads; the BEAM's counts its schedulers' busy waits), the steadier
# figure on a machine that other jobs share.
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

# beam: one run of the BEAM half; lines "op ops/s cpu-ns/op".
beam() {
	erl -noshell -pa "$work" -s beampair main -extra "$WINDOW_MS" "$REPS"
}

# gobench: one run of the Go half; lines "op ops/s cpu-ns/op".
gobench() {
	"$work/todo.test" -test.run '^$' -test.bench '^BenchmarkBEAMPair$' \
		-test.benchtime "${WINDOW_MS}ms" -test.count "$REPS" |
		awk '/^BenchmarkBEAMPair\/op=/ {
			split($1, name, /[=-]/)
			for (i = 2; i <= NF; i++) {
				if ($i == "ops/s") rate = $(i - 1)
				if ($i == "cpu-ns/op") cpu = $(i - 1)
			}
			print name[2], rate, cpu
		}'
}

# figure FILE OP COLUMN: the median of COLUMN (2: ops/s, 3: cpu-ns/op) of
# the lines of OP in FILE.
figure() {
	awk -v op="$2" -v c="$3" '$1 == op { print $c }' "$1" | median
}

# ratio A B: A/B, two decimals.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

otp=$(erl -noshell -eval 'io:format("OTP ~s (erts ~s)", [erlang:system_info(otp_release), erlang:system_info(version)]), halt().')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "machine: $(nproc) CPUs ($cpu), $(go version | cut -d' ' -f3), $otp, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "each run: $REPS repetitions of ${WINDOW_MS}ms per op; the median of a run's repetitions"
echo
printf '%-5s  %-7s  %10s  %10s  %7s  %12s  %12s  %7s\n' round op "BEAM ops/s" "Go ops/s" Go/BEAM "BEAM cpu ns" "Go cpu ns" BEAM/Go
for round in $(seq "$ROUNDS"); do
	if [ $((round % 2)) = 1 ]; then
		beam >"$work/beam.$round"
		gobench >"$work/go.$round"
	else
		gobench >"$work/go.$round"
		beam >"$work/beam.$round"
	fi
	for op in add entries; do
		b=$(figure "$work/beam.$round" "$op" 2)
		g=$(figure "$work/go.$round" "$op" 2)
		bc=$(figure "$work/beam.$round" "$op" 3)
		gc=$(figure "$work/go.$round" "$op" 3)
		if [ -z "$b" ] || [ -z "$g" ] || [ -z "$bc" ] || [ -z "$gc" ]; then
			echo "round $round: no figure for $op" >&2
			exit 1
		fi
		echo "$op $b $bc" >>"$work/beam.medians"
		echo "$op $g $gc" >>"$work/go.medians"
		printf '%-5s  %-7s  %10.0f  %10.0f  %7s  %12.0f  %12.0f  %7s\n' "$round" "$op" "$b" "$g" "$(ratio "$g" "$b")" "$bc" "$gc" "$(ratio "$bc" "$gc")"
	done
done
echo
for op in add entries; do
	b=$(figure "$work/beam.medians" "$op" 2)
	g=$(figure "$work/go.medians" "$op" 2)
	bc=$(figure "$work/beam.medians" "$op" 3)
	gc=$(figure "$work/go.medians" "$op" 3)
	printf 'median of %s rounds  %-7s  ops/s BEAM %8.0f  Go %8.0f  Go/BEAM %5s;  cpu ns/call BEAM %6.0f  Go %6.0f  BEAM/Go %5s\n' \
		"$ROUNDS" "$op" "$b" "$g" "$(ratio "$g" "$b")" "$bc" "$gc" "$(ratio "$bc" "$gc")"
done
