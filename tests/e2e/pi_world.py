"""The world of the confined end-to-end tests (test_pi_confined.py,
test_pi_tasks.py): the real pi from npm, a daemon with agent profiles, a
bubblewrap sandbox, and a fake provider that needs its API key.  No tests
live here.

`PiWorld` builds, in a fresh TMP, what an operator would set up by hand (docs/agents.md, "pi
confined through a profile"):

  TMP/pi-conf/models.json   pi's provider table: the fake server on
                            127.0.0.1, whose `apiKey` names the variable
                            FAKE_LLM_KEY (pi reads the key from its
                            environment); bound read-only into the sandbox
                            (`ro_paths`) and named by PI_CODING_AGENT_DIR
  TMP/conf/profiles.json    the profiles pi-fake (model fake-text),
                            pi-fake-400 (model fake-400), pi-fake-cmd (model
                            fake-cmd: pi's bash tool runs the prompt) and
                            pi-nokey (no env file), pi-fake-429 (model
                            fake-429, its agent directory TMP/jail/pi-conf-noretry:
                            the same models.json and a settings.json that
                            turns pi's own retries and its SDK's off, so the
                            first 429 ends the run), all provider pi, binary the npm
                            install's node_modules/.bin/pi, jail {path:
                            TMP/jail}
  TMP/conf/pi-fake.env      FAKE_LLM_KEY=<a fresh random secret>, 0600
  TMP/jail                  the sandbox's root (writable, HOME inside it),
                            given to the agent user (nobody under a root
                            daemon)

and a daemon (`--config-dir TMP/conf`, without --allow-unconfined: the
profile's jail is what lets pi run) on TMP/state.  The fake server
answers only requests carrying `Authorization: Bearer <secret>`, so a run
that gets the model's answer proves the key reached pi, and the only place
the test put it is the env file.  `SecretWatch` looks for the secret in
the argv of every process while an agent runs and notes the agent's own
processes (which must have it in their environment).
"""
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from fake_openai import FakeOpenAI

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "colibri_integration_conftest", os.path.join(HERE, "..", "integration", "conftest.py"))
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

PI = os.environ.get("COLIBRI_E2E_PI", os.path.join(HERE, "node_modules", ".bin", "pi"))
FINAL = ("done", "error")
TIMEOUT = 120  # node and pi starting inside bubblewrap, on a loaded 2-core machine
KEY_VAR = "FAKE_LLM_KEY"
AGENT_USER = "nobody"  # the daemon's default --agent-user


def bwrap_works():
    try:
        return subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def skip_unless_pi_and_bwrap():
    """Module-level skips: pi not installed (outside run.sh / run-tests.py), no bubblewrap."""
    if "COLIBRI_E2E_PI" not in os.environ and not os.path.exists(PI):
        pytest.skip("the real pi is not installed: run tests/e2e/run.sh", allow_module_level=True)
    if not bwrap_works():
        pytest.skip("bubblewrap cannot run here", allow_module_level=True)


def give_to_agent(path):
    """Under a root daemon the sandbox runs as nobody: path becomes its, and
    every directory above it searchable."""
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam(AGENT_USER)
    for dirpath, dirnames, filenames in os.walk(path):
        for n in [dirpath] + [os.path.join(dirpath, f) for f in dirnames + filenames]:
            os.lchown(n, pw.pw_uid, pw.pw_gid)
    open_above(path)


def open_above(path):
    p = os.path.dirname(os.path.abspath(path))
    while p != "/":
        st = os.stat(p)
        if st.st_mode & 0o001 == 0:
            os.chmod(p, (st.st_mode & 0o7777) | 0o011)
        p = os.path.dirname(p)


