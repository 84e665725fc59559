"""The house keeps its floors: src/ reads as floors, each including only what
is on its own floor or below, and no file reaches another by a way that leads
back to itself.  No daemon runs: this reads the quoted #include lines of
src/ (docs/architecture.md, "Floors", draws the same picture).

- The graph: one node per .c file, an edge x.c -> y.c when x.c includes
  y.h (a header is the face of the .c of the same stem).  It has no cycle.
- src/common includes nothing outside src/common.  The libraries the daemon
  stands on (store, confine, glasspane, job, vault, cache, skills) include
  only themselves and src/common; nothing outside src/daemon includes it.
- src/daemon: every file is on one named floor (a new file must be placed in
  DAEMON_FLOORS below), and an include never points to a higher floor:
      top         main.c, subsys.c (start, the subsystems' table)
      server      server*.c, server-int.h, peercred*, vmsteps (a test facility)
      commands    cmd.c, cmd.h, cmd-*.c
      subsystems  spawner*, spawn-*, vault-run, sweep, session, cache,
                  inventory, skills-index, profiles, task-prompt
      event log   events, txn
      state       daemon.h (the process-wide D)
  Named besides, as the issue states them: a subsystem includes no server*.h,
  cmd.h or cmd-*; a cmd-*.c file includes no header private to another
  cmd-*.c and no server*.h.

Each failing assertion prints its violations by file name.
"""
import fnmatch
import os
import re

from conftest import ROOT

SRC = os.path.join(ROOT, "src")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

LIBRARIES = ["store", "confine", "glasspane", "job", "vault", "cache", "skills"]

# Highest first; a file's floor is the first whose patterns match its name.
DAEMON_FLOORS = [
    ("top", ["main.c", "subsys.c", "subsys.h"]),
    ("server", ["server.c", "server.h", "server-*.c", "server-int.h", "peercred*",
                "vmsteps.[ch]"]),
    ("commands", ["cmd.c", "cmd.h", "cmd-*.c", "cmd-*.h"]),
    ("subsystems", ["spawner.[ch]", "spawner-*.h", "spawn-*.[ch]", "vault-run.[ch]",
                    "sweep.[ch]", "session.[ch]", "cache.[ch]", "inventory.[ch]",
                    "skills-index.[ch]", "profiles.[ch]", "task-prompt.[ch]", "config-file.[ch]",
                    "notify.[ch]", "notify-policy.[ch]", "dispatch*.[ch]", "retention.[ch]"]),
    ("event log", ["events.[ch]", "txn.[ch]"]),
    ("state", ["daemon.h"]),
]


def _sources():
    out = []
    for d, _, files in os.walk(SRC):
        for f in files:
            if f.endswith((".c", ".h")):
                out.append(os.path.relpath(os.path.join(d, f), SRC))
    return sorted(out)


def _resolve(src, inc):
    """src/-relative path of a quoted include: beside the file, else under src/."""
    for cand in (os.path.join(os.path.dirname(src), inc), inc):
        cand = os.path.normpath(cand)
        if os.path.isfile(os.path.join(SRC, cand)):
            return cand
    return None


def _includes():
    """{file: [included file, ...]} over src/, and the includes that name no file."""
    graph, unresolved = {}, []
    for f in _sources():
        text = open(os.path.join(SRC, f), encoding="utf-8").read()
        graph[f] = []
        for inc in INCLUDE.findall(text):
            r = _resolve(f, inc)
            if r is None:
                unresolved.append("%s: \"%s\"" % (f, inc))
            else:
                graph[f].append(r)
    return graph, unresolved


GRAPH, UNRESOLVED = _includes()


def _stem(path):
    return os.path.splitext(path)[0]


def _top(path):
    return path.split(os.sep)[0]


def _edges():
    """Every include as (file, included), both src/-relative."""
    return [(f, t) for f, ts in GRAPH.items() for t in ts]


