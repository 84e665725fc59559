"""schemas/ against the code: the contract covers every command, argument
and event topic, the schemas are valid draft 2020-12 with resolvable $refs,
and the validator that conftest wires into every Conn can fail.

The command table is read from the source itself (the cmd_entry arrays of
src/daemon/cmd-*.c and their cmd_arg specs) and checked against the running
daemon, so a command or argument added to the code without a schema fails
here.  Event topics are the string literals given to events_emit (and to
cmd-task.c's task_reply) in src/daemon/*.c.
"""
import glob
import json
import os
import re
import socket
import threading

import jsonschema
import pytest

from conftest import ROOT, SCHEMA_BASE, SCHEMAS, Conn, SchemaCheck

DAEMON_SRC = os.path.join(ROOT, "src", "daemon")
# {name, ARG_TYPE, required[, min, max]}
ARG_RE = re.compile(r'\{\s*"([a-z_]+)"\s*,\s*(ARG_[A-Z]+)\s*,\s*([01])\s*'
                    r'(?:,\s*([^,{}]+?)\s*,\s*([^,{}]+?)\s*)?\}')
C_STRING = r'"(?:[^"\\]|\\.)*"'


def _strip_comments(text):
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def _macros(text):
    """#define NAME body (with line continuations) -> {NAME: body}."""
    out = {}
    for m in re.finditer(r"^#define\s+([A-Z_]+)[ \t]+((?:.*\\\n)*.*)$", text, flags=re.M):
        out[m.group(1)] = m.group(2).replace("\\\n", " ")
    return out


def _arrays(text, ctype):
    """static? const struct CTYPE NAME[] = {...}; -> {NAME: body}."""
    out = {}
    pat = r"(?:static\s+)?const\s+struct\s+%s\s+([a-z_]+)\[\]\s*=\s*\{(.*?)\n?\};" % ctype
    for m in re.finditer(pat, text, flags=re.S):
        out[m.group(1)] = m.group(2)
    return out


def proto_names(prefix):
    """{CONSTANT: value} of proto.h's #defines of string constants named PREFIX*."""
    proto = open(os.path.join(ROOT, "src", "common", "proto.h")).read()
    return dict(re.findall(r'^#define\s+(%s[A-Z_]+)\s+"([^"]*)"' % prefix, proto, flags=re.M))


PROTO_CMDS = proto_names("CMD_")
NAME = r"%s|\bCMD_[A-Z_]+\b" % C_STRING


def _name(text):
    """A command name as the table spells it: a string literal or a proto.h constant."""
    return json.loads(text) if text.startswith('"') else PROTO_CMDS[text]


def _entries(body):
    """(name, flags, roles, args array name) of each cmd_entry in an array body."""
    out = []
    for m in re.finditer(r'\{\s*(%s)\s*,\s*(?:(?:%s\s*)+,\s*)?([A-Z_| ]+?)\s*,\s*([A-Z0-9_| ]+?)\s*,'
                         r'\s*([a-z_]+)\s*,' % (NAME, C_STRING), body):
        out.append((_name(m.group(1)), m.group(2), m.group(3), m.group(4)))
    for m in re.finditer(r"\{\s*\.name\s*=\s*(%s)(.*?)\}" % NAME, body, flags=re.S):
        flags = re.search(r"\.flags\s*=\s*([A-Z_| ]+?)\s*,", m.group(2)).group(1)
        roles = re.search(r"\.roles\s*=\s*([A-Z0-9_| ]+?)\s*,", m.group(2))
        args = re.search(r"\.args\s*=\s*([a-z_]+)", m.group(2)).group(1)
        out.append((_name(m.group(1)), flags, roles.group(1) if roles else "", args))
    return out


def _bound(text):
    """A bound of a cmd_arg as a number (None for LLONG_MAX, "no upper bound")."""
    text = (text or "0").strip()
    return None if text == "LLONG_MAX" else int(eval(text, {}))  # digits, + - * ( ) only


