"""`meson install` with DESTDIR: every file in place with the right modes.

The Linux install is real: a fresh `meson setup --prefix=/usr` of this tree
in a temporary directory, built and installed into a staging root, then the
staged tree must hold exactly the programs, the man pages in man/, the
systemd unit and the tmpfiles.d/sysusers.d entries -- executables 0755,
everything else 0644, owned by the installing user -- and the installed
programs must run.

The FreeBSD install is checked as a plan: the same tree configured for a
FreeBSD host (a cross file; nothing is compiled) must install the rc.d
script (generated, %%PREFIX%% replaced, mode 0755), the newsyslog entry and
the setuid helper colibri-jail-spawn in libexec with mode 4750 (root owns it;
its group comes from the package: pkg-plist's @(root,colibri-jail,4750), a
group of its own holding only the daemon's user, never the socket group; the
rc.d script refuses to start in helper mode otherwise).  On Linux the helper
is not installed: there is no jail to spawn (src/helper/meson.build).
"""
import glob
import json
import os
import re
import pickle
import shutil
import stat
import subprocess
import sys

import pytest

from conftest import ROOT

MESON = shutil.which("meson")
pytestmark = pytest.mark.skipif(MESON is None or sys.platform != "linux",
                                reason="needs meson on Linux")

PROGRAMS = {
    "usr/sbin/colibri-daemon", "usr/bin/colibri", "usr/bin/colibri-glasspane",
    "usr/bin/colibri-mcp", "usr/bin/colibri-test-agent", "usr/bin/colibri-smoke-agent",
    "usr/bin/colibri-runtime-inventory", "usr/bin/colibri-probe",
}
LINUX_DATA = {
    "usr/lib/systemd/system/colibri.service": "packaging/linux/colibri.service",
    "usr/lib/tmpfiles.d/colibri.conf": "packaging/linux/colibri.tmpfiles",
    "usr/lib/sysusers.d/colibri.conf": "packaging/linux/colibri.sysusers",
}


def man_pages():
    """man/NAME.SECTION -> its installed path, for every page in the tree."""
    out = {}
    for p in glob.glob(os.path.join(ROOT, "man", "*.[1-9]")):
        name = os.path.basename(p)
        out["usr/share/man/man%s/%s" % (name.rsplit(".", 1)[1], name)] = p
    return out


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert p.returncode == 0, "%s:\n%s\n%s" % (" ".join(cmd), p.stdout[-3000:], p.stderr[-3000:])
    return p


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("install")
    build, dest = str(tmp / "build"), str(tmp / "dest")
    # probe and tui are features: ask for them, so a missing library fails loudly here
    run([MESON, "setup", "--prefix=/usr", "-Dtests=disabled", "-Dprobe=enabled", "-Dtui=enabled",
         build, ROOT])
    run(["ninja", "-C", build])
    run([MESON, "install", "-C", build, "--destdir", dest, "--quiet"])
    files = {}
    for d, dirs, names in os.walk(dest):
        for n in names + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            p = os.path.join(d, n)
            files[os.path.relpath(p, dest)] = os.lstat(p)
    yield dest, files
    shutil.rmtree(str(tmp), ignore_errors=True)


# The PostgreSQL store module, in LIBDIR/colibri (a multiarch libdir on Debian);
# built because scripts/deps.sh installs libpq's headers; meson installs it 0755.
MODULE_RE = re.compile(r"usr/lib(/[^/]+)?/colibri/store-postgres\.so$")


def modules(files):
    return {f for f in files if MODULE_RE.match(f)}


def test_staged_file_list_is_exact(staged):
    dest, files = staged
    assert len(modules(files)) == 1, "the PostgreSQL store module is not installed once"
    want = PROGRAMS | set(LINUX_DATA) | set(man_pages()) | modules(files)
    assert len(man_pages()) >= 5
    assert set(files) - want == set(), "installed but not expected"
    assert want - set(files) == set(), "expected but not installed"


def test_modes_and_owners(staged):
    dest, files = staged
    for rel, st in files.items():
        assert stat.S_ISREG(st.st_mode), "%s is not a regular file" % rel
        mode = stat.S_IMODE(st.st_mode)
        want = 0o755 if rel in PROGRAMS or MODULE_RE.match(rel) else 0o644
        assert mode == want, "%s has mode %o, want %o" % (rel, mode, want)
        assert st.st_uid == os.geteuid(), rel
    assert "usr/libexec/colibri-jail-spawn" not in files  # Linux: no jail to spawn


