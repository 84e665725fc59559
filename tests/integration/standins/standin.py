#!/usr/bin/python3
"""Stand-in for FreeBSD's jexec(8) and jail(8) on Linux, for the confine tests.

The tests copy this file into a per-test bin directory as `jexec` and `jail`
and point colibri-jail-spawn (COLIBRI_JAIL_SPAWN_TEST_BINDIR) or the PATH at
it.  Every call appends one JSON line {prog, argv, env, uid, euid} to
record.jsonl beside the copy: the helper clears the environment, so the
location cannot come from there.

If jails.json exists beside the copy ({"NAME": "/host/root", ...}) the
stand-in also runs the command "inside the jail", emulated with bubblewrap:
the jail root is bound at /, with /usr and friends read-only on top.  Like
the real tools, jexec exits with the command's status (or 1 for its own
failures: unknown jail) and `jail -c ... command=` exits 0 whatever the
command's status was -- which is why Colibri records the status itself.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROG = os.path.basename(sys.argv[0])


def received_env():
    """The environment as exec'd (Python itself may add LC_CTYPE to os.environ)."""
    with open("/proc/self/environ", "rb") as f:
        items = [kv.split(b"=", 1) for kv in f.read().split(b"\0") if kv]
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in items}


def record():
    entry = {"prog": PROG, "argv": sys.argv[1:], "env": received_env(),
             "uid": os.getuid(), "euid": os.geteuid()}
    with open(os.path.join(HERE, "record.jsonl"), "a") as f:
        f.write(json.dumps(entry) + "\n")


def jails():
    try:
        with open(os.path.join(HERE, "jails.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def run_in(root, cmd):
    bwrap = ["/usr/bin/bwrap", "--unshare-pid", "--die-with-parent", "--bind", root, "/",
             "--ro-bind", "/usr", "/usr"]
    for d in ("bin", "sbin", "lib", "lib64"):
        p = "/" + d
        if os.path.islink(p):
            bwrap += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            bwrap += ["--ro-bind", p, p]
    bwrap += ["--proc", "/proc", "--dev", "/dev", "--chdir", "/", "--"]
    return subprocess.call(bwrap + cmd)


def jexec(args, table):
    if args[:1] == ["-U"]:
        args = args[2:]
    if len(args) < 2 or args[0] not in table:
        sys.stderr.write("jexec: jail \"%s\" not found\n" % (args[0] if args else ""))
        return 1
    return run_in(table[args[0]], args[1:])


def jail_create(args, table):
    if args[:1] != ["-c"]:
        sys.stderr.write("jail: only -c is emulated\n")
        return 1
    params, cmd = {}, None
    for i, a in enumerate(args[1:], 1):
        k, _, v = a.partition("=")
        if k == "command":
            cmd = [v] + args[i + 1:]
            break
        params[k] = v
    if cmd is None or "path" not in params:
        sys.stderr.write("jail: missing path or command\n")
        return 1
    run_in(params["path"], cmd)
    return 0


def main():
    record()
    table = jails()
    if table is None:
        return 0
    if PROG == "jexec":
        return jexec(sys.argv[1:], table)
    return jail_create(sys.argv[1:], table)


if __name__ == "__main__":
    sys.exit(main())
