#!/bin/sh
# tests/e2e/run.sh [BUILD] -- the end-to-end tests with the real pi (`make e2e`).
#
# setup.sh installs @mariozechner/pi-coding-agent (the version pinned in
# package.json and package-lock.json) into tests/e2e/node_modules when it is
# missing; then every test here runs against a daemon from BUILD (default:
# build): test_pi_e2e.py spawns the real pi unconfined, test_pi_confined.py
# and test_pi_tasks.py through an agent profile in bubblewrap, all against a
# fake OpenAI-compatible server on 127.0.0.1.  Needs node and npm; the
# install is the only step that uses the network.  `make test` runs the same
# tests as its e2e suite (scripts/run-tests.py).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build}
case $build in
/*) ;;
*) build=$root/$build ;;
esac

if [ ! -x "$build/src/daemon/colibri-daemon" ]; then
	echo "run.sh: $build/src/daemon/colibri-daemon is not built (make build)" >&2
	exit 2
fi
pi=$("$here/setup.sh")

COLIBRI_BUILD=$build
COLIBRI_E2E_PI=$pi
export COLIBRI_BUILD COLIBRI_E2E_PI
cd "$here"
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider .
