"""colibri-jail-spawn, the setuid helper, driven against stand-in jexec/jail.

The helper grants only what the daemon needs: run the staged
`/bin/sh STAGE/ID/launch.sh` as an unprivileged user (-U, never root) in a
jail under the root base.  Each finding of issue 15 about it is reproduced
here and shown refused: another program (`/bin/cat /.env`), a missing -U or
a root user, `create` over a jail another manager runs (jail.conf/fstab
beside it), a configuration whose directory is not root-owned, a jail path
"/" beside a valid root_path, and -- with real users -- a member of the
socket group running the helper at all.

Most tests run the helper unprivileged (getuid() == geteuid()), the only
mode where it honours COLIBRI_JAIL_SPAWN_TEST_BINDIR, COLIBRI_JAIL_ROOT_BASE
and COLIBRI_JAIL_SPAWN_CONFIG; the stand-ins record their argv and
environment in record.jsonl (see standins/standin.py).  The last tests
install setuid copies (root only).
"""
import grp
import json
import os
import sys
import pwd
import shutil
import stat
import subprocess
import tempfile

import pytest

from conftest import bin_path
from test_jailed_spawn_helpers import copy_standins, jail_env, standin_calls
from test_supervision_helpers import agent_bin

HERE = os.path.dirname(os.path.abspath(__file__))
SAFE_PATH = "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"
STAGE = "/home/clawdie/.cache/colibri/stage"
LAUNCH = STAGE + "/a1/launch.sh"
TAG = "%d" % (os.getpid() % 100000)


def stage_launcher(root, launch=LAUNCH):
    """What the daemon leaves in a jail root before it calls the helper: STAGE/ID/launch.sh."""
    os.makedirs(root + os.path.dirname(launch), mode=0o700, exist_ok=True)
    with open(root + launch, "w") as f:
        f.write("# launch.sh\n")
    os.chmod(root + launch, 0o600)


def make_bindir(d):
    os.makedirs(d, mode=0o755, exist_ok=True)
    for name in ("jexec", "jail"):
        shutil.copy(os.path.join(HERE, "standins", "standin.py"), os.path.join(d, name))
        os.chmod(os.path.join(d, name), 0o755)
    return d


