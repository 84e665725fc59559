#!/usr/bin/python3
"""run-tests.py -- run every Colibri test suite and sum the results.

Suites:
  format       clang-format --dry-run -Werror over the tracked C sources
               (src/, tests/, bench/): one test, failed when any file differs
               from .clang-format, each such file printed by name.
  unit         cmocka executables from the sanitizer build (ASan + UBSan),
               run by `meson test`; counts come from cmocka's own summary.
  integration  pytest over tests/integration against the normal build.
  integration-pg  a representative part of tests/integration again, every
               daemon on PostgreSQL (a throwaway server from tests/pg/start.sh),
               against the same normal build: its daemon loads the PostgreSQL
               module (src/store/store-postgres.so) for --store postgresql://.
  e2e          pytest over tests/e2e: the real pi (npm, installed by
               tests/e2e/setup.sh with `npm ci` when missing) against a fake
               provider on 127.0.0.1, unconfined and confined in bubblewrap
               through an agent profile (about 25 s, plus 20 s for the first npm ci).
The last line printed is "N passed, N failed" over all suites, and the exit
status is non-zero when anything failed (or a suite could not run).

Usage: scripts/run-tests.py [--build DIR] [--asan-build DIR] [--only SUITE] [pytest args...]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def run_format():
    """One test: every tracked C file matches .clang-format; return (passed, failed)."""
    print("== format: clang-format --dry-run -Werror", flush=True)
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "src/*.c", "src/*.h", "tests/*.c",
                            "bench/*.c"], capture_output=True, text=True, check=True)
    differ = []
    for f in files.stdout.split():
        try:
            p = subprocess.run(["clang-format", "--dry-run", "-Werror", f], cwd=ROOT,
                               capture_output=True, text=True)
        except FileNotFoundError:
            print("format: clang-format not found (scripts/deps.sh installs it)", flush=True)
            return 0, 1
        if p.returncode != 0:
            differ.append(f)
    for f in differ:
        print("format: %s differs from .clang-format (make format)" % f, flush=True)
    print("format: %d files, %d differ" % (len(files.stdout.split()), len(differ)), flush=True)
    return (0, 1) if differ else (1, 0)


def run_unit(asan_build):
    """Run meson test in the sanitizer build; return (passed, failed)."""
    print("== unit tests (cmocka, ASan+UBSan): meson test -C " + asan_build, flush=True)
    rc = subprocess.call(["meson", "test", "-C", asan_build, "--print-errorlogs",
                          "--num-processes", "2"])
    passed = failed = 0
    log = os.path.join(asan_build, "meson-logs", "testlog.json")
    try:
        with open(log) as f:
            entries = [json.loads(line) for line in f if line.strip()]
    except OSError:
        print("run-tests: no meson test log", file=sys.stderr)
        return 0, 1
    for e in entries:
        out = (e.get("stdout", "") or "") + (e.get("stderr", "") or "")
        p = sum(int(n) for n in re.findall(r"\[  PASSED  \] (\d+) test", out))
        f = sum(int(n) for n in re.findall(r"\[  FAILED  \] (\d+) test", out))
        ok = e.get("result") == "OK"
        if p == 0 and f == 0:
            # Not a cmocka executable (or it crashed before its summary).
            p, f = (1, 0) if ok else (0, 1)
        elif not ok and f == 0:
            f = 1  # exited badly after its tests (a sanitizer report, a leak)
        passed += p
        failed += f
    if rc != 0 and failed == 0:
        failed = 1
    print("unit: %d passed, %d failed" % (passed, failed), flush=True)
    return passed, failed


def run_pytest(build, paths, extra, name, more_env=None):
    print("== %s tests (pytest)" % name, flush=True)
    xml = os.path.join(build, "pytest-%s.xml" % name)
    env = dict(os.environ, COLIBRI_BUILD=build)
    env.update(more_env or {})
    env["PATH"] = os.path.join(build, "src", "tools") + os.pathsep + env.get("PATH", "")
    cmd = ["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "--junitxml", xml] + paths + extra
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError):
        print("run-tests: pytest left no report", file=sys.stderr)
        return 0, 1
    suites = [root] if root.tag == "testsuite" else list(root)
    total = sum(int(s.get("tests", 0)) for s in suites)
    bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    passed = total - bad - skipped
    if rc not in (0, 5) and bad == 0:
        bad = 1
    if total == 0:
        print("run-tests: pytest ran no test", file=sys.stderr)
        bad = max(bad, 1)
    print("%s: %d passed, %d failed, %d skipped" % (name, passed, bad, skipped), flush=True)
    return passed, bad


# The part of the integration suite that runs again on PostgreSQL: the board
# and events, the CLI, faults, supervision, the vault, the cache commands and
# the multi-daemon tests, bad input, every CLI verb's schema, MCP through the SDK and
# access control (about 2 min; the whole suite would take 3 min more).
PG_SUITE = ["tests/integration/test_foundation.py", "tests/integration/test_cli.py",
            "tests/integration/test_faults.py", "tests/integration/test_supervision.py",
            "tests/integration/test_supervision_kill.py",
            "tests/integration/test_supervision_limits.py",
            "tests/integration/test_supervision_restart.py", "tests/integration/test_vault.py",
            "tests/integration/test_cache_daemon.py", "tests/integration/test_crash.py",
            "tests/integration/test_postgres.py", "tests/integration/test_badinput.py",
            "tests/integration/test_schemas_cli.py", "tests/integration/test_mcp_sdk.py",
            "tests/integration/test_access.py", "tests/integration/test_store_module.py",
            "tests/integration/test_task_epoch.py", "tests/integration/test_retention.py"]


def run_integration_pg(build, extra):
    """PG_SUITE with COLIBRI_STORE set to a PostgreSQL server started for it."""
    print("== integration tests on PostgreSQL: tests/pg/start.sh", flush=True)
    module = os.path.join(build, "src", "store", "store-postgres.so")
    if not os.path.exists(module):
        print("run-tests: %s has no PostgreSQL module (%s): install libpq-dev "
              "(scripts/deps.sh), then meson configure %s -Dpostgres=enabled"
              % (build, module, build), file=sys.stderr)
        return 0, 1
    p = subprocess.run([os.path.join(ROOT, "tests", "pg", "start.sh")], capture_output=True,
                       text=True)
    if p.returncode != 0:
        print("run-tests: PostgreSQL did not start: " + p.stderr.strip(), file=sys.stderr)
        return 0, 1
    url = p.stdout.strip()
    old = os.environ.get("COLIBRI_STORE")
    os.environ["COLIBRI_STORE"] = url
    try:
        return run_pytest(build, PG_SUITE, extra, "integration-pg")
    finally:
        if old is None:
            del os.environ["COLIBRI_STORE"]
        else:
            os.environ["COLIBRI_STORE"] = old
        subprocess.call([os.path.join(ROOT, "tests", "pg", "stop.sh"), url])


def run_e2e(build, extra):
    """tests/e2e with the real pi, which tests/e2e/setup.sh installs (npm ci) when missing."""
    print("== e2e tests (the real pi): tests/e2e/setup.sh", flush=True)
    p = subprocess.run([os.path.join(ROOT, "tests", "e2e", "setup.sh")], capture_output=True,
                       text=True)
    sys.stderr.write(p.stderr[-4000:])
    if p.returncode != 0:
        print("run-tests: tests/e2e/setup.sh could not install pi", file=sys.stderr)
        return 0, 1
    return run_pytest(build, ["tests/e2e"], extra, "e2e", {"COLIBRI_E2E_PI": p.stdout.strip()})


def run_fuzz_smoke(fuzz_build):
    """Each libFuzzer target over its seeds for a few thousand inputs."""
    print("== fuzz smoke (libFuzzer, ASan+UBSan): tests/fuzz/run.sh --smoke", flush=True)
    p = subprocess.run([os.path.join(ROOT, "tests", "fuzz", "run.sh"), "--smoke", "--build",
                        fuzz_build], cwd=ROOT, capture_output=True, text=True)
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr[-4000:])
    passed = len(re.findall(r"^\w+: \S+ executions, no crash$", p.stdout, re.M))
    failed = len(re.findall(r"^\w+: CRASH", p.stdout, re.M))
    if p.returncode != 0 and failed == 0:
        failed = 1
    if passed + failed == 0:
        failed = 1
    print("fuzz: %d passed, %d failed" % (passed, failed), flush=True)
    return passed, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--asan-build", default=os.path.join(ROOT, "build-asan"))
    ap.add_argument("--fuzz-build", default=os.path.join(ROOT, "build-fuzz"))
    ap.add_argument("--only", choices=["format", "unit", "integration", "integration-pg", "e2e",
                                           "fuzz"])
    args, extra = ap.parse_known_args()
    build = os.path.abspath(args.build)
    passed = failed = 0
    if args.only in (None, "format"):
        p, f = run_format()
        passed += p
        failed += f
    if args.only in (None, "unit"):
        p, f = run_unit(os.path.abspath(args.asan_build))
        passed += p
        failed += f
    if args.only in (None, "integration"):
        p, f = run_pytest(build, ["tests/integration"], extra, "integration")
        passed += p
        failed += f
    if args.only in (None, "integration-pg"):
        p, f = run_integration_pg(build, extra)
        passed += p
        failed += f
    if args.only in (None, "e2e"):
        p, f = run_e2e(build, extra)
        passed += p
        failed += f
    if args.only in (None, "fuzz"):
        p, f = run_fuzz_smoke(os.path.abspath(args.fuzz_build))
        passed += p
        failed += f
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