def c_commands():
    """{name: {"flags": {...}, "args": [(arg, ARG_TYPE, required)]}} from the C tables."""
    cmd_c = _strip_comments(open(os.path.join(DAEMON_SRC, "cmd.c")).read())
    families = re.findall(r"\b(cmd_[a-z]+_entries)\b", cmd_c[cmd_c.index("families[]"):])
    found, seen = {}, set()
    for path in sorted(glob.glob(os.path.join(DAEMON_SRC, "cmd-*.c"))):
        text = _strip_comments(open(path).read())
        macros = _macros(text)
        arg_arrays = _arrays(text, "cmd_arg")
        for fam, body in _arrays(text, "cmd_entry").items():
            if fam not in families:
                continue
            seen.add(fam)
            for name, flags, roles, argv in _entries(body):
                spec = arg_arrays[argv]
                for mname, mbody in macros.items():
                    spec = re.sub(r"\b%s\b" % mname, mbody, spec)
                found_args = ARG_RE.findall(spec)
                args = [(a, t, r == "1") for a, t, r, _, _ in found_args]
                bounds = {a: (_bound(lo), _bound(hi)) for a, _, _, lo, hi in found_args
                          if (_bound(lo), _bound(hi)) != (0, 0)}
                assert name not in found, "command %s defined twice" % name
                found[name] = {"flags": set(re.findall(r"CMD_[A-Z]+", flags)), "args": args,
                               "bounds": bounds,
                               "roles": set(re.findall(r"\bCMD_R_[A-Z]+\b", roles)),
                               "file": os.path.basename(path)}
    assert seen == set(families), "entry arrays not found: %s" % (set(families) - seen)
    return found


def c_topics():
    """Every event topic the daemon emits, from the literals and the proto.h constants
    (EV_*) given to the emitting calls in src/daemon/*.c."""
    ev = proto_names("EV_")
    topics = set()
    for path in glob.glob(os.path.join(DAEMON_SRC, "*.c")):
        text = _strip_comments(open(path).read())
        for m in re.finditer(r"\b(events_emit|events_emit_raw|task_reply|task_reply_raw)\s*\(", text):
            call = text[m.end():text.index(";", m.end())]
            topics.update(re.findall(r'"([a-z]+\.[a-z_]+)"', call))
            topics.update(ev[c] for c in re.findall(r"\bEV_[A-Z_]+\b", call))
    return topics


def schema_files(sub):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(SCHEMAS, sub, "*.json")))


COMMANDS = c_commands()
CHECK = SchemaCheck()


# ---- coverage of the code ----


def test_the_table_parser_sees_every_family():
    files = {c["file"] for c in COMMANDS.values()}
    assert files == {os.path.basename(p) for p in glob.glob(os.path.join(DAEMON_SRC, "cmd-*.c"))}
    assert len(COMMANDS) >= 30 and "status" in COMMANDS and "spawn-agent" in COMMANDS
    # the SPAWN_ARGS macro was expanded
    assert [a for a, _, _ in COMMANDS["spawn-agent"]["args"]][:3] == ["provider", "binary", "args"]


def test_every_command_states_its_roles():
    """Roles are stated once, in the table: every entry names them, and the spawns and tenant
    commands are for admins alone (docs/protocol.md, Authentication)."""
    known = {"CMD_R_ADMIN", "CMD_R_MEMBER", "CMD_R_AGENT", "CMD_R_ALL"}
    for name, c in COMMANDS.items():
        assert c["roles"] and c["roles"] <= known, "%s states no roles (or unknown ones)" % name
    for name in ("spawn-agent", "spawn-local", "register-tenant", "list-tenants", "delete-tenant",
                 "provision-tenant"):
        assert COMMANDS[name]["roles"] == {"CMD_R_ADMIN"}, name
    for name in ("kill-agent", "agent-prompt", "agent-abort", "session-read"):
        assert COMMANDS[name]["roles"] == {"CMD_R_ADMIN", "CMD_R_MEMBER"}, name


def test_every_command_has_both_schemas():
    have = set(schema_files("commands"))
    missing = [n + s for n in COMMANDS for s in (".args.json", ".result.json") if n + s not in have]
    assert not missing, "commands without a schema: %s" % missing


