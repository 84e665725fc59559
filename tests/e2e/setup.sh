#!/bin/sh
# tests/e2e/setup.sh -- install the real pi for the end-to-end tests.
#
# Installs @mariozechner/pi-coding-agent, the version pinned in package.json
# and package-lock.json, into tests/e2e/node_modules with `npm ci` (the
# ordinary npm install of a locked tree) when it is missing or another
# version, and prints the path of its `pi` (node_modules/.bin/pi, npm's
# symlink) on stdout.  Used by run.sh (`make e2e`) and by
# scripts/run-tests.py's e2e suite (`make test`).  The install is the only
# step that uses the network; a present install costs nothing.  Fails
# (exit non-zero, the reason on stderr) when node or npm is missing
# (scripts/deps.sh installs them), when node is older than the package
# needs, or when npm cannot install: the tests must not pass without pi.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
pkg=$here/node_modules/@mariozechner/pi-coding-agent
want=$(sed -n 's/.*"@mariozechner\/pi-coding-agent": *"\([^"]*\)".*/\1/p' "$here/package.json")

for tool in node npm; do
	if ! command -v $tool >/dev/null 2>&1; then
		echo "setup.sh: $tool is needed for the end-to-end tests (scripts/deps.sh installs it)" >&2
		exit 2
	fi
done

have=$(node -p 'require(process.argv[1]).version' "$pkg/package.json" 2>/dev/null || true)
if [ ! -x "$here/node_modules/.bin/pi" ] || [ "$have" != "$want" ]; then
	echo "setup.sh: installing @mariozechner/pi-coding-agent $want into $here/node_modules" >&2
	(cd "$here" && npm ci --no-audit --no-fund --loglevel=error) >&2
	have=$(node -p 'require(process.argv[1]).version' "$pkg/package.json" 2>/dev/null || true)
	if [ ! -x "$here/node_modules/.bin/pi" ] || [ "$have" != "$want" ]; then
		echo "setup.sh: npm ci left no pi $want in $here/node_modules" >&2
		exit 1
	fi
fi

# pi states the node it needs ("engines"); an older node fails in pi's own
# start-up with a message far from the cause, so say it here.
if ! node -e '
const need = require(process.argv[1]).engines.node.replace(/^>=\s*/, "").split(".").map(Number);
const have = process.versions.node.split(".").map(Number);
for (let i = 0; i < 3; i++) {
	if ((have[i] || 0) > (need[i] || 0)) process.exit(0);
	if ((have[i] || 0) < (need[i] || 0)) process.exit(1);
}' "$pkg/package.json"; then
	echo "setup.sh: node $(node --version) is older than pi $want needs ($(node -p \
		'require(process.argv[1]).engines.node' "$pkg/package.json"))" >&2
	exit 2
fi

echo "$here/node_modules/.bin/pi"
