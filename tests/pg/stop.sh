#!/bin/sh
# stop.sh -- stop a server started by tests/pg/start.sh and remove its directory.
# Usage: tests/pg/stop.sh DIR|URL   (the URL start.sh printed works too)
set -eu

[ $# -eq 1 ] || { echo "usage: $0 DIR|URL" >&2; exit 2; }
dir="$1"
case "$dir" in
postgres*://*) dir=$(printf '%s\n' "$dir" | sed -n 's/.*[?&]host=\([^&]*\).*/\1/p') ;;
esac
case "$dir" in
/tmp/* | /var/tmp/*) ;;
*) echo "stop.sh: $dir is not a temporary directory" >&2; exit 2 ;;
esac
[ -f "$dir/data/PG_VERSION" ] || { echo "stop.sh: no server in $dir" >&2; exit 1; }

bindir=""
for d in /usr/lib/postgresql/*/bin; do
	[ -x "$d/pg_ctl" ] && bindir="$d"
done
as=""
if [ "$(id -u)" = 0 ]; then
	as="runuser -u $(stat -c %U "$dir/data") --"
fi
$as "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
	$as "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
rm -rf "$dir"