def write(path, text, mode):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class PiWorld:
    """TMP is a directory of its own under /tmp, not pytest's tmp_path: pytest
    makes /tmp/pytest-of-USER 0700 again at every session's start (another
    run beside this one would hide the sandbox's root from nobody).  remove()
    deletes it."""

    def __init__(self):
        assert os.access(PI, os.X_OK), "pi not found at %s" % PI
        self.tmp = tempfile.mkdtemp(prefix="colibri-e2e-")
        os.chmod(self.tmp, 0o711)
        self.key = "fk-" + secrets.token_hex(20)
        self.fake = FakeOpenAI(key=self.key)
        self.pi_conf = os.path.join(self.tmp, "pi-conf")
        self.conf = os.path.join(self.tmp, "conf")
        self.jail = os.path.join(self.tmp, "jail")
        self.env_file = os.path.join(self.conf, "pi-fake.env")
        os.makedirs(self.pi_conf)
        os.makedirs(self.conf, mode=0o700)
        os.makedirs(self.jail)
        models = {"providers": {"fake": {
            "baseUrl": "http://127.0.0.1:%d/v1" % self.fake.port, "api": "openai-completions",
            "apiKey": KEY_VAR,
            "compat": {"supportsDeveloperRole": False, "supportsReasoningEffort": False},
            "models": [{"id": "fake-text"}, {"id": "fake-cmd"}, {"id": "fake-400"},
                       {"id": "fake-429"}, {"id": "fake-sleep-once"}]}}}
        write(os.path.join(self.pi_conf, "models.json"), json.dumps(models), 0o644)
        os.chmod(self.pi_conf, 0o755)
        open_above(self.pi_conf)
        # pi locks settings.json to read it (a settings.json.lock beside it): in a read-only
        # agent directory it ignores the file, so this one lives in the sandbox's root.
        self.pi_conf_noretry = os.path.join(self.jail, "pi-conf-noretry")
        os.makedirs(self.pi_conf_noretry)
        write(os.path.join(self.pi_conf_noretry, "models.json"), json.dumps(models), 0o644)
        write(os.path.join(self.pi_conf_noretry, "settings.json"),
              json.dumps({"retry": {"enabled": False, "provider": {"maxRetries": 0}}}), 0o644)
        # pi-fake-resume keeps pi's own sessions (agent-resume continues one) in the root.
        self.pi_sessions = os.path.join(self.jail, "pi-sessions")
        os.makedirs(self.pi_sessions)
        give_to_agent(self.jail)
        write(self.env_file, "# the fake provider's key\n%s=%s\n" % (KEY_VAR, self.key), 0o600)

        def profile(name, model, env_file=True, max_attempts=2):
            p = {"name": name, "provider": "pi", "binary": PI,
                 # --no-session: pi's own session store would go to its agent
                 # directory, read-only here; Colibri keeps the session log.
                 "args": ["--provider", "fake", "--no-session"], "model": model,
                 "env": {"PI_CODING_AGENT_DIR": self.pi_conf, "PI_OFFLINE": "1"},
                 "jail": {"path": self.jail}, "ro_paths": [self.pi_conf],
                 "max_attempts": max_attempts}
            if env_file:
                p["env_file"] = self.env_file
            return p

        profiles = [profile("pi-fake", "fake-text"), profile("pi-fake-400", "fake-400"),
                    profile("pi-nokey", "fake-text", env_file=False),
                    profile("pi-fake-cmd", "fake-cmd"), profile("pi-fake-429", "fake-429")]
        profiles[-1]["env"]["PI_CODING_AGENT_DIR"] = self.pi_conf_noretry
        del profiles[-1]["ro_paths"]
        resume = profile("pi-fake-resume", "fake-sleep-once")
        resume["args"] = ["--provider", "fake", "--session-dir", self.pi_sessions]
        profiles.append(resume)
        write(os.path.join(self.conf, "profiles.json"), json.dumps({"profiles": profiles}), 0o600)
        env = dict(os.environ)
        env["PATH"] = os.path.join(harness.BUILD, "src", "tools") + ":" + env.get("PATH", "/usr/bin:/bin")
        for k in ("COLIBRI_CONFINE", "COLIBRI_JAIL_PRIV_MODE", "COLIBRI_JAIL_STAGE_DIR",
                  "COLIBRI_JAIL_ROOT_BASE", KEY_VAR):
            env.pop(k, None)
        self.daemon = harness.Daemon(os.path.join(self.tmp, "state"),
                                     ["--config-dir", self.conf, "--stall-ms", "60000"], env,
                                     allow_unconfined=False).start()
        self.replies = []  # every reply and CLI output, searched for the key at the end

    def call(self, cmd, args=None, **kw):
        r = self.daemon.call(cmd, args, **kw)
        self.replies.append(json.dumps(r))
        return r

    def cli(self, *args, timeout=60):
        p = self.daemon.cli(*args, timeout=timeout)
        self.replies += [p.stdout, p.stderr]
        return p

    def wait_final(self, aid, timeout=TIMEOUT):
        deadline = time.time() + timeout
        st = None
        while time.time() < deadline:
            st = self.call("agent-status", id=aid)
            if st["state"] in FINAL and not st.get("live"):
                return st
            time.sleep(0.1)
        raise AssertionError("pi did not finish: %s\n%s" % (st, self.daemon.read_log()[-3000:]))

    def session(self, aid):
        return self.call("session-read", id=aid, limit=100000)["lines"]

    def close(self):
        rc = self.daemon.stop()
        self.fake.close()
        return rc

    def remove(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def files_holding_key(self, top):
        """Every file under top whose bytes contain the key."""
        needle = self.key.encode()
        found = []
        for dirpath, dirnames, filenames in os.walk(top):
            for n in filenames:
                p = os.path.join(dirpath, n)
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                try:
                    with open(p, "rb") as f:
                        if needle in f.read():
                            found.append(p)
                except OSError:
                    pass
        return found


class SecretWatch:
    """Scans /proc while an agent runs: any process whose argv holds the key
    (`in_argv`), and the processes carrying COLIBRI_AGENT_ID=aid with whether
    their environment holds the key (`agent_env`: pid -> bool) and who they
    are (`agent_info`: pid -> (uid, pid namespace inode, executable))."""

    def __init__(self, key, aid):
        self.key = key.encode()
        self.tag = ("COLIBRI_AGENT_ID=%s" % aid).encode()
        self.in_argv = []
        self.agent_env = {}
        self.agent_info = {}
        self.scans = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopped.is_set():
            for name in os.listdir("/proc"):
                if not name.isdigit():
                    continue
                try:
                    with open("/proc/%s/cmdline" % name, "rb") as f:
                        argv = f.read()
                    with open("/proc/%s/environ" % name, "rb") as f:
                        env = f.read().split(b"\0")
                except OSError:
                    continue
                if self.key in argv:
                    self.in_argv.append((int(name), argv))
                if self.tag in env:
                    pid = int(name)
                    self.agent_env[pid] = self.agent_env.get(pid, False) or any(
                        e == b"%s=%s" % (KEY_VAR.encode(), self.key) for e in env)
                    try:
                        self.agent_info[pid] = (os.stat("/proc/%s" % name).st_uid,
                                                os.stat("/proc/%s/ns/pid" % name).st_ino,
                                                os.readlink("/proc/%s/exe" % name))
                    except OSError:
                        pass
            self.scans += 1
            time.sleep(0.01)

    def stop(self):
        self.stopped.set()
        self.thread.join(10)
