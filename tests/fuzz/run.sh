#!/bin/sh
# run.sh -- build and run the libFuzzer targets for a bounded time.
#
#   tests/fuzz/run.sh [--smoke] [--seconds N] [--build DIR]
#
# Full mode (make fuzz) runs each target for N seconds (default 60) from
# its seeds (tests/fuzz/seeds/TARGET, plus the real pi captures for the
# glasspane) into a scratch corpus; smoke mode (make test) runs each for a
# few thousand inputs.  A crash leaves its input in the scratch directory and
# makes the script exit 1.  The last lines summarise executions per target.
set -eu
cd "$(dirname "$0")/../.."
mode=full
seconds=60
build="build-fuzz"
while [ $# -gt 0 ]; do
	case "$1" in
	--smoke) mode=smoke ;;
	--seconds) seconds="$2"; shift ;;
	--build) build="$2"; shift ;;
	*) echo "usage: $0 [--smoke] [--seconds N] [--build DIR]" >&2; exit 2 ;;
	esac
	shift
done
if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false >/dev/null
fi
ninja -C "$build" >/dev/null
# Undefined behaviour is a crash too, not a line in the log.
UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export UBSAN_OPTIONS
work=$(mktemp -d /tmp/colibri-fuzz.XXXXXX)
fixtures=../shared/fixtures/pi
failed=0
summary=""
for exe in "$build"/tests/fuzz/fuzz_*; do
	if [ ! -f "$exe" ] || [ ! -x "$exe" ]; then continue; fi
	name=$(basename "$exe")
	target=${name#fuzz_}
	corpus="$work/$target"
	mkdir -p "$corpus"
	if [ -d "tests/fuzz/seeds/$target" ]; then
		cp tests/fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
	fi
	if [ "$target" = glasspane ] && [ -d "$fixtures" ]; then
		for f in "$fixtures"/*.jsonl; do
			{ printf '\000'; cat "$f"; } >"$corpus/pi-$(basename "$f")"
		done
	fi
	if [ "$mode" = smoke ]; then
		limits="-runs=3000 -max_total_time=20"
	else
		limits="-max_total_time=$seconds"
	fi
	# The request path keeps state across inputs (a store per 32 inputs),
	# so a leak check after every input costs most of the time: leaks are
	# found at exit instead (LeakSanitizer then fails the run).  Its inputs
	# are request lines, so shorter inputs go further.
	case "$target" in
	request) limits="$limits -detect_leaks=0 -max_len=16384" ;;
	mcp) limits="$limits -max_len=16384" ;;
	*) limits="$limits -max_len=65536" ;;
	esac
	# shellcheck disable=SC2086
	if "$exe" $limits -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/$target-" "$corpus" >"$work/$target.log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log")
		summary="$summary$target: ${runs:-?} executions, no crash
"
	else
		failed=1
		summary="$summary$target: CRASH (input and log in $work)
"
		tail -n 30 "$work/$target.log" >&2
	fi
done
printf '%s' "$summary"
if [ "$failed" = 0 ]; then
	rm -rf "$work"
fi
exit "$failed"
