# SPDX-License-Identifier: Apache-2.0
# Cedar policies on LLM calls: `policy: {files, default}` in the config,
# Action::"chat" on Model::"name" for the calling Agent::"id" (its parents
# from the agents: tree), 403 policy_denied naming the missing permission and
# the forbidding policies, audit records carrying them, `portcullis check`
# printing file:line:col for a broken policy file, and SIGHUP keeping the old
# set when the new one does not parse.
from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import BIN, assert_openai_error, base_config, free_port, model, require_binary, target

MSGS = [{"role": "user", "content": "hello"}]
AGENTS = [
    {
        "id": "acme",
        "children": [
            {"id": "research", "children": [{"id": "researcher"}]},
            {"id": "sales"},
        ],
    }
]
POLICIES = """\
// The research team may chat with any model.
@id("research-may-chat")
permit (principal in Agent::"research", action == Action::"chat", resource);

// ... but not with mock-2.
@id("no-mock-2-for-research")
forbid (principal in Agent::"research", action == Action::"chat", resource == Model::"mock-2");
"""
BROKEN = """\
@id("research-may-chat")
permit (principal in Agent::"research", action == Action::"chat", resource);
permit (principal, action ==, resource);
"""


def config(port: int, **policy) -> dict:
    return base_config(
        port,
        models=[model("mock-1", target("mock")), model("mock-2", target("mock"))],
        identity={"required": False},
        agents=AGENTS,
        policy={"files": ["policies/*.cedar"], "default": "deny", **policy},
    )


def cli(gw, *args: str) -> subprocess.CompletedProcess:
    require_binary()
    cmd = [str(BIN), args[0]]
    rest = list(args[1:])
    if args[0] in ("keys", "policy"):
        cmd.append(rest.pop(0))
    cmd += ["-c", str(gw.config_path), *rest]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def create_key(gw, agent: str) -> str:
    p = cli(gw, "keys", "create", "--agent", agent)
    assert p.returncode == 0, p.stderr
    key = p.stdout.strip()
    assert key.startswith("pcl_"), key
    return key


def chat(gw, key: str | None, model_name: str = "mock-1") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with gw.http() as h:
        return h.post(
            "/v1/chat/completions", json={"model": model_name, "messages": MSGS}, headers=headers
        )


def wait_until(pred, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def audit_rows(gw) -> list[dict]:
    db = sqlite3.connect(gw.dir / "portcullis.db", timeout=10)
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM audit ORDER BY id")]
    db.close()
    return rows


@pytest.fixture
def pgw(start_gateway):
    gw = start_gateway(config(free_port()), start=False)
    (gw.dir / "policies").mkdir()
    (gw.dir / "policies" / "main.cedar").write_text(POLICIES)
    gw.keys = {a: create_key(gw, a) for a in ("researcher", "sales")}
    return gw.start()


def test_permitted_agent_gets_200(pgw):
    r = chat(pgw, pgw.keys["researcher"])
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]


def test_agent_without_permit_gets_403_naming_the_permission(pgw):
    r = chat(pgw, pgw.keys["sales"])
    err = assert_openai_error(r, 403)
    assert err["code"] == "policy_denied"
    assert err["type"] == "permission_error"
    assert 'Action::"chat" on Model::"mock-1" for Agent::"sales"' in err["message"]
    # anonymous callers are Agent::"anonymous", and nothing permits them
    err = assert_openai_error(chat(pgw, None), 403)
    assert err["code"] == "policy_denied"
    assert 'for Agent::"anonymous"' in err["message"]


def test_forbid_wins_over_permit_and_is_named_and_audited(pgw):
    r = chat(pgw, pgw.keys["researcher"], "mock-2")
    err = assert_openai_error(r, 403)
    assert err["code"] == "policy_denied"
    assert 'Action::"chat" on Model::"mock-2" for Agent::"researcher"' in err["message"]
    assert "no-mock-2-for-research" in err["message"]
    assert "research-may-chat" not in err["message"]

    def denied():
        return [
            row
            for row in audit_rows(pgw)
            if row["agent"] == "researcher" and row["status"] == 403
        ]

    wait_until(lambda: denied())
    row = denied()[0]
    assert row["decision"] == "deny"
    assert "no-mock-2-for-research" in row["reason"]


def test_default_allow_lets_through_what_no_forbid_stops(start_gateway):
    gw = start_gateway(config(free_port(), default="allow"), start=False)
    (gw.dir / "policies").mkdir()
    (gw.dir / "policies" / "main.cedar").write_text(POLICIES)
    key = create_key(gw, "researcher")
    gw.start()
    assert chat(gw, None).status_code == 200  # no permit, no forbid: allowed
    err = assert_openai_error(chat(gw, key, "mock-2"), 403)
    assert "no-mock-2-for-research" in err["message"]


