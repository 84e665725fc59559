#!/bin/sh
# make load: the long forms of the hardening tests, against the build dir $1.
#  1. the bounded load test: 8 clients x 50,000 mixed requests, 2 subscribers;
#  2. the daemon killed with SIGKILL at random points of a write load, 20 rounds.
set -eu
cd "$(dirname "$0")/../.."
build=$(cd "${1:-build}" && pwd)
/usr/bin/python3 tests/load/load.py --build "$build" --clients 8 --requests 50000 --subscribers 2
COLIBRI_BUILD="$build" COLIBRI_FAULT_ROUNDS=20 /usr/bin/python3 -m pytest -q -p no:cacheprovider \
	tests/integration/test_faults.py -k sigkill
