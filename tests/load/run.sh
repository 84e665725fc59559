#!/bin/sh
# make load: the full bounded load test (8 clients x 50,000 mixed requests,
# 2 subscribers) against a fresh daemon from the build dir $1.
set -eu
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 tests/load/load.py --build "${1:-build}" --clients 8 --requests 50000 --subscribers 2