def test_no_policy_section_changes_nothing(start_gateway):
    cfg = config(free_port())
    del cfg["policy"]
    gw = start_gateway(cfg)
    assert chat(gw, None, "mock-2").status_code == 200


def test_check_prints_file_line_col_for_a_broken_policy(tmp_path):
    require_binary()
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "bad.cedar").write_text(BROKEN)
    cfg_path = tmp_path / "gw.yaml"
    cfg_path.write_text(yaml.safe_dump(config(free_port()), sort_keys=False))
    p = subprocess.run([str(BIN), "check", str(cfg_path)], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert f"{tmp_path}/policies/bad.cedar:3:" in out, out
    line = next(l for l in out.splitlines() if "bad.cedar:3:" in l)
    col = line.split("bad.cedar:3:", 1)[1].split(":", 1)[0]
    assert col.isdigit() and int(col) > 1, line

    # a glob that matches nothing is a config error too
    cfg_path.write_text(
        yaml.safe_dump(config(free_port(), files=["nowhere/*.cedar"]), sort_keys=False)
    )
    p = subprocess.run([str(BIN), "check", str(cfg_path)], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "no policy file matches" in p.stdout + p.stderr


def test_sighup_with_a_broken_policy_keeps_the_old_set(pgw):
    policy = pgw.dir / "policies" / "main.cedar"
    assert chat(pgw, pgw.keys["sales"]).status_code == 403
    n = len(pgw.log_records())
    policy.write_text(BROKEN)
    pgw.signal(signal.SIGHUP)
    rec = pgw.wait_for_log(lambda r: "reload rejected" in json.dumps(r), since=n)
    assert "main.cedar:3:" in json.dumps(rec)
    # the old set is still in force: research may chat, mock-2 is still forbidden
    assert chat(pgw, pgw.keys["researcher"]).status_code == 200
    assert chat(pgw, pgw.keys["researcher"], "mock-2").status_code == 403
    assert chat(pgw, None).status_code == 403

    # a valid set is picked up by the next reload
    policy.write_text(
        POLICIES
        + '\n@id("sales-may-chat")\n'
        + 'permit (principal == Agent::"sales", action == Action::"chat", resource);\n'
    )
    pgw.signal(signal.SIGHUP)
    wait_until(lambda: chat(pgw, pgw.keys["sales"]).status_code == 200)


def test_policy_file_edits_reload_without_a_signal(pgw):
    """The gateway watches its config and policy files: saving a policy file
    (in place, or the editor way: write a temp file and rename it over) is
    enough; a broken save is rejected with file:line:col and the old set stays."""
    pdir = pgw.dir / "policies"
    assert chat(pgw, pgw.keys["sales"]).status_code == 403

    # a new file in the policy directory, written then renamed into place
    tmp = pdir / ".sales.tmp"
    tmp.write_text('@id("sales-may-chat")\npermit (principal == Agent::"sales", action, resource);\n')
    tmp.replace(pdir / "sales.cedar")
    wait_until(lambda: chat(pgw, pgw.keys["sales"]).status_code == 200)

    # a broken edit in place: rejected, named, and the running set stays
    n = len(pgw.log_records())
    (pdir / "sales.cedar").write_text(BROKEN)
    rec = pgw.wait_for_log(lambda r: "reload rejected" in json.dumps(r), since=n)
    assert "sales.cedar:3:" in json.dumps(rec)
    assert chat(pgw, pgw.keys["sales"]).status_code == 200
    assert chat(pgw, pgw.keys["researcher"], "mock-2").status_code == 403

    # removing the file takes the permit away again
    (pdir / "sales.cedar").unlink()
    wait_until(lambda: chat(pgw, pgw.keys["sales"]).status_code == 403)


def test_policy_eval_with_the_config_decides_as_the_gateway(pgw):
    """`policy eval -c` uses the config's policy set and its entities: the
    researcher is permitted only through its parent Agent::"research"."""
    def ev(principal, model_name, *extra):
        return cli(pgw, "policy", "eval", "--principal", f'Agent::"{principal}"',
                   "--action", 'Action::"chat"', "--resource", f'Model::"{model_name}"', *extra)

    p = ev("researcher", "mock-1")
    assert p.returncode == 0, p.stderr
    assert "decision: allow" in p.stdout and "research-may-chat" in p.stdout
    p = ev("researcher", "mock-2")
    assert p.returncode == 1, p.stderr
    assert "decision: deny" in p.stdout and "no-mock-2-for-research" in p.stdout
    p = ev("sales", "mock-1")
    assert p.returncode == 1 and "determining policies: (none)" in p.stdout
    # the gateway agrees
    assert chat(pgw, pgw.keys["sales"]).status_code == 403
    # policy files and -c do not mix
    p = ev("sales", "mock-1", "policies/main.cedar")
    assert p.returncode == 2 and "-c takes the policies" in p.stderr


def test_example_policy_config(start_gateway):
    """examples/policy.yaml as shipped: anonymous callers get the mock model only."""
    examples = Path(__file__).resolve().parents[2] / "examples"
    cfg = yaml.safe_load((examples / "policy.yaml").read_text())
    cfg["listen"] = f"127.0.0.1:{free_port()}"
    cfg["workers"] = 1
    gw = start_gateway(cfg, start=False)
    shutil.copytree(examples / "policies", gw.dir / "policies")
    key = create_key(gw, "researcher")
    gw.start()
    assert chat(gw, None).status_code == 200
    err = assert_openai_error(chat(gw, None, "gpt-4o-mini"), 403)
    assert "no-anonymous-paid-models" in err["message"]
    assert chat(gw, key, "gpt-4o-mini").status_code == 200


DELEGATION = """\
// Agents under research may hand work to researcher, and only with a small budget.
@id("research-may-delegate")
permit (principal in Agent::"research", action == Action::"delegate", resource == Agent::"researcher")
when { context has budget_micro_usd && context.budget_micro_usd <= 5000000 };

// Nobody delegates to sales.
@id("never-to-sales")
forbid (principal, action == Action::"delegate", resource == Agent::"sales");
"""


def delegate(gw, subject: str, audience: str, **params) -> httpx.Response:
    data = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": subject,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": audience,
        **params,
    }
    with gw.http() as h:
        return h.post("/oauth/token", data=data)


def test_delegation_is_decided_by_cedar_delegate_action(start_gateway):
    agents = [
        {
            "id": "acme",
            "children": [
                {"id": "research", "children": [{"id": "researcher"}, {"id": "lead"}]},
                {"id": "sales"},
            ],
        }
    ]
    cfg = config(free_port())
    cfg["agents"] = agents
    gw = start_gateway(cfg, start=False)
    (gw.dir / "policies").mkdir()
    (gw.dir / "policies" / "main.cedar").write_text(POLICIES + DELEGATION)
    lead, sales = create_key(gw, "lead"), create_key(gw, "sales")
    gw.start()

    # Permitted: lead (in research) -> researcher with a budget under the cap.
    r = delegate(gw, lead, "researcher", budget_usd="2.5")
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer"

    # The same delegation asking for more budget than the policy allows: no permit applies.
    r = delegate(gw, lead, "researcher", budget_usd="50")
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["error"] == "access_denied"
    assert 'no policy permits Action::"delegate" on Agent::"researcher"' in body["error_description"]
    assert 'Agent::"lead"' in body["error_description"]

    # A forbid wins and is named.
    r = delegate(gw, lead, "sales", budget_usd="1")
    assert r.status_code == 403
    assert "never-to-sales" in r.json()["error_description"]

    # sales is outside research: no permit.
    r = delegate(gw, sales, "researcher", budget_usd="1")
    assert r.status_code == 403 and r.json()["error"] == "access_denied"

    # Each decision is audited: one allow naming the permitting policy, three denials.
    def rows():
        return [r for r in audit_rows(gw) if r["action"] == "token_exchange"]

    wait_until(lambda: len(rows()) == 4)
    got = rows()
    allow = [r for r in got if r["decision"] == "allow"]
    deny = [r for r in got if r["decision"] == "deny"]
    assert len(allow) == 1 and "research-may-delegate" in allow[0]["reason"]
    assert len(deny) == 3 and all(r["status"] == 403 for r in deny)
    assert any("never-to-sales" in r["reason"] for r in deny)
    assert all(r["resource"] in ("agent:researcher", "agent:sales") for r in got)


def test_the_context_names_the_api_so_a_policy_can_tell_embeddings_from_chat(start_gateway):
    cfg = config(free_port())
    gw = start_gateway(cfg, start=False)
    (gw.dir / "policies").mkdir()
    (gw.dir / "policies" / "main.cedar").write_text(
        POLICIES
        + """
@id("sales-embeddings-only")
permit (principal == Agent::"sales", action == Action::"chat", resource == Model::"mock-1")
when { context.api == "embeddings" };
"""
    )
    key = create_key(gw, "sales")
    gw.start()
    with gw.http() as h:
        auth = {"Authorization": f"Bearer {key}"}
        r = h.post("/v1/embeddings", headers=auth, json={"model": "mock-1", "input": "x"})
        assert r.status_code != 403, r.text
        r = h.post("/v1/chat/completions", headers=auth, json={"model": "mock-1", "messages": MSGS})
        err = assert_openai_error(r, 403)
        assert err["code"] == "policy_denied"
