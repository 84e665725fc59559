#!/bin/sh
# start.sh -- start a throwaway PostgreSQL server for the tests and benches.
#
# Debian's postgresql package: initdb and pg_ctl from /usr/lib/postgresql/*/bin
# on a fresh temporary directory.  The server listens on a Unix socket in
# that directory and on 127.0.0.1 at a random free port; trust
# authentication, superuser "postgres".  PostgreSQL refuses to run as root,
# so as root the server runs as the `postgres` system user (runuser), or as
# a `colibri-pg` user created for it when there is none.
#
# Prints one line: the URL of the "postgres" database, for example
#   postgresql:///postgres?host=/tmp/colibri-pg.Ab12Cd&port=45123&user=postgres
# The directory is the URL's host; tests/pg/stop.sh DIR stops the server and
# removes it.  Options:
#   --durable   keep fsync and synchronous_commit on (benchmarks); the
#               default turns them off, which only matters on a power loss.
#   --dir DIR   use DIR (created, must not exist) instead of a mktemp one.
set -eu

durable=0
dir=""
while [ $# -gt 0 ]; do
	case "$1" in
	--durable) durable=1 ;;
	--dir) dir="$2"; shift ;;
	*) echo "usage: $0 [--durable] [--dir DIR]" >&2; exit 2 ;;
	esac
	shift
done

bindir=""
for d in /usr/lib/postgresql/*/bin; do
	[ -x "$d/initdb" ] && bindir="$d"
done
if [ -z "$bindir" ]; then
	echo "start.sh: no PostgreSQL server (install Debian's postgresql)" >&2
	exit 1
fi

if [ -z "$dir" ]; then
	dir=$(mktemp -d /tmp/colibri-pg.XXXXXX)
else
	mkdir "$dir"
fi
chmod 0755 "$dir"

# Who runs the server: ourselves, or an unprivileged user when we are root.
as=""
if [ "$(id -u)" = 0 ]; then
	user=postgres
	if ! id "$user" >/dev/null 2>&1; then
		user=colibri-pg
		id "$user" >/dev/null 2>&1 ||
			useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
	fi
	chown "$user" "$dir"
	as="runuser -u $user --"
fi

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

$as "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
	cat "$dir/initdb.log" >&2
	exit 1
}
sync_opts="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
[ "$durable" = 1 ] && sync_opts=""
tries=0
while :; do
	port=$(free_port)
	# shellcheck disable=SC2086
	if $as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
		-o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c max_connections=200 $sync_opts" \
		start >/dev/null 2>&1; then
		break
	fi
	tries=$((tries + 1))
	if [ "$tries" -ge 5 ]; then
		echo "start.sh: the server did not start:" >&2
		tail -20 "$dir/server.log" >&2
		exit 1
	fi
done
echo "postgresql:///postgres?host=$dir&port=$port&user=postgres"
