# SPDX-License-Identifier: Apache-2.0
# The admin listener (config `admin:`): its own address, the admin token on
# every request, and GET /admin/budgets showing the tree the gateway counts.
from __future__ import annotations

import httpx

from conftest import free_port
from test_budget import budget_config, call, cost_of
from test_identity import create_key

TOKEN = "adm-" + "7" * 24


def admin_config(token_env: str = "PORTCULLIS_ADMIN_TOKEN") -> tuple[dict, int]:
    port = free_port()
    cfg = budget_config([{
        "id": "org", "budget": {"usd_per_day": 5, "usd_total": 50},
        "children": [{"id": "bot", "budget": {"usd_total": 1}}, {"id": "idle"}],
    }])
    cfg["admin"] = {"listen": f"127.0.0.1:{port}", "token_env": token_env}
    return cfg, port


def admin_get(port: int, path: str, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=10)


def test_admin_budgets_shows_spend_and_caps_per_period(start_gateway):
    cfg, port = admin_config()
    gw = start_gateway(cfg, env={"PORTCULLIS_ADMIN_TOKEN": TOKEN})
    key = create_key(gw, "bot")
    spent = 0.0
    for stream in (False, True, False):
        s, usage, _ = call(gw, key, stream)
        assert s == 200
        spent += cost_of(usage)
    r = admin_get(port, "/admin/budgets")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
    body = r.json()
    assert body["backend"] == "embedded"
    nodes = {n["id"]: n for n in body["nodes"]}
    assert list(nodes) == ["org", "bot", "idle"]  # parents first
    assert nodes["bot"]["parent"] == "org" and nodes["org"]["parent"] is None
    for node in ("bot", "org"):
        total = nodes[node]["periods"]["total"]
        assert abs(total["spent_usd"] - spent) < 1e-9, (node, total, spent)
        assert total["reserved_usd"] == 0
    assert nodes["org"]["periods"]["day"]["cap_usd"] == 5
    assert 0 < nodes["org"]["periods"]["day"]["resets_in_s"] <= 86400
    assert nodes["org"]["periods"]["total"]["resets_in_s"] is None
    assert nodes["bot"]["periods"]["total"]["cap_micro_usd"] == 1_000_000
    assert nodes["bot"]["periods"]["day"]["cap_usd"] is None
    assert nodes["idle"]["periods"]["total"]["spent_usd"] == 0
    # one node and its subtree
    sub = admin_get(port, "/admin/budgets/org").json()["nodes"]
    assert [n["id"] for n in sub] == ["org", "bot", "idle"]
    one = admin_get(port, "/admin/budgets/bot").json()["nodes"]
    assert [n["id"] for n in one] == ["bot"]
    r = admin_get(port, "/admin/budgets/nobody")
    assert r.status_code == 404 and "nobody" in r.json()["error"]["message"]


def test_admin_listener_needs_the_token_and_is_not_on_the_public_listener(start_gateway):
    cfg, port = admin_config()
    gw = start_gateway(cfg, env={"PORTCULLIS_ADMIN_TOKEN": TOKEN})
    for token in (None, "wrong", TOKEN + "x", TOKEN[:-1]):
        r = admin_get(port, "/admin/budgets", token)
        assert r.status_code == 401, (token, r.text)
        assert r.json()["error"]["code"] == "unauthorized"
        assert "bearer" in r.headers["www-authenticate"].lower()
        assert TOKEN not in r.text
    # the public listener knows no admin route, with or without the token
    with gw.http() as h:
        r = h.get("/admin/budgets", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 404
    r = admin_get(port, "/admin/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.post(f"http://127.0.0.1:{port}/admin/budgets",
                   headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 405


def test_admin_without_a_token_in_the_environment_refuses_everything(start_gateway):
    cfg, port = admin_config("PC_TEST_UNSET_ADMIN_TOKEN")
    gw = start_gateway(cfg)
    r = admin_get(port, "/admin/budgets", "anything")
    assert r.status_code == 401
    assert "PC_TEST_UNSET_ADMIN_TOKEN" in r.json()["error"]["message"]
    gw.wait_for_log(lambda rec: "PC_TEST_UNSET_ADMIN_TOKEN" in rec.get("msg", ""))