class Helper:
    def __init__(self, tmp):
        self.exe = bin_path("colibri-jail-spawn")
        self.tmp = tmp
        self.base = os.path.join(tmp, "jails")
        os.makedirs(self.base, mode=0o755)
        os.chmod(tmp, 0o755)
        self.bindir = make_bindir(os.path.join(tmp, "bin"))
        self.record = os.path.join(self.bindir, "record.jsonl")
        # Absent unless a test writes it: the compiled-in path must not leak in.
        self.conf = os.path.join(tmp, "etc", "jail-spawn.conf")

    def jail_dir(self, name, staged=True):
        p = os.path.join(self.base, name)
        os.makedirs(p, mode=0o755, exist_ok=True)
        if staged:
            stage_launcher(p)
        return p

    def write_conf(self, text, mode=0o644):
        os.makedirs(os.path.dirname(self.conf), mode=0o755, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(text)
        os.chmod(self.conf, mode)

    def run(self, *args, env=None, exe=None):
        e = {"COLIBRI_JAIL_ROOT_BASE": self.base,
             "COLIBRI_JAIL_SPAWN_TEST_BINDIR": self.bindir,
             "COLIBRI_JAIL_SPAWN_CONFIG": self.conf,
             "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        e.update(env or {})
        return subprocess.run([exe or self.exe] + list(args), env=e, capture_output=True,
                              text=True, timeout=30)

    def calls(self):
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            return [json.loads(line) for line in f]


@pytest.fixture
def helper(tmp_path):
    return Helper(str(tmp_path))


def refused(h, r, code, needle):
    assert r.returncode == code, (r.returncode, r.stderr)
    assert needle in r.stderr, r.stderr
    assert r.stderr.startswith("colibri-jail-spawn: ")
    assert h.calls() == [], "nothing may run after a refusal"


def test_exec_builds_jexec_argv(helper):
    r = helper.run("exec", "-U", "clawdie", "box", "--", "/bin/sh", LAUNCH)
    assert r.returncode == 0, r.stderr
    (call,) = helper.calls()
    assert call["prog"] == "jexec"
    assert call["argv"] == ["-U", "clawdie", "box", "/bin/sh", LAUNCH]


def test_create_builds_jail_argv(helper):
    j = helper.jail_dir("dev.box")
    r = helper.run("create", "-4", "10.0.0.7", "-U", "clawdie", j, "--", "/bin/sh", LAUNCH)
    assert r.returncode == 0, r.stderr
    (call,) = helper.calls()
    assert call["prog"] == "jail"
    assert call["argv"] == ["-c", "path=" + j, "name=colibri-dev_box", "ip4.addr=10.0.0.7",
                            "exec.jail_user=clawdie", "command=/bin/sh", LAUNCH]
    helper.run("create", "-U", "agent", j, "--", "/bin/sh", LAUNCH)
    assert helper.calls()[1]["argv"] == ["-c", "path=" + j, "name=colibri-dev_box",
                                         "ip4=inherit", "exec.jail_user=agent",
                                         "command=/bin/sh", LAUNCH]
    # "none" (issue 17) is FreeBSD's ip4=disable, never an address.
    for value in ("none", "disable"):
        helper.run("create", "-4", value, "-U", "agent", j, "--", "/bin/sh", LAUNCH)
        assert helper.calls()[-1]["argv"] == ["-c", "path=" + j, "name=colibri-dev_box",
                                              "ip4=disable", "exec.jail_user=agent",
                                              "command=/bin/sh", LAUNCH]


@pytest.mark.parametrize("name,needle", [
    ("a/b", "may contain only"),
    ("../etc", "may contain only"),
    ("a..b", "must not contain \"..\""),
    ("..", "must not contain \"..\""),
    ("123", "all digits"),
    ("x" * 65, "too long"),
])
def test_refuses_bad_names(helper, name, needle):
    refused(helper, helper.run("exec", "-U", "clawdie", name, "--", "/bin/sh", LAUNCH), 65,
            needle)


def create(h, path, user="clawdie", env=None):
    return h.run("create", "-U", user, path, "--", "/bin/sh", LAUNCH, env=env)


def test_refuses_path_outside_base(helper, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir(mode=0o755)
    refused(helper, create(helper, str(other)), 77, "not under the root base")
    refused(helper, create(helper, helper.base), 77, "not under the root base")
    refused(helper, create(helper, "/"), 77, "not under the root base")
    refused(helper, create(helper, helper.base + "/../bin"), 65, "\"..\" components")


def test_refuses_path_through_symlink(helper, tmp_path):
    real = helper.jail_dir("real")
    os.symlink(real, os.path.join(helper.base, "alias"))
    refused(helper, create(helper, os.path.join(helper.base, "alias")), 77, "not canonical")
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    os.symlink(str(outside), os.path.join(helper.base, "escape"))
    refused(helper, create(helper, os.path.join(helper.base, "escape")), 77, "not canonical")


def test_refuses_a_launcher_not_staged_in_the_jail(helper, tmp_path):
    """The helper's side of root_path == path: create runs STAGE/ID/launch.sh inside PATH,
    so the daemon must have staged it there -- a regular file, no symlink on the way."""
    bare = helper.jail_dir("bare", staged=False)
    refused(helper, create(helper, bare), 77, "is not staged in the jail's root")
    outside = tmp_path / "outside"
    stage_launcher(str(outside))
    home = os.path.join(bare, "home")
    os.symlink(str(outside / "home"), home)
    refused(helper, create(helper, bare), 77, "is not staged in the jail's root")
    os.unlink(home)
    os.makedirs(bare + os.path.dirname(LAUNCH))
    os.mkfifo(bare + LAUNCH)
    refused(helper, create(helper, bare), 77, "is not staged in the jail's root")
    os.unlink(bare + LAUNCH)
    os.symlink(str(outside) + LAUNCH, bare + LAUNCH)
    refused(helper, create(helper, bare), 77, "is not staged in the jail's root")
    os.unlink(bare + LAUNCH)
    stage_launcher(bare)
    assert create(helper, bare).returncode == 0


def test_refuses_unsafe_directory(helper):
    j = helper.jail_dir("loose")
    os.chmod(j, 0o775)
    refused(helper, create(helper, j), 77, "not writable by group")


@pytest.mark.parametrize("args,code,needle", [
    (["exec", "-U", "u", "box", "extra", "--", "/bin/sh", LAUNCH], 64, "expected \"--\""),
    (["exec", "-U", "u", "box", "/bin/sh", LAUNCH], 64, "expected \"--\""),
    (["exec", "-U", "u", "box", "--"], 64, "no program"),
    (["exec", "-U", "u", "-4", "10.0.0.1", "box", "--", "/bin/sh", LAUNCH], 64,
     "expected a jail name"),
    (["exec", "-U", "a", "-U", "b", "box", "--", "/bin/sh", LAUNCH], 64, "given twice"),
    (["exec", "-U"], 64, "needs a value"),
    (["run", "box", "--", "/bin/sh", LAUNCH], 64, "usage"),
    ([], 64, "usage"),
    (["exec", "-U", "-root", "box", "--", "/bin/sh", LAUNCH], 65, "user"),
    (["create", "-U", "u", "-4", "1.2.3", "/x/y", "--", "/bin/sh", LAUNCH], 65, "ip4"),
    (["create", "-U", "u", "relative/path", "--", "/bin/sh", LAUNCH], 65, "absolute path"),
])
def test_refuses_malformed_requests(helper, args, code, needle):
    refused(helper, helper.run(*args), code, needle)


# ---- the grant: /bin/sh STAGE/ID/launch.sh, as an unprivileged user -------------

@pytest.mark.parametrize("cmd", [
    ["/bin/cat", "/.env"],
    ["/bin/sh"],
    ["/bin/sh", "-c", "cat /.env"],
    ["/bin/sh", LAUNCH, "extra"],
    ["/bin/bash", LAUNCH],
    ["sh", LAUNCH],
    [LAUNCH],
    ["/bin/sh", "/tmp/a1/launch.sh"],
    ["/bin/sh", STAGE + "/a1/env.sh"],
    ["/bin/sh", STAGE + "//launch.sh"],
    ["/bin/sh", STAGE + "/../../../../../tmp/launch.sh"],
    ["/bin/sh", STAGE + "/a1/../../launch.sh"],
    ["/bin/sh", STAGE + "/a1/launch.sh/"],
    ["/bin/sh", STAGE + "x/a1/launch.sh"],
    ["/bin/sh", STAGE + "/" + "i" * 65 + "/launch.sh"],
], ids=lambda c: " ".join(c)[:40])
@pytest.mark.parametrize("verb", ["exec", "create"])
def test_refuses_any_program_but_the_stage_launcher(helper, verb, cmd):
    """Finding: any member ran `exec NAME -- /bin/cat /.env` as root in any jail."""
    target = "box" if verb == "exec" else helper.jail_dir("j")
    refused(helper, helper.run(verb, "-U", "clawdie", target, "--", *cmd), 77, "the program")


@pytest.mark.parametrize("verb", ["exec", "create"])
def test_refuses_a_missing_or_root_user(helper, verb):
    target = "box" if verb == "exec" else helper.jail_dir("j")
    refused(helper, helper.run(verb, target, "--", "/bin/sh", LAUNCH), 64, "-U USER is required")
    for user, needle in (("root", "must not be root"), ("toor", "must not be root"),
                         ("0", "not a uid"), ("00", "not a uid")):
        refused(helper, helper.run(verb, "-U", user, target, "--", "/bin/sh", LAUNCH), 77,
                needle)


def test_refuses_a_user_that_is_uid_0_in_the_jail(helper):
    """A name that the jail's password files map to uid 0 is root under another name."""
    j = helper.jail_dir("pw")
    etc = os.path.join(j, "etc")
    os.mkdir(etc, 0o755)
    with open(os.path.join(etc, "passwd"), "w") as f:
        f.write("# jail users\nroot:*:0:0:Charlie &:/root:/bin/sh\n"
                "admin:*:0:0:alias:/root:/bin/sh\nclawdie:*:1001:1001::/home/clawdie:/bin/sh\n")
    with open(os.path.join(etc, "master.passwd"), "w") as f:
        f.write("clawdie:*:1001:1001::0:0::/home/clawdie:/bin/sh\n"
                "ops:*:0:0::0:0:x:/root:/bin/sh\n")
    os.chmod(os.path.join(etc, "master.passwd"), 0o600)
    refused(helper, create(helper, j, "admin"), 77, "admin is uid 0 in %s/etc/passwd" % j)
    refused(helper, create(helper, j, "ops"), 77, "ops is uid 0 in %s/etc/master.passwd" % j)
    with open(os.path.join(etc, "passwd"), "ab") as f:
        f.write(b"x:*:1:1::/:/bin/sh\n\0hidden:*:0:0::/root:/bin/sh\n")
    refused(helper, create(helper, j, "hidden"), 77, "a NUL byte")
    with open(os.path.join(etc, "passwd"), "w") as f:
        f.write("clawdie:*:1001:1001::/home/clawdie:/bin/sh\n")
    os.chmod(os.path.join(etc, "passwd"), 0o664)
    refused(helper, create(helper, j, "clawdie"), 77, "not writable by group")
    os.chmod(os.path.join(etc, "passwd"), 0o644)
    r = create(helper, j, "clawdie")
    assert r.returncode == 0, r.stderr
    assert helper.calls()[0]["argv"][4] == "exec.jail_user=clawdie"


def bastille_jail(base, name):
    """bastille's layout: jails/NAME/{jail.conf, fstab, root/}."""
    d = os.path.join(base, name)
    os.makedirs(os.path.join(d, "root"), mode=0o755)
    os.chmod(d, 0o755)
    stage_launcher(os.path.join(d, "root"))
    for f in ("jail.conf", "fstab"):
        with open(os.path.join(d, f), "w") as fh:
            fh.write("# %s of %s\n" % (f, name))
    return d


def test_create_over_a_managed_jail_needs_the_config(helper):
    """Finding: `create` over bastille's jails/NAME/root, beside jail.conf and fstab."""
    web = bastille_jail(helper.base, "web")
    root = os.path.join(web, "root")
    refused(helper, create(helper, root), 77, "jail.conf or fstab")
    refused(helper, create(helper, web), 77, "jail.conf or fstab")
    os.unlink(os.path.join(web, "jail.conf"))
    refused(helper, create(helper, root), 77, "list it as jail_root")
    # Listed in the root-owned config: that root (and only it) is allowed.
    helper.write_conf("jail_root = %s/\n" % root)
    r = create(helper, root)
    assert r.returncode == 0, r.stderr
    assert helper.calls()[0]["argv"][1] == "path=" + root
    refused_too = create(helper, web)
    assert refused_too.returncode == 77 and "jail.conf or fstab" in refused_too.stderr
    plain = helper.jail_dir("plain")
    assert create(helper, plain).returncode == 0


def test_config_file(helper, tmp_path):
    alt = tmp_path / "alt"
    alt.mkdir(mode=0o755)
    (alt / "j").mkdir(mode=0o755)
    stage_launcher(str(alt / "j"))
    helper.write_conf("# root base for jails\n root_base = %s \n" % alt)
    env = {"COLIBRI_JAIL_ROOT_BASE": ""}
    r = create(helper, str(alt / "j"), env=env)
    assert r.returncode == 0, r.stderr
    os.chmod(helper.conf, 0o666)
    r = create(helper, str(alt / "j"), env=env)
    assert r.returncode == 78 and "not writable by group" in r.stderr, r.stderr
    os.chmod(helper.conf, 0o644)
    helper.write_conf("root_base = %s\njail_cmd = /bin/evil\n" % alt)
    r = create(helper, str(alt / "j"), env=env)
    assert r.returncode == 78 and "unknown key jail_cmd" in r.stderr, r.stderr
    helper.write_conf("stage_dir = relative\n")
    r = create(helper, str(alt / "j"), env=env)
    assert r.returncode == 78 and "stage_dir must be an absolute path" in r.stderr, r.stderr
    assert len(helper.calls()) == 1


def test_config_stage_dir(helper):
    """stage_dir moves the one program the helper runs (COLIBRI_JAIL_STAGE_DIR inside the jail)."""
    helper.write_conf("stage_dir = /var/colibri/stage/\n")
    refused(helper, helper.run("exec", "-U", "u", "box", "--", "/bin/sh", LAUNCH), 77,
            "/bin/sh /var/colibri/stage/ID/launch.sh")
    r = helper.run("exec", "-U", "u", "box", "--", "/bin/sh", "/var/colibri/stage/b2/launch.sh")
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown the config's directory")
def test_config_in_a_directory_not_owned_by_root_is_refused(helper):
    """Finding: the daemon's user owned the directory of the helper's root-owned config,
    so it could swap the file (or plant one where none was)."""
    j = helper.jail_dir("j")
    helper.write_conf("root_base = %s\n" % helper.base)
    confdir = os.path.dirname(helper.conf)
    os.chown(confdir, 65534, 65534)
    r = create(helper, j)
    assert r.returncode == 78 and "must be owned by root" in r.stderr, r.stderr
    os.unlink(helper.conf)
    r = create(helper, j)
    assert r.returncode == 78 and "must be owned by root" in r.stderr, "absent file, unsafe dir"
    os.chown(confdir, 0, 0)
    helper.write_conf("root_base = %s\n" % helper.base)
    os.chmod(confdir, 0o775)
    r = create(helper, j)
    assert r.returncode == 78 and "must not be writable by group" in r.stderr, r.stderr
    os.chmod(confdir, 0o1777)
    r = create(helper, j)
    assert r.returncode == 78, "sticky is not enough for the config's own directory"
    os.chmod(confdir, 0o755)
    link = os.path.join(confdir, "link.conf")
    os.symlink(helper.conf, link)
    r = create(helper, j, env={"COLIBRI_JAIL_SPAWN_CONFIG": link})
    assert r.returncode == 78, r.stderr
    assert helper.calls() == []
    assert create(helper, j).returncode == 0


def test_clears_hostile_environment(helper):
    hostile = {"LD_PRELOAD": "/nonexistent/evil.so", "LD_LIBRARY_PATH": "/tmp/evil",
               "PATH": "/tmp/evil:/usr/bin:/bin", "IFS": "x", "ENV": "/tmp/evil.sh",
               "COLIBRI_SECRET": "s3cret", "BASH_ENV": "/tmp/evil.sh"}
    r = helper.run("exec", "-U", "clawdie", "box", "--", "/bin/sh", LAUNCH, env=hostile)
    assert r.returncode == 0, r.stderr
    (call,) = helper.calls()
    assert call["env"] == {"PATH": SAFE_PATH}


# ---- the daemon side: both paths against the base, a user in helper mode ---------

class JailDaemon:
    def __init__(self, tmp, make_daemon, mode):
        self.base = os.path.join(tmp, "jails")
        self.root = os.path.join(self.base, "box")
        os.makedirs(os.path.join(self.base, "box2"))
        os.makedirs(self.root)
        self.bindir = copy_standins(os.path.join(tmp, "standins"))
        env = jail_env({"COLIBRI_CONFINE": "freebsd-jail", "COLIBRI_JAIL_PRIV_MODE": mode,
                        "COLIBRI_JAIL_ROOT_BASE": self.base})
        env["PATH"] = self.bindir + ":" + env["PATH"]
        self.d = make_daemon(name="state-" + mode, env=env)

    def spawn(self, jail, aid):
        return self.d.connect().request("spawn-agent", {"provider": "local",
                                                        "binary": agent_bin(), "id": aid,
                                                        "jail": jail})

    def refused(self, jail, aid, needle):
        r = self.spawn(jail, aid)
        assert not r["ok"], r
        assert needle in r["error"]["message"], r
        assert standin_calls(self.bindir) == [], "nothing may run"
        for root in (self.root, os.path.join(self.base, "box2")):
            assert os.listdir(root) == [], "nothing staged"
        assert self.d.call("status") is not None, "the daemon still serves"


def test_daemon_checks_path_and_root_path_against_the_base(tmp_path, make_daemon):
    """Finding: with both set only root_path was checked (path "/" was accepted)."""
    j = JailDaemon(str(tmp_path), make_daemon, "none")
    j.refused({"name": "box", "path": "/", "root_path": j.root}, "p1",
              "jail.path / (/) is not strictly under the root base")
    j.refused({"name": "box", "path": str(tmp_path), "root_path": j.root}, "p2",
              "is not strictly under the root base")
    j.refused({"path": j.base, "root_path": j.base}, "p3", "not strictly under")


def test_daemon_refuses_ephemeral_path_other_than_root_path(tmp_path, make_daemon):
    j = JailDaemon(str(tmp_path), make_daemon, "none")
    j.refused({"path": "/", "root_path": j.root}, "e1", "must equal jail.path")
    j.refused({"path": os.path.join(j.base, "box2"), "root_path": j.root}, "e2",
              "must equal jail.path")


def test_daemon_helper_mode_needs_an_unprivileged_user(tmp_path, make_daemon):
    """Helper mode: the helper's argv always carries -U USER; no user or root is refused
    before anything is staged or run."""
    j = JailDaemon(str(tmp_path), make_daemon, "helper")
    j.refused({"name": "box", "root_path": j.root}, "h1", "jail.user is required in helper mode")
    j.refused({"path": j.root}, "h2", "jail.user is required in helper mode")
    j.refused({"name": "box", "root_path": j.root, "user": "root"}, "h3", "must not be root")
    j.refused({"path": j.root, "user": "toor"}, "h4", "must not be root")
    j.refused({"path": j.root, "user": "0"}, "h5", "not a uid")


# ---- setuid copies and real users --------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to install a setuid copy")
def test_setuid_ignores_caller_environment(helper, tmp_path):
    """Setuid, the helper takes neither the stand-in bin dir nor the root base nor the
    config from the caller's environment: it uses its compiled-in base (absent here)
    and /usr/sbin, so nothing the caller prepared runs."""
    copy = tmp_path / "suid" / "colibri-jail-spawn"
    copy.parent.mkdir(mode=0o755)
    shutil.copy(helper.exe, copy)
    os.chown(copy, 65534, 65534)
    os.chmod(copy, 0o4755)
    j = helper.jail_dir("j")
    helper.write_conf("stage_dir = /elsewhere\n")
    r = helper.run("create", "-U", "clawdie", j, "--", "/bin/sh", LAUNCH, exe=str(copy))
    assert r.returncode != 0
    assert "/usr/local/bastille/jails" in r.stderr or "not under the root base" in r.stderr, r.stderr
    r = helper.run("exec", "-U", "clawdie", "box", "--", "/bin/sh", LAUNCH, exe=str(copy))
    # Past every check (the caller's stage_dir would have refused LAUNCH): the copy,
    # owned by nobody, then cannot become root -- nothing the caller prepared ran.
    assert r.returncode != 0 and "cannot become root" in r.stderr, r.stderr
    assert helper.calls() == []
    assert stat.S_IMODE(os.stat(copy).st_mode) & stat.S_ISUID


def _sh(*argv):
    subprocess.run(list(argv), check=True, capture_output=True)


@pytest.fixture
def helper_people():
    """The package's layout in miniature: a socket group with a board member, and the
    helper's own group whose only member is the daemon's user."""
    if shutil.which("useradd") is None or shutil.which("setpriv") is None:
        pytest.skip("needs useradd and setpriv")
    sock, jailg = "colibri-hs" + TAG, "colibri-hj" + TAG
    member, daemon = "colibri-hm" + TAG, "colibri-hd" + TAG
    groups, users = [], []
    try:
        for g in (sock, jailg):
            _sh("groupadd", "--system", g)
            groups.append(g)
        _sh("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
            "--user-group", "--groups", sock, member)
        users.append(member)
        _sh("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
            "--user-group", "--groups", sock + "," + jailg, daemon)
        users.append(daemon)
        yield {"sock": sock, "jail": jailg, "member": pwd.getpwnam(member),
               "daemon": pwd.getpwnam(daemon)}
    finally:
        for u in users:
            subprocess.run(["userdel", u], capture_output=True)
            subprocess.run(["groupdel", u], capture_output=True)
        for g in groups:
            subprocess.run(["groupdel", g], capture_output=True)


AS_USER = r"""
import json, os, subprocess, sys
try:
    p = subprocess.run(sys.argv[1:], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    print(json.dumps({"rc": p.returncode, "stderr": p.stderr}))
except OSError as e:
    print(json.dumps({"errno": e.errno}))
"""

NS_RUN = r"""
set -e
upper="$1" work="$2"; shift 2
mount -t overlay overlay -o "lowerdir=/usr/sbin,upperdir=$upper,workdir=$work" /usr/sbin
exec "$@"
"""


def as_user(user, argv, ns=None):
    cmd = ["setpriv", "--reuid", str(user.pw_uid), "--regid", str(user.pw_gid),
           "--init-groups", sys.executable, "-c", AS_USER] + argv
    if ns is not None:
        cmd = ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", NS_RUN,
               "ns"] + ns + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: users, groups, a setuid copy")
def test_real_users_only_the_helper_group_runs_it_and_only_the_grant(helper, helper_people,
                                                                  tmp_path):
    """Finding: installed root:colibri 4750 with the socket group also `colibri`, every
    board member was root in every jail.  Installed root:<helper group> 4750 instead:
    a member of the socket group gets EACCES; the daemon's user (the helper group's
    member) gets exactly the launcher as an unprivileged user, nothing else."""
    people = helper_people
    d = tempfile.mkdtemp(prefix="colibri-helper-", dir="/tmp")
    try:
        os.chmod(d, 0o755)
        exe = os.path.join(d, "colibri-jail-spawn")
        shutil.copy(helper.exe, exe)
        os.chown(exe, 0, grp.getgrnam(people["jail"]).gr_gid)
        os.chmod(exe, 0o4750)
        ok = [exe, "exec", "-U", "clawdie", "box", "--", "/bin/sh", LAUNCH]

        # A board member (socket group, not the helper's): cannot even execute it.
        r = as_user(people["member"], ok)
        assert r == {"errno": 13}, r

        # The daemon's user: the narrow grant only.
        daemon = people["daemon"]
        for argv, code, needle in (
                ([exe, "exec", "-U", "clawdie", "box", "--", "/bin/cat", "/.env"], 77,
                 "the program"),
                ([exe, "exec", "box", "--", "/bin/sh", LAUNCH], 64, "-U USER is required"),
                ([exe, "exec", "-U", "root", "box", "--", "/bin/sh", LAUNCH], 77,
                 "must not be root"),
                ([exe, "create", "-U", "clawdie", "/", "--", "/bin/sh", LAUNCH], 78,
                 "root base /usr/local/bastille/jails")):
            r = as_user(daemon, argv)
            assert r.get("rc") == code and needle in r["stderr"], (argv, r)

        # The grant itself goes through: /usr/sbin/jexec (a stand-in in a private
        # mount namespace) runs as root with -U clawdie and the launcher only.
        upper, work = tmp_path / "upper", tmp_path / "work"
        work.mkdir()
        make_bindir(str(upper))
        os.chmod(upper, 0o755)
        r = as_user(daemon, ok, ns=[str(upper), str(work)])
        assert r.get("rc") == 0, r
        with open(upper / "record.jsonl") as f:
            (call,) = [json.loads(line) for line in f]
        assert call["prog"] == "jexec"
        assert call["argv"] == ["-U", "clawdie", "box", "/bin/sh", LAUNCH]
        assert (call["uid"], call["euid"]) == (0, 0)
        assert call["env"] == {"PATH": SAFE_PATH}
    finally:
        shutil.rmtree(d, ignore_errors=True)
