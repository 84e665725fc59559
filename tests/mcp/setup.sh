#!/bin/sh
# setup.sh -- install the MCP test peers (package.json) into tests/mcp/node_modules.
#
# Called by the colibri-mcp integration tests before they start.  It fails
# (exit non-zero) when npm or the registry is unreachable: those tests need
# the real SDK client and the real reference server and must not pass without them.
# A complete install is marked by node_modules/.colibri-installed, holding
# package.json's checksum, so later runs cost nothing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
command -v npm >/dev/null 2>&1 || { echo "setup.sh: npm not found" >&2; exit 1; }
sum=$(cksum package.json | cut -d' ' -f1)
if [ -f node_modules/.colibri-installed ] && [ "$(cat node_modules/.colibri-installed)" = "$sum" ]; then
	exit 0
fi
npm install --no-audit --no-fund --no-package-lock --loglevel=error >&2
for m in @modelcontextprotocol/sdk @modelcontextprotocol/server-everything ajv; do
	[ -f "node_modules/$m/package.json" ] || { echo "setup.sh: $m missing after npm install" >&2; exit 1; }
done
echo "$sum" > node_modules/.colibri-installed