def test_no_schema_for_a_command_that_does_not_exist():
    stale = [f for f in schema_files("commands")
             if re.sub(r"\.(args|result)\.json$", "", f) not in COMMANDS]
    assert not stale, stale


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_args_schema_matches_the_c_spec(name):
    """Same names, same required set, additionalProperties false, null allowed for optional
    arguments, and every wrong JSON type refused."""
    spec = COMMANDS[name]["args"]
    rel = "commands/%s.args.json" % name
    doc = CHECK.store[SCHEMA_BASE + rel]
    assert doc["type"] == "object" and doc["additionalProperties"] is False
    assert set(doc["properties"]) == {a for a, _, _ in spec}, "argument names differ from the C spec"
    assert set(doc.get("required", [])) == {a for a, _, r in spec if r}
    v = CHECK.validator(rel)
    wrong = {
        "ARG_STR": [5, True, {}, [], 1.5],
        "ARG_INT": ["5", True, {}, [], 1.5],
        "ARG_BOOL": ["true", 1, {}, []],
        "ARG_OBJ": ["x", 1, [], True],
        "ARG_ARR": ["x", 1, {}, True],
        "ARG_ID": [True, {}, [], 1.5],
        "ARG_ANY": [],
    }
    for arg, typ, _ in spec:
        prop = {"$ref": SCHEMA_BASE + rel + "#/properties/" + arg}
        pv = jsonschema.Draft202012Validator(prop, resolver=v.resolver)
        for bad in wrong[typ]:
            assert not pv.is_valid(bad), "%s.%s (%s) accepts %r" % (name, arg, typ, bad)
        if typ == "ARG_ANY":
            for good in ("x", 1, {}, [], True, None):
                assert pv.is_valid(good), "%s.%s (any) refuses %r" % (name, arg, good)
    # an unknown argument is refused, as the daemon refuses it
    assert not v.is_valid({"no_such_argument": 1})


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_arg_bounds_match_the_schema(name):
    """Every bound of the C spec (min/max of an integer, the length of a string) is the
    schema's.  (A schema may bound more: what a handler checks, as an agent id's length.)"""
    doc = CHECK.store[SCHEMA_BASE + "commands/%s.args.json" % name]
    types = {a: t for a, t, _ in COMMANDS[name]["args"]}
    for arg, prop in doc["properties"].items():
        lo_key, hi_key = ("minimum", "maximum") if types[arg] == "ARG_INT" else \
            ("minLength", "maxLength")
        if arg not in COMMANDS[name]["bounds"]:
            continue
        lo, hi = COMMANDS[name]["bounds"][arg]
        assert prop.get(lo_key, 0) == lo, "%s.%s: %s differs from the C spec" % (name, arg, lo_key)
        assert prop.get(hi_key) == hi, "%s.%s: %s differs from the C spec" % (name, arg, hi_key)


def test_the_table_is_the_daemons(daemon):
    """Each parsed name is a command of the running daemon; an invented one is not."""
    c = daemon.connect()
    for name in COMMANDS:
        r = c.request(name, {"no_such_argument": 1})
        assert not r["ok"] and r["error"]["code"] == "invalid_argument", (name, r)
        assert "no_such_argument" in r["error"]["message"]
    r = c.request("no-such-command", {})
    assert r["error"]["code"] == "unknown_command"


def test_every_event_topic_has_a_schema():
    topics = c_topics()
    assert {"task.created", "agent.state", "vault.provisioned", "skills.reloaded"} <= topics
    have = {f[:-5] for f in schema_files("events")}
    assert topics - have == set(), "topics without a schema"
    assert have - topics == set(), "schemas for topics the daemon never emits"


def test_error_codes_are_proto_h():
    proto = open(os.path.join(ROOT, "src", "common", "proto.h")).read()
    codes = set(re.findall(r'#define ERR_[A-Z_]+\s+"([a-z_]+)"', proto))
    defs = CHECK.store[SCHEMA_BASE + "defs.json"]["$defs"]
    assert set(defs["error_code"]["enum"]) == codes and len(codes) == 9


def test_cli_schema_for_every_verb():
    src = open(os.path.join(ROOT, "src", "client", "cli-verbs.c")).read()
    table = src[src.index("const struct cli_verb cli_verbs[]"):]
    verbs = re.findall(r'\{"([a-z-]+)",\s*(?:NULL|"[a-z-]+"|CMD_[A-Z_]+)', table)
    assert len(verbs) >= 30
    have = {f[:-5] for f in schema_files("cli")}
    assert set(verbs) == have


# ---- the schemas themselves ----


def _refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


@pytest.mark.parametrize("rel", sorted(
    os.path.relpath(p, SCHEMAS) for p in glob.glob(os.path.join(SCHEMAS, "**", "*.json"),
                                                   recursive=True)))
def test_schema_is_valid_and_its_refs_resolve(rel):
    doc = json.load(open(os.path.join(SCHEMAS, rel)))
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == SCHEMA_BASE + rel, "the $id must be the file's place under schemas/"
    jsonschema.Draft202012Validator.check_schema(doc)
    resolver = jsonschema.RefResolver(doc["$id"], doc, store=CHECK.store)
    for ref in _refs(doc):
        with resolver.resolving(ref) as target:
            assert isinstance(target, (dict, bool)), ref
    assert "title" in doc or "description" in doc


