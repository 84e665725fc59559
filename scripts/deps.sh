#!/bin/sh
# deps.sh -- install the Debian packages Colibri needs to build and test.
#
# Idempotent and quiet when everything is present: it asks dpkg which
# packages are missing and installs only those (apt-get update first, once).
# Run as root (CI and the development machines are); as another user it
# uses sudo when available.  Usage: scripts/deps.sh [build|test|all]
set -eu

build_pkgs="gcc make meson ninja-build pkg-config libuv1-dev libjansson-dev libsqlite3-dev
libncurses-dev libcurl4-openssl-dev libcmocka-dev libpq-dev"
run_pkgs="bubblewrap"
test_pkgs="clang clang-format libclang-rt-14-dev python3 python3-pytest python3-jsonschema mandoc shellcheck tmux sqlite3 jq
redis-server procps iproute2 postgresql"

case "${1:-all}" in
build) want="$build_pkgs $run_pkgs" ;;
test | all) want="$build_pkgs $run_pkgs $test_pkgs" ;;
*) echo "usage: $0 [build|test|all]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
# Node.js and npm for the tests that use real third-party peers (MCP SDK, pi);
# a node already on PATH (any packaging) is fine.  pi (tests/e2e, installed
# by tests/e2e/setup.sh) needs node >= 20.6: Debian 12's own nodejs is 18, so
# there use NodeSource's or another node 20+, and setup.sh says so otherwise.
if [ "${1:-all}" != build ] && ! command -v npm >/dev/null 2>&1; then
	missing="$missing nodejs npm"
fi

[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
		exit 1
	fi
	SUDO="sudo"
fi
echo "deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
