#!/bin/sh
# make load: the long forms of the hardening tests, against the build dir $1.
#  1. the bounded load test: 8 clients x 50,000 mixed requests, 2 subscribers;
#  2. the daemon killed with SIGKILL at random points of a write load, 20 rounds;
#  3. bounded resources: 20 pipelining non-readers and 100 non-reading since-0
#     subscribers while a worker runs and a reader catches up on 200,000 events
#     (prints p99 latency, peak RSS, the catch-up; fails only on a gap or an error).
set -eu
cd "$(dirname "$0")/../.."
build=$(cd "${1:-build}" && pwd)
/usr/bin/python3 tests/load/load.py --build "$build" --clients 8 --requests 50000 --subscribers 2
COLIBRI_BUILD="$build" COLIBRI_FAULT_ROUNDS=20 /usr/bin/python3 -m pytest -q -p no:cacheprovider \
	tests/integration/test_faults.py -k sigkill
/usr/bin/python3 tests/load/bounded.py --build "$build"
