"""The dispatcher (issue 18): task tags, CONFIG_DIR/dispatch.json, the
dispatch command and `colibri dispatch on|off|status`.

Tags: task-create takes `tags` (at most 16 distinct tags of 1-64 characters
of [A-Za-z0-9_.:-]), task-update replaces them, task-list filters by `tag`;
the CLI's --tag is repeatable.
"""
import json

import pytest

from conftest import CallError


# ---- task tags ----


def test_tags_create_update_list_and_cli(daemon):
    c = daemon.connect()
    a = c.call("task-create", title="a", tags=["build", "lang:c"])
    b = c.call("task-create", title="b")
    assert a["tags"] == ["build", "lang:c"] and b["tags"] == []
    assert c.call("task-show", id=a["id"])["tags"] == ["build", "lang:c"]
    assert [t["id"] for t in c.call("task-list", tag="build")["items"]] == [a["id"]]
    assert [t["id"] for t in c.call("task-list", tag="lang:c", ready=True)["items"]] == [a["id"]]
    assert c.call("task-list", tag="nope")["items"] == []
    u = c.call("task-update", id=b["id"], tags=["build"])
    assert u["tags"] == ["build"]
    assert [t["id"] for t in c.call("task-list", tag="build")["items"]] == [a["id"], b["id"]]
    assert c.call("task-update", id=a["id"], tags=[])["tags"] == []
    r = daemon.cli("task-create", "c", "--tag", "x.y", "--tag", "z_1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tags"] == ["x.y", "z_1"]
    r = daemon.cli("task-list", "--tag", "z_1", "--json")
    assert r.returncode == 0 and [t["title"] for t in json.loads(r.stdout)["items"]] == ["c"]
    r = daemon.cli("task-update", str(b["id"]), "--tag", "q", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["tags"] == ["q"]


@pytest.mark.parametrize("tags,why", [
    (["a b"], "tags[0]"), ([""], "tags[0]"), (["x" * 65], "tags[0]"), (["ok", 3], "tags[1]"),
    (["é"], "tags[0]"), (["t%d" % i for i in range(17)], "at most 16"), (["d", "d"], "twice"),
])
def test_bad_tags_are_refused(daemon, tags, why):
    c = daemon.connect()
    with pytest.raises(CallError) as e:
        c.call("task-create", title="t", tags=tags)
    assert e.value.code == "invalid_argument" and why in e.value.message, e.value.message
    t = c.call("task-create", title="u")
    with pytest.raises(CallError) as e:
        c.call("task-update", id=t["id"], tags=tags)
    assert e.value.code == "invalid_argument" and why in e.value.message
    assert c.call("task-show", id=t["id"])["tags"] == []
    assert len(c.call("task-list")["items"]) == 1  # the refused create made nothing