def test_data_files_are_the_trees(staged):
    dest, _ = staged
    for rel, src in list(LINUX_DATA.items()) + list(man_pages().items()):
        with open(os.path.join(dest, rel), "rb") as a, open(os.path.join(ROOT, src), "rb") as b:
            assert a.read() == b.read(), rel


def test_unit_starts_the_installed_daemon(staged):
    dest, files = staged
    unit = open(os.path.join(dest, "usr/lib/systemd/system/colibri.service")).read()
    exec_start = [l for l in unit.splitlines() if l.startswith("ExecStart=")]
    assert len(exec_start) == 1
    binary = exec_start[0].split("=", 1)[1].split()[0]
    assert binary.lstrip("/") in files, "ExecStart names %s, which is not installed" % binary


def test_installed_programs_run(staged):
    dest, _ = staged
    p = subprocess.run([os.path.join(dest, "usr/sbin/colibri-daemon"), "--version"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and "0." in p.stdout + p.stderr
    p = subprocess.run([os.path.join(dest, "usr/bin/colibri"), "--help"], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 0 and "task-create" in p.stdout
    p = subprocess.run([os.path.join(dest, "usr/bin/colibri-runtime-inventory")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout)["schema_version"] == 1


# ---- FreeBSD, as a plan ----


@pytest.fixture(scope="module")
def freebsd_plan(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("freebsd")
    cross = tmp / "freebsd.ini"
    cross.write_text("[binaries]\nc = 'cc'\npkgconfig = 'pkg-config'\npkg-config = 'pkg-config'\n"
                     "[host_machine]\nsystem = 'freebsd'\ncpu_family = 'x86_64'\n"
                     "cpu = 'x86_64'\nendian = 'little'\n")
    build = str(tmp / "build")
    run([MESON, "setup", "--cross-file", str(cross), "--prefix=/usr/local", "-Dtests=disabled",
         build, ROOT])
    installed = json.loads(run([MESON, "introspect", "--installed", build]).stdout)
    yield build, {v: k for k, v in installed.items()}
    shutil.rmtree(str(tmp), ignore_errors=True)


def test_freebsd_installs_rc_script_newsyslog_and_helper(freebsd_plan):
    build, plan = freebsd_plan
    want = {"/usr/local/etc/rc.d/colibri_daemon", "/usr/local/etc/newsyslog.conf.d/colibri.conf",
            "/usr/local/libexec/colibri-jail-spawn", "/usr/local/sbin/colibri-daemon"}
    want |= {"/usr/local/" + rel[len("usr/"):] for rel in man_pages()}
    assert want - set(plan) == set()
    assert not any("systemd" in p or "tmpfiles" in p for p in plan)
    rc = open(plan["/usr/local/etc/rc.d/colibri_daemon"]).read()
    assert "%%PREFIX%%" not in rc and 'procname="/usr/local/sbin/colibri-daemon"' in rc
    assert rc.startswith("#!/bin/sh\n")


def test_freebsd_modes(freebsd_plan):
    """The modes meson will apply, from its install data (skipped if meson's own
    modules are not importable by this python)."""
    build, _ = freebsd_plan
    try:
        with open(os.path.join(build, "meson-private", "install.dat"), "rb") as f:
            data = pickle.load(f)
    except (ImportError, ModuleNotFoundError, AttributeError) as e:
        pytest.skip("meson's install data is not readable here: %s" % e)
    modes = {t.fname.rsplit("/", 1)[-1]: t.install_mode for t in data.targets}
    helper = modes["colibri-jail-spawn"]
    assert helper is not None and helper.perms == 0o4750, helper
    assert all(m is None for n, m in modes.items() if n != "colibri-jail-spawn")
    rcd = [d for d in data.data if d.install_path.endswith("rc.d/colibri_daemon")]
    assert len(rcd) == 1 and rcd[0].install_mode.perms == 0o755
    plist = open(os.path.join(ROOT, "packaging", "freebsd", "pkg-plist")).read().splitlines()
    assert "@(root,colibri-jail,4750) libexec/colibri-jail-spawn" in plist


# ---- FreeBSD package: the helper's group is its own ----

FREEBSD = os.path.join(ROOT, "packaging", "freebsd")


def test_freebsd_package_gives_the_helper_its_own_group():
    """Finding: installed root:colibri 4750 while the socket group defaulted to colibri,
    so every board member could run the helper.  Now: group colibri-jail, created with
    the daemon's user as its only member; the socket group stays colibri; the config
    directory is root's."""
    plist = open(os.path.join(FREEBSD, "pkg-plist")).read().splitlines()
    helper = [l for l in plist if l.endswith("libexec/colibri-jail-spawn")]
    assert helper == ["@(root,colibri-jail,4750) libexec/colibri-jail-spawn"]
    confdir = [l for l in plist if l.endswith(" etc/colibri")]
    assert confdir == ["@dir(root,colibri,0750) etc/colibri"]
    manifest = open(os.path.join(FREEBSD, "+MANIFEST")).read()
    assert "groups: [colibri, colibri-jail]" in manifest
    assert "pw groupmod colibri-jail -M colibri\n" in manifest  # exactly that member
    rc = open(os.path.join(FREEBSD, "colibri_daemon.in")).read()
    assert ': "${colibri_daemon_group:=colibri}"' in rc
    # The socket group reaches the socket's directory, not the database's.
    assert '-m 0700 \\\n\t    "${colibri_daemon_dbdir}"' in rc
    make = open(os.path.join(FREEBSD, "Makefile")).read()
    assert "GROUPS=\t\tcolibri colibri-jail" in make


RC_STUBS = {
    # stat -f FORMAT FILE, FreeBSD's; answers from the environment.
    "stat": """#!/bin/sh
case "$2" in
"%Su %Lp") echo "$STUB_HELPER" ;;
"%Sg") echo "$STUB_HGROUP" ;;
"%Su") echo "$STUB_CONFOWNER" ;;
*) exit 1 ;;
esac
""",
    "pw": """#!/bin/sh
echo "$STUB_HGROUP:*:1234:$STUB_MEMBERS"
""",
}


def run_rc_check(tmp_path, **env):
    """colibri_daemon_check_helper from the rc.d script, with stand-in stat and pw."""
    rc = open(os.path.join(FREEBSD, "colibri_daemon.in")).read()
    start = rc.index("colibri_daemon_check_helper()\n{")
    func = rc[start:rc.index("\n}\n", start) + 3]
    prefix = tmp_path / "prefix"
    (prefix / "etc" / "colibri").mkdir(parents=True, exist_ok=True)
    os.chmod(prefix / "etc" / "colibri", env.pop("confmode", 0o750))
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for name, text in RC_STUBS.items():
        (stubs / name).write_text(text)
        os.chmod(stubs / name, 0o755)
    script = ('warn() { echo "warn: $*"; }\ncolibri_daemon_user=colibri\n'
              'colibri_daemon_group=colibri\n' + func.replace("%%PREFIX%%", str(prefix)) +
              "\ncolibri_daemon_check_helper\n")
    e = {"PATH": "%s:/usr/bin:/bin" % stubs, "STUB_HELPER": "root 4750",
         "STUB_HGROUP": "colibri-jail", "STUB_MEMBERS": "colibri", "STUB_CONFOWNER": "root"}
    e.update(env)
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=e,
                          timeout=30)


@pytest.mark.parametrize("env,needle", [
    ({"STUB_HGROUP": "colibri"}, "is the socket group"),
    ({"STUB_MEMBERS": "colibri,alice"}, "must hold only colibri"),
    ({"STUB_MEMBERS": ""}, "must hold only colibri"),
    ({"STUB_HELPER": "root 4755"}, "mode 4750"),
    ({"STUB_HELPER": "colibri 4750"}, "owned by root"),
    ({"STUB_CONFOWNER": "colibri"}, "must be owned by root and not writable"),
    ({"confmode": 0o770}, "must be owned by root and not writable"),
    ({"confmode": 0o752}, "must be owned by root and not writable"),
])
def test_freebsd_rc_refuses_an_unsafe_helper_setup(tmp_path, env, needle):
    r = run_rc_check(tmp_path, **env)
    assert r.returncode == 1 and needle in r.stdout, (r.returncode, r.stdout, r.stderr)


def test_freebsd_rc_accepts_the_packaged_helper_setup(tmp_path):
    r = run_rc_check(tmp_path)
    assert r.returncode == 0 and r.stdout == "", (r.stdout, r.stderr)
