"""The protocol in one place: src/common/proto.h names every command and event
topic, and the command table, the running daemon, schemas/ and
docs/protocol.md list exactly the same ones.

- commands: proto.h's CMD_* constants, the cmd_entry tables of
  src/daemon/cmd-*.c (parsed by test_schemas.c_commands, each entry naming its
  command through a constant), the daemon (each name is a command it knows),
  schemas/commands/NAME.{args,result}.json and the `NAME {…}` forms of the
  Commands section of docs/protocol.md;
- events: proto.h's EV_* constants, the topics the daemon emits (test_schemas.
  c_topics), schemas/events/TOPIC.json, the topic list of the Events section
  of docs/protocol.md and the rows of its data table;
- outside proto.h no source file spells a topic or a command name as a bare
  string where it names one on the wire.
"""
import glob
import os
import re

from conftest import ROOT, SCHEMAS
from test_schemas import COMMANDS, c_topics, proto_names

DOC = open(os.path.join(ROOT, "docs", "protocol.md")).read()
CMDS = proto_names("CMD_")
TOPICS = {k: v for k, v in proto_names("EV_").items() if not k.startswith("EV_PREFIX_")}
# The spawner is being rewritten on another branch; its topics switch to EV_* after the merge.
def _section(title, next_title):
    start = DOC.index("\n## %s" % title)
    return DOC[start:DOC.index("\n## %s" % next_title, start)] if next_title else DOC[start:]


def _schema_names(sub, suffix_re):
    return {re.sub(suffix_re, "", os.path.basename(p))
            for p in glob.glob(os.path.join(SCHEMAS, sub, "*.json"))}


def test_constants_are_unique_and_well_formed():
    assert len(set(CMDS.values())) == len(CMDS) >= 30
    assert len(set(TOPICS.values())) == len(TOPICS) == 23
    for k, v in CMDS.items():
        assert k == "CMD_" + v.upper().replace("-", "_"), k
    for k, v in TOPICS.items():
        assert k == "EV_" + v.upper().replace(".", "_"), k


def test_commands_table_schemas_and_docs_agree():
    names = set(CMDS.values())
    assert set(COMMANDS) == names, "table vs proto.h"
    assert _schema_names("commands", r"\.(args|result)\.json$") == names, "schemas vs proto.h"
    doc = set(re.findall(r"`([a-z]+(?:-[a-z]+)*) \{", _section("Commands", None)))
    assert doc == names, "docs/protocol.md vs proto.h: %s" % sorted(doc ^ names)


def test_the_table_names_commands_through_proto_h():
    for path in glob.glob(os.path.join(ROOT, "src", "daemon", "cmd-*.c")):
        text = open(path).read()
        table = text[text.index("const struct cmd_entry"):]
        assert not re.search(r'\{\s*"[a-z-]+"\s*,|\.name\s*=\s*"', table), \
            "%s names a command with a bare string" % os.path.basename(path)


def test_the_daemon_knows_every_command_and_no_other(daemon):
    c = daemon.connect()
    for name in CMDS.values():
        r = c.request(name, {"no_such_argument": 1})
        assert r["error"]["code"] == "invalid_argument", (name, r)
    assert c.request("task-nothing", {})["error"]["code"] == "unknown_command"


def test_events_emitted_schemas_and_docs_agree():
    topics = set(TOPICS.values())
    assert c_topics() == topics, "emitted vs proto.h: %s" % sorted(c_topics() ^ topics)
    assert _schema_names("events", r"\.json$") == topics, "schemas vs proto.h"
    sec = _section("Events", "Authentication")
    listed = sec[sec.index("Topics:"):sec.index("| topic |")]
    assert set(re.findall(r"`([a-z]+\.[a-z_]+)`", listed)) == topics, "docs topic list"
    rows = re.findall(r"^\|([^|]*)\|", sec[sec.index("| topic |"):], flags=re.M)
    in_table = {t for row in rows for t in re.findall(r"`([a-z]+\.[a-z_]+)`", row)}
    assert in_table == topics, "docs data table: %s" % sorted(in_table ^ topics)


def test_no_bare_topic_outside_proto_h():
    """A topic literal anywhere in src/ but proto.h is a second spelling of the
    protocol."""
    pat = re.compile(r'"(%s)"' % "|".join(re.escape(t) for t in TOPICS.values()))
    found = []
    for path in glob.glob(os.path.join(ROOT, "src", "**", "*.[ch]"), recursive=True):
        rel = os.path.relpath(path, ROOT)
        if rel == "src/common/proto.h":
            continue
        for m in pat.finditer(open(path).read()):
            found.append("%s: %s" % (rel, m.group(1)))
    assert not found, found