# ---- the check can fail ----


def _raises(rel, value, where):
    with pytest.raises(AssertionError) as e:
        CHECK.check(rel, value, "test value")
    assert where in str(e.value), str(e.value)


def test_real_replies_pass_and_broken_ones_fail(daemon):
    c = daemon.connect()
    status = c.call("status")
    task = c.call("task-create", title="t", depends_on=[])
    CHECK.check("commands/status.result.json", status, "status")
    _raises("commands/status.result.json", dict(status, pid=str(status["pid"])), "at pid")
    _raises("commands/status.result.json", {k: v for k, v in status.items() if k != "counts"},
            "counts")
    _raises("commands/task-show.result.json", dict(task, status="sleeping"), "at status")
    _raises("commands/task-show.result.json", dict(task, depends_on=["1"]), "depends_on/0")
    _raises("commands/task-list.result.json", {"items": [dict(task, id=0)], "next": 0, "more": False},
            "items/0/id")
    _raises("envelope.json", {"id": 1, "ok": False, "error": {"code": "oops", "message": "m"}},
            "error/code")
    _raises("envelope.json", {"id": 1, "ok": True}, "(top)")
    _raises("envelope.json", {"id": 1.5, "ok": True, "result": {}}, "id")
    _raises("commands/task-create.args.json", {"title": "x", "labels": []}, "(top)")
    _raises("commands/task-create.args.json", {"title": "x", "tags": ["a b"]}, "tags/0")
    _raises("commands/task-list.args.json", {"status": "finished"}, "status")
    _raises("envelope.json#/$defs/event_line", {"event": "task.created", "seq": 0, "ts": 1,
                                                 "data": {}}, "seq")
    _raises("events/agent.state.json", {"id": "a", "from": "idle", "to": "asleep", "reason": "r",
                                        "cause": "c", "at_ms": 1}, "to")


class BrokenDaemon:
    """A socket that answers every request with reply(request): a stand-in daemon
    whose replies break the contract, to show Conn's check is wired in."""

    def __init__(self, path, reply):
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.reply = reply
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        conn, _ = self.srv.accept()
        with conn:
            buf = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    for out in self.reply(json.loads(line)):
                        conn.sendall((json.dumps(out) + "\n").encode())

    def close(self):
        self.srv.close()


def test_conn_rejects_a_broken_reply(tmp_path, daemon):
    good = daemon.call("status")
    path = str(tmp_path / "broken.sock")

    def reply(req):
        if req["cmd"] == "status":
            return [{"id": req["id"], "ok": True, "result": dict(good, pid=str(good["pid"]))}]
        if req["cmd"] == "subscribe":
            return [{"id": req["id"], "ok": True, "result": {"seq": 0}},
                    {"event": "task.created", "seq": 1, "ts": 1, "data": {"id": "one"}}]
        if req["cmd"] == "task-create":  # accepted although the contract refuses the args
            return [{"id": req["id"], "ok": True, "result": good}]
        return [{"id": req["id"], "ok": False, "error": {"code": "nope", "message": "x"}}]

    srv = BrokenDaemon(path, reply)
    try:
        c = Conn(path)
        with pytest.raises(AssertionError, match=r"status.result.json at pid"):
            c.call("status")
        with pytest.raises(AssertionError, match=r"envelope.json at error/code"):
            c.request("task-show", {"id": 1})
        with pytest.raises(AssertionError, match=r"task-create.result.json"):
            c.call("task-create", title="t")
        c.call("subscribe", topics=["task."])
        with pytest.raises(AssertionError, match=r"events/task.created.json"):
            c.next_event(timeout=5)
        c.close()
    finally:
        srv.close()


def test_args_that_break_the_contract_are_caught_when_accepted():
    """An ok reply to args the schema refuses means the daemon accepted what the contract
    forbids (or the schema is too strict): either way the check says so."""
    reply = {"id": 1, "ok": True, "result": {"seq": 0}}
    CHECK.check_reply(reply, "subscribe", {"since": 0})
    with pytest.raises(AssertionError, match="args of subscribe"):
        CHECK.check_reply(reply, "subscribe", {"since": -1})
    # a refused request's args are not checked: tests send bad args on purpose
    CHECK.check_reply({"id": 1, "ok": False, "error": {"code": "invalid_argument",
                                                       "message": "m"}}, "subscribe",
                      {"since": "x"})
