"""Operator documentation and packaging files: lint clean and consistent.

- every man page in man/ passes `mandoc -T lint -W warning` with no output;
- the FreeBSD rc.d script and every shell script in the repository
  (tracked files named *.sh or starting with a #!/bin/sh line, and .ci/run)
  pass shellcheck as POSIX sh;
- the systemd unit parses (sections, Key=value lines, known keys, booleans,
  absolute paths), as do the tmpfiles.d, sysusers.d and newsyslog entries
  (systemd-analyze is not available here);
- every doc README.md names exists, every command of the daemon's table and
  every event topic it emits appears in docs/protocol.md, and every man page
  the design names is present.
"""
import glob
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT
from test_schemas import COMMANDS, c_topics

MAN_PAGES = ["colibri-daemon.8", "colibri.1", "colibri-glasspane.1", "colibri-mcp.1",
             "colibri-jail-spawn.8"]


def tracked_files():
    p = subprocess.run(["git", "-C", ROOT, "ls-files"], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("not a git checkout")
    return [f for f in p.stdout.splitlines() if os.path.isfile(os.path.join(ROOT, f))]


def shell_scripts():
    out = []
    for f in tracked_files():
        if "node_modules/" in f:
            continue
        path = os.path.join(ROOT, f)
        with open(path, "rb") as fp:
            first = fp.readline()
        if f.endswith(".sh") or f == ".ci/run" or f.endswith("colibri_daemon.in") or \
                re.match(rb"#!\s*/bin/sh\b|#!\s*/usr/bin/env\s+sh\b", first):
            out.append(f)
    return sorted(out)


# ---- man pages ----


@pytest.mark.skipif(shutil.which("mandoc") is None, reason="needs mandoc")
@pytest.mark.parametrize("page", sorted(os.path.basename(p) for p in
                                        glob.glob(os.path.join(ROOT, "man", "*.[1-9]"))))
def test_man_page_lints_clean(page):
    p = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", os.path.join(ROOT, "man", page)],
                       capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == "", p.stdout + p.stderr
    text = open(os.path.join(ROOT, "man", page)).read()
    name, section = page.rsplit(".", 1)
    assert re.search(r"^\.Dt %s %s$" % (re.escape(name.upper()), section), text, re.M), \
        "the .Dt line must name the page"


def test_every_man_page_exists():
    missing = [p for p in MAN_PAGES if not os.path.exists(os.path.join(ROOT, "man", p))]
    assert not missing


# ---- shell ----


def test_shell_scripts_are_found():
    found = shell_scripts()
    assert "packaging/freebsd/colibri_daemon.in" in found and ".ci/run" in found
    assert "scripts/deps.sh" in found


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs shellcheck")
@pytest.mark.parametrize("script", shell_scripts())
def test_shellcheck(script):
    p = subprocess.run(["shellcheck", "-s", "sh", "-x", os.path.join(ROOT, script)],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr


def test_rc_script_contract():
    rc = open(os.path.join(ROOT, "packaging", "freebsd", "colibri_daemon.in")).read()
    for var in ("colibri_daemon_enable", "colibri_daemon_user", "colibri_daemon_group",
                "colibri_daemon_dbdir", "colibri_daemon_rundir", "colibri_daemon_provider_env"):
        assert re.search(r'^: "\$\{%s:=[^}]*\}"$' % var, rc, re.M), var + " has no default"
    assert "rcvar=colibri_daemon_enable" in rc and 'run_rc_command "$1"' in rc
    assert "%%PREFIX%%/sbin/colibri-daemon" in rc


# ---- systemd, tmpfiles, sysusers, newsyslog ----

UNIT_KEYS = {
    "Unit": {"Description", "Documentation", "After", "Before", "Wants", "Requires"},
    "Service": {
        "Type", "User", "Group", "ExecStart", "ExecReload", "ExecStop", "KillMode",
        "KillSignal", "TimeoutStopSec", "Restart", "RestartSec", "Environment",
        "EnvironmentFile", "RuntimeDirectory", "RuntimeDirectoryMode", "StateDirectory",
        "StateDirectoryMode", "ConfigurationDirectory", "LogsDirectory", "UMask", "LimitNOFILE",
        "NoNewPrivileges", "ProtectSystem", "ProtectHome", "ReadWritePaths", "PrivateTmp",
        "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
        "ProtectControlGroups", "ProtectClock", "ProtectHostname", "RestrictSUIDSGID",
        "RestrictRealtime", "RestrictNamespaces", "LockPersonality", "MemoryDenyWriteExecute",
        "SystemCallArchitectures", "SystemCallFilter", "RestrictAddressFamilies",
        "CapabilityBoundingSet", "AmbientCapabilities", "DevicePolicy", "Delegate"},
    "Install": {"WantedBy", "RequiredBy", "Alias"},
}
BOOL_KEYS = {"NoNewPrivileges", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
             "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock",
             "ProtectHostname", "RestrictSUIDSGID", "RestrictRealtime", "LockPersonality",
             "MemoryDenyWriteExecute", "Delegate"}
REPEATABLE = {"Environment", "ReadWritePaths", "After", "Wants", "ExecStart", "SystemCallFilter"}


def parse_unit(text):
    """{section: [(key, value)]}; raises AssertionError on a line that does not parse."""
    sections, cur = {}, None
    lines = text.replace("\\\n", " ").splitlines()
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        m = re.fullmatch(r"\[([A-Za-z]+)\]", s)
        if m:
            cur = m.group(1)
            assert cur not in sections, "section [%s] twice" % cur
            sections[cur] = []
            continue
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)=(.*)", s)
        assert m and cur is not None, "line %d does not parse: %r" % (n, line)
        sections[cur].append((m.group(1), m.group(2)))
    return sections


def test_unit_file_parses():
    unit = parse_unit(open(os.path.join(ROOT, "packaging", "linux", "colibri.service")).read())
    assert set(unit) == {"Unit", "Service", "Install"}
    for sec, pairs in unit.items():
        keys = [k for k, _ in pairs]
        for k, v in pairs:
            assert k in UNIT_KEYS[sec], "unknown key %s in [%s]" % (k, sec)
            assert v.strip() != "", "%s is empty" % k
            if k in BOOL_KEYS:
                assert v in ("yes", "no", "true", "false", "on", "off", "1", "0"), (k, v)
            if k in ("ExecStart", "ExecReload", "ExecStop"):
                assert v.lstrip("-@:+!").startswith("/"), "%s must be an absolute path" % k
            if k in ("ReadWritePaths",):
                assert all(p.lstrip("-").startswith("/") for p in v.split()), (k, v)
            if k.endswith("DirectoryMode") or k == "UMask":
                assert re.fullmatch(r"0?[0-7]{3,4}", v), (k, v)
            if k.endswith("Sec"):
                assert re.fullmatch(r"[0-9]+(ms|s|min)?", v), (k, v)
        dup = {k for k in keys if keys.count(k) > 1} - REPEATABLE
        assert not dup, "repeated keys %s in [%s]" % (dup, sec)
    svc = dict(unit["Service"])
    assert svc["User"] == "colibri" and svc["Group"] == "colibri"
    assert svc["ExecStart"].split()[0].endswith("/colibri-daemon")
    assert "--foreground" in svc["ExecStart"].split()
    assert svc["Type"] in ("simple", "exec", "notify")
    assert dict(unit["Install"])["WantedBy"] == "multi-user.target"


def test_tmpfiles_and_sysusers_parse():
    tmpfiles = open(os.path.join(ROOT, "packaging", "linux", "colibri.tmpfiles")).read()
    dirs = {}
    for line in tmpfiles.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split()
        assert len(f) in (6, 7) and f[0] in ("d", "D", "z", "Z", "f", "L"), line
        assert f[1].startswith("/") and re.fullmatch(r"0[0-7]{3}", f[2]), line
        dirs[f[1]] = (f[2], f[3], f[4])
    assert dirs["/run/colibri"][0] == "0750" and dirs["/var/lib/colibri"][1] == "colibri"
    sysusers = open(os.path.join(ROOT, "packaging", "linux", "colibri.sysusers")).read()
    kinds = set()
    for line in sysusers.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = re.fullmatch(r'([ugmr])\s+(\S+)\s+(\S+)(?:\s+("[^"]*"|-)(?:\s+(\S+)(?:\s+(\S+))?)?)?',
                         line.strip())
        assert m, line
        kinds.add((m.group(1), m.group(2)))
    assert {("u", "colibri"), ("g", "colibri")} <= kinds


def test_newsyslog_entry_parses():
    text = open(os.path.join(ROOT, "packaging", "freebsd", "newsyslog-colibri.conf")).read()
    entries = [l.split() for l in text.splitlines() if l.strip() and not l.startswith("#")]
    assert len(entries) == 1
    f = entries[0]
    assert f[0].startswith("/var/log/") and re.fullmatch(r"[a-z_]+:[a-z_]+", f[1])
    assert re.fullmatch(r"[0-7]{3}", f[2]) and f[3].isdigit()
    assert f[4] == "*" or f[4].isdigit()
    pid = [x for x in f if x.endswith(".pid")]
    rc = open(os.path.join(ROOT, "packaging", "freebsd", "colibri_daemon.in")).read()
    assert pid and pid[0] == "/var/run/colibri/colibri_daemon.pid"
    assert 'pidfile="${colibri_daemon_rundir}/colibri_daemon.pid"' in rc
    assert f[-1] == "1", "the daemon reopens its log on SIGHUP (signal 1)"


# ---- docs ----


def test_docs_named_in_readme_exist():
    readme = open(os.path.join(ROOT, "README.md")).read()
    named = set(re.findall(r"\bdocs/[A-Za-z0-9_./-]+\.md\b", readme))
    assert named, "README.md names no doc"
    missing = sorted(d for d in named if not os.path.exists(os.path.join(ROOT, d)))
    assert not missing, "README.md names missing docs: %s" % missing


def test_every_command_is_in_protocol_md():
    doc = open(os.path.join(ROOT, "docs", "protocol.md")).read()
    missing = sorted(c for c in COMMANDS if not re.search(r"`%s[ `]" % re.escape(c), doc))
    assert not missing, "commands missing from docs/protocol.md: %s" % missing


def test_every_event_topic_is_in_protocol_md():
    doc = open(os.path.join(ROOT, "docs", "protocol.md")).read()
    missing = sorted(t for t in c_topics() if "`%s`" % t not in doc)
    assert not missing, "event topics missing from docs/protocol.md: %s" % missing


def test_every_error_code_is_in_protocol_md():
    doc = open(os.path.join(ROOT, "docs", "protocol.md")).read()
    proto = open(os.path.join(ROOT, "src", "common", "proto.h")).read()
    for code in re.findall(r'#define ERR_[A-Z_]+\s+"([a-z_]+)"', proto):
        assert "| `%s` |" % code in doc, code
