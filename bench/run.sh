#!/bin/sh
# bench/run.sh [BUILD] -- `make bench`: benchmarks, not tests.  Each figure
# is printed beside a reference measured in the same run, as a ratio.
#
# Builds nothing of Colibri: it takes the build directory (default build)
# and compiles only its own small reference programs and load client into a
# temporary directory with the system cc.  Runs bench/foundation.py (the
# daemon core: read, task-create, task-claim, idle RSS), then the other
# drivers in bench/ that are present.  BENCH_ONLY=foundation (or another
# driver's name) runs just that one; bench/scale.py (`make bench-scale`, a
# board of a million tasks, minutes) runs only with BENCH_ONLY=scale.  Exit status 1 when a driver reports a
# missed target (or fails); the summary line names them.  See
# docs/benchmarks.md.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
[ -x "$build/src/daemon/colibri-daemon" ] || { echo "run.sh: no colibri-daemon in $build (make build first)" >&2; exit 1; }

bin=$(mktemp -d "${TMPDIR:-/tmp}/colibri-bench-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT INT TERM
cc=${CC:-cc}
$cc -O2 -Wall -Wextra -Werror -Wshadow -Wformat=2 -o "$bin/lineclient" "$here/lineclient.c" -pthread
$cc -O2 -Wall -Wextra -Werror -Wshadow -Wformat=2 -o "$bin/echo-server" "$here/echo-server.c"
$cc -O2 -Wall -Wextra -Werror -Wshadow -Wformat=2 -o "$bin/sqlite-raw" "$here/sqlite-raw.c" -lsqlite3
$cc -O2 -Wall -Wextra -Werror -Wshadow -Wformat=2 -o "$bin/scaleclient" "$here/scaleclient.c" -pthread
$cc -O2 -Wall -Wextra -Werror -Wshadow -Wformat=2 -o "$bin/sqlite-scale" "$here/sqlite-scale.c" -lsqlite3

only=${BENCH_ONLY:-}
missed=""
run() {
	name=$1
	shift
	[ -z "$only" ] || [ "$only" = "$name" ] || return 0
	[ -f "$here/$name.py" ] || return 0
	echo
	/usr/bin/python3 "$here/$name.py" "$@" || missed="$missed $name"
}
start=$(date +%s)
run foundation "$build" "$bin"
for other in ingest spawn agents-rss tui_bench; do
	run "$other" "$build"
done
# The board at a million tasks takes minutes: only when asked for (make bench-scale).
[ "$only" != scale ] || run scale "$build" "$bin"
echo
echo "bench: done in $(($(date +%s) - start)) s"
if [ -n "$missed" ]; then
	echo "bench: a target missed (or a failure) in:$missed"
	exit 1
fi
