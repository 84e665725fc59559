#!/bin/sh
# tests/e2e/run.sh [BUILD] -- the end-to-end test with the real pi (`make e2e`).
#
# Installs @mariozechner/pi-coding-agent (the version pinned in package.json
# and package-lock.json) into tests/e2e/node_modules when it is missing, then
# runs test_pi_e2e.py: a daemon from BUILD (default: build) spawns the real pi
# against a fake OpenAI-compatible server on 127.0.0.1.  Needs node and npm;
# the install is the only step that uses the network.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build}
case $build in
/*) ;;
*) build=$root/$build ;;
esac
want=$(sed -n 's/.*"@mariozechner\/pi-coding-agent": *"\([^"]*\)".*/\1/p' "$here/package.json")

if [ ! -x "$build/src/daemon/colibri-daemon" ]; then
	echo "run.sh: $build/src/daemon/colibri-daemon is not built (make build)" >&2
	exit 2
fi
for tool in node npm; do
	if ! command -v $tool >/dev/null 2>&1; then
		echo "run.sh: $tool is needed for the end-to-end test" >&2
		exit 2
	fi
done

have=$(node -p 'require(process.argv[1]).version' \
	"$here/node_modules/@mariozechner/pi-coding-agent/package.json" 2>/dev/null || true)
if [ ! -x "$here/node_modules/.bin/pi" ] || [ "$have" != "$want" ]; then
	echo "run.sh: installing @mariozechner/pi-coding-agent $want into $here/node_modules"
	if [ -f "$here/package-lock.json" ]; then
		(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
	else
		(cd "$here" && npm install --no-audit --no-fund --loglevel=error)
	fi
fi

COLIBRI_BUILD=$build
COLIBRI_E2E_PI=$here/node_modules/.bin/pi
export COLIBRI_BUILD COLIBRI_E2E_PI
cd "$here"
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider test_pi_e2e.py