def _cycles(nodes, adj):
    """The strongly connected components of more than one node (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(adj.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def _path_in(comp, adj):
    """One closed path through a component, for the message: a -> b -> ... -> a."""
    start, seen, path = comp[0], set(), [comp[0]]
    members = set(comp)
    v = start
    while True:
        nxt = sorted(w for w in adj[v] if w in members)
        back = [w for w in nxt if w == start]
        if back and len(path) > 1:
            return " -> ".join(path + [start])
        fresh = [w for w in nxt if w not in seen and w != start]
        if not fresh:
            return " <-> ".join(comp)
        seen.add(v)
        v = fresh[0]
        path.append(v)


def _daemon_floor(path):
    """(rank, name) of a src/daemon file: 0 is the top; None if it is on no floor."""
    name = os.path.basename(path)
    for rank, (floor, patterns) in enumerate(DAEMON_FLOORS):
        if any(fnmatch.fnmatch(name, p) for p in patterns):
            return rank, floor
    return None


def _is_daemon(path):
    return _top(path) == "daemon"


def test_every_quoted_include_names_a_file():
    assert len(GRAPH) > 100
    assert not UNRESOLVED, "quoted includes that name no file under src/:\n" + \
        "\n".join(UNRESOLVED)


def _file_graph():
    """{x.c: {y.c, ...}}: x.c includes y.h and y.c exists (y.h is y.c's face).

    A header that includes another does so for its types, and a header with
    no .c of its own (an interface such as store-backend.h, or a header
    private to a group of files such as spawner-agent.h) implements nothing:
    neither adds an edge.  Their includes still answer to the floors below.
    """
    adj = {}
    for f, t in _edges():
        if not f.endswith(".c"):
            continue
        impl = _stem(t) + ".c"
        adj.setdefault(f, set())
        if impl != f and impl in GRAPH:
            adj[f].add(impl)
    return adj


def test_no_cycle_between_files():
    adj = _file_graph()
    assert len(adj) > 80
    cycles = _cycles(adj.keys(), adj)
    assert not cycles, "include cycles between files (x.c including y.h depends on y.c):\n" + \
        "\n".join(_path_in(c, adj) for c in cycles)


def test_common_includes_only_common():
    bad = ["%s includes %s" % (f, t) for f, t in _edges()
           if _top(f) == "common" and _top(t) != "common"]
    assert not bad, "src/common reaching above itself:\n" + "\n".join(bad)


def test_libraries_include_only_themselves_and_common():
    bad = ["%s includes %s" % (f, t) for f, t in _edges()
           if _top(f) in LIBRARIES and _top(t) not in (_top(f), "common")]
    assert not bad, "a library below the daemon reaching sideways or up:\n" + "\n".join(bad)


def test_nothing_outside_the_daemon_includes_it():
    bad = ["%s includes %s" % (f, t) for f, t in _edges()
           if not _is_daemon(f) and _is_daemon(t)]
    assert not bad, "files outside src/daemon including it:\n" + "\n".join(bad)


def test_every_daemon_file_is_on_a_floor():
    loose = [f for f in GRAPH if _is_daemon(f) and _daemon_floor(f) is None]
    assert not loose, "src/daemon files on no floor (place them in DAEMON_FLOORS):\n" + \
        "\n".join(loose)


def test_no_include_points_up_a_floor():
    bad = []
    for f, t in _edges():
        if not (_is_daemon(f) and _is_daemon(t)):
            continue
        ff, tf = _daemon_floor(f), _daemon_floor(t)
        if ff is not None and tf is not None and tf[0] < ff[0]:
            bad.append("%s (%s) includes %s (%s)" % (f, ff[1], t, tf[1]))
    assert not bad, "includes pointing up a floor in src/daemon:\n" + "\n".join(bad)


def _is_server_header(name):
    return fnmatch.fnmatch(name, "server*.h")


def test_subsystems_know_neither_commands_nor_server():
    bad = []
    for f, t in _edges():
        if not (_is_daemon(f) and _is_daemon(t)) or _daemon_floor(f) is None:
            continue
        if _daemon_floor(f)[1] not in ("subsystems", "event log", "state"):
            continue
        name = os.path.basename(t)
        if _is_server_header(name) or name == "cmd.h" or name.startswith("cmd-"):
            bad.append("%s includes %s" % (f, t))
    assert not bad, "subsystems reaching the commands or the server:\n" + "\n".join(bad)


def test_command_files_are_leaves():
    bad = []
    for f, t in _edges():
        name, inc = os.path.basename(f), os.path.basename(t)
        if not (_is_daemon(f) and fnmatch.fnmatch(name, "cmd-*.c")):
            continue
        if _is_server_header(inc) or (inc.startswith("cmd-") and _stem(inc) != _stem(name)):
            bad.append("%s includes %s" % (f, t))
    assert not bad, "command files reaching the server or another command file:\n" + \
        "\n".join(bad)


def test_the_floor_checks_can_fail():
    """The checks above see what they are meant to: an upward include and a cycle."""
    assert _daemon_floor("daemon/spawner.c")[1] == "subsystems"
    assert _daemon_floor("daemon/cmd-spawn.c")[1] == "commands"
    assert _daemon_floor("daemon/server-request.c")[0] < _daemon_floor("daemon/cmd.c")[0]
    assert _daemon_floor("daemon/nowhere.c") is None
    adj = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(adj.keys(), adj) == [["a", "b", "c"]]
    assert _path_in(["a", "b", "c"], adj) == "a -> b -> c -> a"
    assert _resolve("common/buf.c", "buf.h") == "common/buf.h"
    assert _resolve("daemon/cmd.c", "daemon/cmd.h") == "daemon/cmd.h"
