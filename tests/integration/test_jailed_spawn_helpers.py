"""Helpers shared by the jailed-spawn suites (test_jailed_spawn*.py).

No tests live here.  `jail_env` is a daemon environment with the build's
tools first on PATH and no confinement variables inherited from the caller;
`stage_dir` is where the daemon stages a confined spawn's payload;
`copy_standins` puts the stand-in jexec, jail, mdo and sudo (standins/) into
a directory of their own, where they log to calls.jsonl.  `give_to_agent`
makes a jail root usable by the unprivileged user a root daemon runs
bubblewrap as (docs/security.md: the root must be writable by it).
"""
import json
import os
import pwd
import shutil
import subprocess

from test_supervision_helpers import sup_env

HERE = os.path.dirname(os.path.abspath(__file__))
STANDINS = os.path.join(HERE, "standins")
STAGE_REL = "home/clawdie/.cache/colibri/stage"
CONFINE_VARS = ("COLIBRI_CONFINE", "COLIBRI_JAIL_PRIV_MODE", "COLIBRI_JAIL_STAGE_DIR",
                "COLIBRI_JAIL_ROOT_BASE")


def jail_env(extra=None):
    env = sup_env()
    for k in CONFINE_VARS:
        env.pop(k, None)
    env.update(extra or {})
    return env


def stage_dir(root, aid):
    return os.path.join(root, STAGE_REL, aid)


def bwrap_works():
    try:
        return subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def copy_standins(bindir):
    os.makedirs(bindir, exist_ok=True)
    for name in ("jexec", "jail", "mdo", "sudo", "standin_jail.py"):
        shutil.copy(os.path.join(STANDINS, name), os.path.join(bindir, name))
        os.chmod(os.path.join(bindir, name), 0o755)
    return bindir


def standin_calls(bindir):
    """The recorded calls that ran a command (not probes such as `sudo --version`)."""
    p = os.path.join(bindir, "calls.jsonl")
    if not os.path.exists(p):
        return []
    with open(p) as f:
        calls = [json.loads(line) for line in f]
    return [c for c in calls if c["cmd"]]


AGENT_USER = "nobody"


def agent_uid():
    """The uid a root daemon runs bubblewrap agents as (the default --agent-user)."""
    return pwd.getpwnam(AGENT_USER).pw_uid


def give_to_agent(root):
    """Under a root daemon the sandbox runs as nobody: its root must be reachable
    (every ancestor searchable) and writable by that user."""
    if os.geteuid() != 0:
        return
    uid, gid = pwd.getpwnam(AGENT_USER).pw_uid, pwd.getpwnam(AGENT_USER).pw_gid
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [dirpath] + [os.path.join(dirpath, f) for f in dirnames + filenames]:
            os.lchown(n, uid, gid)
    p = os.path.dirname(os.path.abspath(root))
    while p != "/":
        st = os.stat(p)
        if st.st_mode & 0o001 == 0:
            os.chmod(p, (st.st_mode & 0o7777) | 0o011)
        p = os.path.dirname(p)
