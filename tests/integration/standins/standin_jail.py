"""Shared code of the stand-in jexec, jail, mdo and sudo (see jexec's header).

record() appends one JSON line to calls.jsonl beside the scripts:
  {"prog", "argv", "env", "uid", "root", "cmd", "stage"}
where cmd is the command as it will run (after translation) and stage, when
the command is `/bin/sh .../launch.sh`, maps every file of the stage
directory to {"mode": "0600", "content": "..."} -- the payload as the jail
sees it while the agent runs.
"""
import json
import os
import stat
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
IN_JAIL_HOME = "/home/clawdie/"


def die(prog, msg):
    sys.stderr.write("%s: %s\n" % (prog, msg))
    sys.exit(1)


def received_env():
    """The environment as exec'd (Python may add LC_CTYPE to os.environ)."""
    with open("/proc/self/environ", "rb") as f:
        items = [kv.split(b"=", 1) for kv in f.read().split(b"\0") if kv]
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in items}


def translate(root, cmd):
    """In-jail paths under /home/clawdie/ as host paths under root."""
    return [root.rstrip("/") + a if a.startswith(IN_JAIL_HOME) else a for a in cmd]


def snapshot(cmd):
    """The stage directory's files when cmd is /bin/sh STAGE/launch.sh (host paths)."""
    if not cmd or len(cmd) < 2 or not cmd[-1].endswith("/launch.sh"):
        return None
    d = os.path.dirname(cmd[-1])
    out = {".": {"mode": "%04o" % stat.S_IMODE(os.lstat(d).st_mode)}} if os.path.isdir(d) else {}
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        p = os.path.join(d, name)
        st = os.lstat(p)
        with open(p, "rb") as f:
            content = f.read().decode(errors="replace")
        out[name] = {"mode": "%04o" % stat.S_IMODE(st.st_mode), "content": content}
    return out


def record(prog, argv, root, cmd):
    entry = {"prog": prog, "argv": argv, "env": received_env(), "uid": os.getuid(),
             "root": root, "cmd": cmd, "stage": snapshot(cmd) if root else None}
    with open(os.path.join(HERE, "calls.jsonl"), "a") as f:
        f.write(json.dumps(entry) + "\n")


def exec_beside(cmd):
    """exec cmd, finding a bare name beside this script first, then on PATH."""
    if "/" not in cmd[0] and os.access(os.path.join(HERE, cmd[0]), os.X_OK):
        cmd = [os.path.join(HERE, cmd[0])] + cmd[1:]
        os.execv(cmd[0], cmd)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        die(os.path.basename(sys.argv[0]), "%s: %s" % (cmd[0], e.strerror))
