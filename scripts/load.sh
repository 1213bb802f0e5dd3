#!/usr/bin/env bash
# Load benchmark: the original's load test shape, with wrk and
# scripts/load.lua (1000 lists list_1..list_1000, a random day of December
# 2013, 80% GET /entries, 20% POST /add_entry), against the todo binary in
# each durability mode (a fresh data directory each), then, in the same run,
# against a bare net/http handler answering OK: the ceiling of this machine.
# Target (issue 20): async mode >= 0.7x the bare handler's req/s, with p99 < 15 ms.
# Beside req/s and p99 it prints each server's CPU time per request (from
# /proc/PID/stat), which other jobs on the machine move less.
# With AUTH=1, it also runs async mode with a tokens file (-tokens), every
# request sending a token (scripts/load.lua reads TODO_TOKEN): target, the
# token run >= 0.9x the async run without one, every answer 2xx.
#
# Usage: scripts/load.sh   (needs wrk: apt-get install wrk)
# Environment: DURATION (default 20s), THREADS (2), CONNECTIONS (64), AUTH;
# PROFILE_DIR, if set, gets a CPU profile of each todo run (MODE.cpu, taken
# from the -debug-addr pprof endpoint over the middle of the run, which
# costs the run a little) and the binary to read it with (todo):
#   go tool pprof -top PROFILE_DIR/todo PROFILE_DIR/async.cpu
# Everything listens on 127.0.0.1 only; every process started here is
# stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
PROFILE_DIR=${PROFILE_DIR:-}
AUTH=${AUTH:-}
if [ -n "$PROFILE_DIR" ] && ! command -v curl >/dev/null 2>&1; then
	echo "PROFILE_DIR needs curl" >&2
	exit 1
fi

if ! command -v wrk >/dev/null 2>&1; then
	echo "load.sh needs wrk, the HTTP load generator, which is not on the PATH." >&2
	echo "Install it, then run this again: on Debian or Ubuntu, sudo apt-get install wrk" >&2
	exit 1
fi

work=$(mktemp -d)
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	rm -rf "$work"
}
trap cleanup EXIT

echo "building..."
go build -trimpath -o "$work/todo" ./cmd/todo
go build -trimpath -o "$work/bare" ./scripts/bare
if [ -n "$PROFILE_DIR" ]; then
	mkdir -p "$PROFILE_DIR"
	cp "$work/todo" "$PROFILE_DIR/todo"
fi

# start NAME COMMAND...: starts a server logging to $work/NAME.log and sets
# pid and addr (which it logs as "addr=127.0.0.1:PORT").
start() {
	local name=$1
	shift
	"$@" >"$work/$name.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	addr=""
	local i
	for i in $(seq 100); do
		addr=$(grep -o -m1 ' addr=127\.0\.0\.1:[0-9]*' "$work/$name.log" | cut -d= -f2 || true)
		if [ -n "$addr" ]; then return 0; fi
		if ! kill -0 "$pid" 2>/dev/null; then break; fi
		sleep 0.1
	done
	echo "$name did not start:" >&2
	cat "$work/$name.log" >&2
	exit 1
}

# stop PID: SIGTERM, and the server must exit 0.
stop() {
	kill -TERM "$1"
	if ! wait "$1"; then
		echo "server $1 did not exit 0" >&2
		exit 1
	fi
}

declare -A rps p99 non2xx sockerr cpu
names=()

