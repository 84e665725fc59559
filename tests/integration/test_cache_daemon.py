"""The daemon's side of issue 8: skills catalog commands, prompt assembly
with drift per session, usage metering from spawned agents, host status."""
import json
import os
import time

import pytest

from conftest import CallError, bin_path


def write_skill(root, folder, text):
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    (d / "SKILL.md").write_text(text)


@pytest.fixture
def skills_daemon(tmp_path, make_daemon):
    root = tmp_path / "skills"
    write_skill(root, "review", "---\nname: review\ndescription: Review a change\n"
                "tags: [code, review]\n---\n# Review\nRead 100% of the diff.\n")
    write_skill(root, "deploy", "---\nname: deploy\ndescription: Ship it\nversion: 2\n---\nSteps.\n")
    write_skill(root, "broken", "---\nname: broken\ndescription: no closing line\n")
    write_skill(root, "noname", "---\ndescription: nameless\n---\nbody\n")
    env = dict(os.environ, COLIBRI_SKILLS_DIRS=str(root))
    return make_daemon(env=env), root


def test_skills_scanned_at_start_with_per_file_errors(skills_daemon):
    d, root = skills_daemon
    names = [s["name"] for s in d.call("skills-list")["items"]]
    assert names == ["deploy", "review"]
    r = d.call("skills-reload")
    assert r["count"] == 2
    bad = sorted(os.path.basename(os.path.dirname(e["path"])) for e in r["errors"])
    assert bad == ["broken", "noname"]
    assert all(":" in e["message"] for e in r["errors"])


def test_skill_show_and_search(skills_daemon):
    d, root = skills_daemon
    s = d.call("skill-show", name="review")
    assert s["description"] == "Review a change"
    assert "100% of the diff" in s["body"]
    assert s["fields"]["tags"] == "code, review"
    assert [x["name"] for x in d.call("skills-list", query="SHIP")["items"]] == ["deploy"]
    # LIKE wildcards in a query are literal characters
    assert [x["name"] for x in d.call("skills-list", query="100%")["items"]] == ["review"]
    assert d.call("skills-list", query="_")["items"] == []
    with pytest.raises(CallError) as e:
        d.call("skill-show", name="nope")
    assert e.value.code == "not_found"


def test_skills_reload_sees_changes(skills_daemon):
    d, root = skills_daemon
    write_skill(root, "fresh", "---\nname: fresh\ndescription: New one\n---\n")
    (root / "deploy" / "SKILL.md").unlink()
    assert d.call("skills-reload")["count"] == 2
    assert [s["name"] for s in d.call("skills-list")["items"]] == ["fresh", "review"]


def test_prompt_assemble_is_byte_stable_and_reports_drift(daemon):
    args = dict(system="You are a careful engineer.", tools=[{"name": "bash", "b": 1, "a": 2}],
                context={"repo": "colibri", "branch": "main"}, turn="first")
    a = daemon.call("prompt-assemble", dict(args, session_id="s1"))
    assert a["drift"] is None
    # the same regions 1-2 with keys in another order: identical bytes and hashes
    b = daemon.call("prompt-assemble", dict(args, session_id="s1",
                                            tools=[{"a": 2, "name": "bash", "b": 1}],
                                            context={"branch": "main", "repo": "colibri"},
                                            turn="second"))
    assert [r["sha256"] for r in a["regions"][:2]] == [r["sha256"] for r in b["regions"][:2]]
    assert a["regions"][2]["sha256"] != b["regions"][2]["sha256"]
    assert b["drift"]["stable"]["differs"] is False
    # one byte changed in region 1: the drift names its offset
    c = daemon.call("prompt-assemble", dict(args, session_id="s1",
                                            system="You are a careful engineeR.", turn="third"))
    off = c["prompt"].index("engineeR")
    assert c["drift"]["stable"]["differs"] is True
    assert c["drift"]["stable"]["offset"] == off + len("engineer") - 1
    ev = daemon.call("events-read", topics=["prompt.assembled"])["items"]
    assert len(ev) == 3 and all(len(e["data"]["hashes"]) == 3 for e in ev)


def test_prompt_assemble_refuses_bad_input(daemon):
    with pytest.raises(CallError) as e:
        daemon.call("prompt-assemble", system=5, turn="x")
    assert e.value.code == "invalid_argument"


def test_usage_from_spawned_agents(tmp_path, make_daemon):
    d = make_daemon(env=dict(os.environ, PATH=os.path.dirname(bin_path("colibri-test-agent"))
                             + ":" + os.environ["PATH"]))
    fx = os.path.join(os.environ.get("COLIBRI_FIXTURES", os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures")), "pi", "text.jsonl")
    a = d.call("spawn-local", {"binary": "colibri-test-agent", "args": ["--replay", fx]})
    deadline = time.time() + 10
    while d.call("agent-status", id=a["id"])["state"] != "done":
        assert time.time() < deadline
        time.sleep(0.05)
    # the capture's usage, summed independently
    want = {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0}
    for line in open(fx):
        ev = json.loads(line)
        if ev.get("type") == "message_end" and ev["message"].get("role") == "assistant":
            for k in want:
                want[k] += ev["message"]["usage"][k]
    u = d.call("usage", agent=a["id"])
    assert len(u["items"]) == 1
    rec = u["items"][0]
    assert rec["in_miss"] + rec["in_hit"] + rec["in_write"] == want["input"] + want["cacheRead"] + want["cacheWrite"]
    assert rec["in_hit"] == want["cacheRead"]
    assert rec["out"] == want["output"]
    assert u["total"]["out"] == want["output"]
    assert d.call("usage", agent="nobody")["items"] == []


def test_host_status_from_runtime_inventory(daemon):
    deadline = time.time() + 15
    while True:
        try:
            h = daemon.call("host-status")
            break
        except CallError as e:
            assert e.code == "unavailable" and time.time() < deadline
            time.sleep(0.1)
    assert h["cpus"] >= 1 and h["os"]
    assert daemon.call("status")["host_status"]["kernel"] == h["kernel"]


def test_missing_default_skill_dirs_are_not_errors(daemon):
    r = daemon.call("skills-reload")
    assert r["count"] == 0 and r["errors"] == [] and r["dirs"] == []


def test_missing_configured_skill_dir_is_an_error(tmp_path, make_daemon):
    d = make_daemon(env=dict(os.environ, COLIBRI_SKILLS_DIRS=str(tmp_path / "nowhere")))
    r = d.call("skills-reload")
    assert r["count"] == 0 and len(r["errors"]) == 1