# cputicks PID: the CPU time process PID has used, in clock ticks.
cputicks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# bench NAME [DEBUG_ADDR]: runs wrk against $addr and records its figures
# under NAME; with PROFILE_DIR and a DEBUG_ADDR, it also takes a CPU profile
# of the middle half of the run.
bench() {
	local name=$1 debug=${2:-} out="$work/$1.wrk" prof=""
	echo
	echo "== $name (load average before: $(cut -d' ' -f1 /proc/loadavg)): wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s scripts/load.lua http://$addr"
	if [ -n "$PROFILE_DIR" ] && [ -n "$debug" ]; then
		# wrk takes durations like 20s, 2m or 1h; the profile covers the middle half.
		local secs
		secs=$(awk -v d="$DURATION" 'BEGIN { n = d + 0; u = substr(d, length(n "") + 1)
			if (u == "m") n *= 60; else if (u == "h") n *= 3600; print int(n) }')
		(sleep $((secs / 4)) && curl -sf -o "$PROFILE_DIR/$name.cpu" \
			"http://$debug/debug/pprof/profile?seconds=$((secs / 2 > 0 ? secs / 2 : 1))") &
		prof=$!
	fi
	local cpu0
	cpu0=$(cputicks "$pid")
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/load.lua "http://$addr" | tee "$out"
	# The server's CPU time (user and system) per request answered: on a
	# machine other jobs share, steadier than the requests per second.
	cpu[$name]=$(awk -v t="$(($(cputicks "$pid") - cpu0))" -v hz="$(getconf CLK_TCK)" \
		'/requests in/ { printf "%.1f", t / hz * 1e6 / $1 }' "$out")
	if [ -n "$prof" ]; then
		wait "$prof" || echo "no profile of $name" >&2
	fi
	names+=("$name")
	rps[$name]=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
	# The 99% line of the latency distribution, in milliseconds.
	p99[$name]=$(awk '$1 == "99%" {
		v = $2
		if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v) }
		else if (v ~ /m$/) { sub(/m$/, "", v); v *= 60000 }
		else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
		printf "%.2f", v
	}' "$out")
	non2xx[$name]=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
	non2xx[$name]=${non2xx[$name]:-0}
	sockerr[$name]=$(awk -F': ' '/Socket errors:/ { print $2 }' "$out")
	sockerr[$name]=${sockerr[$name]:-none}
}

echo "machine: $(nproc) CPUs, $(go version | cut -d' ' -f3-), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), load average $(cut -d' ' -f1-3 /proc/loadavg)"

for mode in fsync write async; do
	debug_flags=()
	if [ -n "$PROFILE_DIR" ]; then debug_flags=(-debug-addr 127.0.0.1:0); fi
	start "todo-$mode" "$work/todo" -addr 127.0.0.1:0 -data "$work/data-$mode" -durability "$mode" "${debug_flags[@]}"
	debug=""
	if [ -n "$PROFILE_DIR" ]; then
		debug=$(grep -o -m1 ' debug_addr=127\.0\.0\.1:[0-9]*' "$work/todo-$mode.log" | cut -d= -f2 || true)
	fi
	bench "$mode" "$debug"
	stop "$pid"
done
if [ -n "$AUTH" ]; then
	# A tokens file of 100 tokens; the requests send the last one's secret.
	for i in $(seq 100); do
		secret=$("$work/todo" token add "client$i" -rights write -lists 'list_*' -tokens "$work/tokens" 2>/dev/null)
	done
	start todo-async-token "$work/todo" -addr 127.0.0.1:0 -data "$work/data-async-token" -durability async -tokens "$work/tokens"
	TODO_TOKEN=$secret bench async-token
	unset secret
	stop "$pid"
fi
start bare "$work/bare" -addr 127.0.0.1:0
bench bare
stop "$pid"

echo
echo "== summary (wrk -t$THREADS -c$CONNECTIONS -d$DURATION, 80% GET /entries, 20% POST /add_entry)"
printf '| %-16s | %10s | %9s | %12s | %8s | %s\n' target req/s "p99 ms" "cpu us/req" non-2xx "socket errors"
for name in "${names[@]}"; do
	label=$name
	if [ "$name" != bare ]; then label="todo $name"; else label="bare net/http"; fi
	printf '| %-16s | %10s | %9s | %12s | %8s | %s\n' "$label" "${rps[$name]}" "${p99[$name]}" "${cpu[$name]}" "${non2xx[$name]}" "${sockerr[$name]}"
done
ratio=$(awk -v a="${rps[async]}" -v b="${rps[bare]}" 'BEGIN { printf "%.2f", a / b }')
echo
echo "async / bare req/s: $ratio (target >= 0.7); async p99: ${p99[async]} ms (target < 15)"
if awk -v r="$ratio" -v p="${p99[async]}" 'BEGIN { exit !(r >= 0.7 && p < 15) }'; then
	echo "target met"
else
	echo "target missed"
fi
if [ -n "$AUTH" ]; then
	auth_ratio=$(awk -v a="${rps[async-token]}" -v b="${rps[async]}" 'BEGIN { printf "%.2f", a / b }')
	echo "async with a token / async without: $auth_ratio (target >= 0.9, every answer 2xx: ${non2xx[async-token]} were not)"
	if awk -v r="$auth_ratio" -v n="${non2xx[async-token]}" 'BEGIN { exit !(r >= 0.9 && n == 0) }'; then
		echo "token target met"
	else
		echo "token target missed"
	fi
fi
