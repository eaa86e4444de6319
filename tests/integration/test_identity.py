# SPDX-License-Identifier: Apache-2.0
# Identity, delegation and audit as agents and operators see them: API keys
# from `portcullis keys`, 401s in the OpenAI shape, RFC 8693 token exchange
# down a chain A -> B -> C with attenuation, `portcullis trace` rebuilding the
# call graph, `portcullis audit tail`, signing-key rotation, and audit
# records that survive kill -9 of the gateway.
from __future__ import annotations

import base64
import json
import re
import signal
import sqlite3
import subprocess
import time

import httpx
import openai
import pytest

from conftest import BIN, assert_openai_error, base_config, free_port, require_binary

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
MSGS = [{"role": "user", "content": "hello"}]
AGENTS = [
    {"id": "acme", "children": [{"id": "research", "children": [{"id": "researcher"}]}]},
    {"id": "A"},
    {"id": "B"},
    {"id": "C"},
]


def cli(gw, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    require_binary()
    cmd = [str(BIN), args[0]]
    rest = list(args[1:])
    # `keys create`, `audit tail`: the subcommand comes before -c
    if args[0] in ("keys", "audit"):
        cmd.append(rest.pop(0))
    cmd += ["-c", str(gw.config_path), *rest]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def create_key(gw, agent: str, *extra: str) -> str:
    """A new key, once the running gateway has picked it up (within a second).
    Other gateways sharing the state file: wait_key_known(each, key)."""
    key = cli(gw, "keys", "create", "--agent", agent, *extra).stdout.strip()
    assert key.startswith("pcl_"), key
    if gw.alive():
        wait_key_known(gw, key)
    return key


def wait_key_known(gw, key: str) -> None:
    """Until gw accepts key (gateways reread the key store about once a second)."""

    def known():
        with gw.http() as h:
            r = h.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
            return r.status_code == 200 or "unknown API key" not in r.text

    wait_until(known, timeout=5)


def exchange(gw, subject: str, audience: str, **params) -> httpx.Response:
    data = {
        "grant_type": GRANT,
        "subject_token": subject,
        "subject_token_type": ACCESS,
        "audience": audience,
        **params,
    }
    with gw.http() as h:
        return h.post("/oauth/token", data=data)


def token_for(gw, subject: str, audience: str, **params) -> str:
    r = exchange(gw, subject, audience, **params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["issued_token_type"] == ACCESS
    return body["access_token"]


def claims_of(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def chat(gw, key: str, model: str = "mock-1"):
    return gw.client(api_key=key).chat.completions.with_raw_response.create(
        model=model, messages=MSGS
    )


def audit_rows(gw, **where) -> list[dict]:
    db = sqlite3.connect(gw.dir / "portcullis.db", timeout=10)
    db.row_factory = sqlite3.Row
    q = "SELECT * FROM audit"
    if where:
        q += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
    rows = [dict(r) for r in db.execute(q + " ORDER BY id", tuple(where.values()))]
    db.close()
    return rows


def wait_audit(gw, n: int, timeout: float = 5.0, **where) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = audit_rows(gw, **where)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def wait_until(pred, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture
def gw(start_gateway):
    return start_gateway(
        base_config(free_port(), identity={"required": True}, agents=AGENTS)
    )


# ---- API keys and 401s ---------------------------------------------------------


def test_missing_and_bad_credentials_get_openai_shaped_401(gw):
    with gw.http() as h:
        r = h.get("/v1/models")
        err = assert_openai_error(r, 401)
        assert err["code"] == "missing_credential"
        assert r.headers["www-authenticate"].startswith("Bearer")
        bogus = "pcl_0123456789ab_notarealsecretnotarealsecretnotarealsecre"
        r = h.get("/v1/models", headers={"Authorization": f"Bearer {bogus}"})
        err = assert_openai_error(r, 401)
        assert err["code"] == "invalid_api_key"
        assert bogus not in r.text and "notarealsecret" not in r.text
        r = h.get("/v1/models", headers={"Authorization": "Bearer sk-some-provider-key"})
        assert assert_openai_error(r, 401)["code"] == "invalid_credential"
        assert "sk-some-provider-key" not in r.text
        r = h.get("/v1/models", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert_openai_error(r, 401)
        garbage = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."
        r = h.get("/v1/models", headers={"Authorization": f"Bearer {garbage}"})
        assert assert_openai_error(r, 401)["code"] == "invalid_token"
        assert garbage not in r.text
        # Probes stay open.
        assert h.get("/healthz").status_code == 200
        assert h.get("/metrics").status_code == 200
    # The SDK sees an AuthenticationError.
    with pytest.raises(openai.AuthenticationError):
        gw.client(api_key="pcl_0123456789ab_x").chat.completions.create(
            model="mock-1", messages=MSGS
        )


def test_api_key_from_cli_authenticates_as_its_agent(gw):
    key = create_key(gw, "researcher", "--expires", "30d")
    r = chat(gw, key)
    assert r.http_response.status_code == 200
    rid = r.http_response.headers["x-request-id"]
    rows = wait_audit(gw, 1, request_id=rid)
    assert rows and rows[0]["agent"] == "researcher"
    assert rows[0]["auth"] == "api_key"
    assert json.loads(rows[0]["chain"]) == ["researcher"]
    assert rows[0]["resource"] == "model:mock-1"
    assert rows[0]["decision"] == "allow"
    # The store has only a keyed hash, never the key.
    db = (gw.dir / "portcullis.db").read_bytes()
    assert key.encode() not in db
    secret = key.split("_", 2)[2]
    assert secret.encode() not in db
    listing = cli(gw, "keys", "list").stdout
    assert "researcher" in listing and "active" in listing and secret not in listing


def test_unknown_agent_is_refused_by_keys_create(gw):
    p = cli(gw, "keys", "create", "--agent", "nobody", check=False)
    assert p.returncode != 0 and "unknown agent" in p.stderr


def test_revoked_key_is_refused_by_the_running_gateway(gw):
    key = create_key(gw, "research")
    assert chat(gw, key).http_response.status_code == 200
    delegated = token_for(gw, token_for(gw, key, "researcher"), "A")
    assert chat(gw, delegated).http_response.status_code == 200
    key_id = key.split("_")[1]
    assert "revoked" in cli(gw, "keys", "revoke", key_id).stdout

    def refused():
        with gw.http() as h:
            r = h.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
            return r.status_code == 401 and "revoked" in r.json()["error"]["message"]

    wait_until(refused, timeout=5)
    # Tokens minted down the chain from the revoked key die with it.
    with gw.http() as h:
        r = h.get("/v1/models", headers={"Authorization": f"Bearer {delegated}"})
    err = assert_openai_error(r, 401)
    assert key_id in err["message"] and "revoked" in err["message"]
    assert "revoked" in cli(gw, "keys", "list").stdout
    assert cli(gw, "keys", "revoke", key_id, check=False).returncode != 0


def test_expired_key_is_refused(gw):
    key = create_key(gw, "research", "--expires", "1s")
    time.sleep(2.1)
    with gw.http() as h:
        r = h.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert assert_openai_error(r, 401)["code"] == "expired_api_key"


def test_unauthenticated_mode_serves_anonymous_but_checks_our_credentials(start_gateway):
    g = start_gateway(base_config(free_port()))  # no identity: section
    with g.http() as h:
        assert h.get("/v1/models").status_code == 200
        r = h.get("/v1/models", headers={"Authorization": "Bearer sk-provider-style"})
        assert r.status_code == 200
        # A portcullis key that does not verify is still refused.
        r = h.get("/v1/models", headers={"Authorization": "Bearer pcl_0123456789ab_zzzz"})
        assert_openai_error(r, 401)
    key = create_key(g, "anyone")  # no agents: tree -> any id
    r = chat(g, key)
    rows = wait_audit(g, 1, request_id=r.http_response.headers["x-request-id"])
    assert rows[0]["agent"] == "anyone"
    assert any("identity.required is false" in l for l in g.log_lines())


# ---- delegation ----------------------------------------------------------------


def test_chain_a_b_c_calls_a_model_and_trace_prints_the_graph(gw):
    key_a = create_key(gw, "A")
    tok_b = token_for(gw, key_a, "B", scope="llm")
    c = claims_of(tok_b)
    assert c["sub"] == "B" and c["act"] == {"sub": "A"} and c["scope"] == "llm"
    tok_c = token_for(gw, tok_b, "C", scope="model:mock-1")
    c = claims_of(tok_c)
    assert c["sub"] == "C" and c["act"] == {"sub": "B", "act": {"sub": "A"}}
    assert c["exp"] - c["iat"] <= 15 * 60

    r = chat(gw, tok_c)  # C calls a model with the OpenAI SDK
    assert r.http_response.status_code == 200
    rid = r.http_response.headers["x-request-id"]
    rows = wait_audit(gw, 1, request_id=rid)
    assert json.loads(rows[0]["chain"]) == ["A", "B", "C"]
    assert rows[0]["auth"] == "delegation"
    wait_audit(gw, 3)

    out = cli(gw, "trace", rid).stdout
    assert "A → B → C → model mock-1" in out, out
    # The tree: A's exchange at the root, B's below it, C's chat below that.
    lines = out.splitlines()
    i_a = next(i for i, l in enumerate(lines) if "A: token_exchange → agent B" in l)
    i_b = next(i for i, l in enumerate(lines) if "A → B: token_exchange → agent C" in l)
    i_c = next(i for i, l in enumerate(lines) if "A → B → C: chat → model mock-1" in l)
    assert i_a < i_b < i_c
    assert lines[i_c].index("request") > lines[i_b].index("request") > lines[i_a].index("request")

    # C's token is narrower: another model is a 403 that names the scope.
    with gw.http() as h:
        r = h.post(
            "/v1/embeddings",
            headers={"Authorization": f"Bearer {tok_c}"},
            json={"model": "mock-embed", "input": "x"},
        )
    err = assert_openai_error(r, 403)
    assert err["code"] == "scope_denied" and "mock-embed" in err["message"]


def test_asking_for_more_scope_than_the_parent_is_invalid_scope(gw):
    key_a = create_key(gw, "A", "--scope", "model:mock-1")
    tok_b = token_for(gw, key_a, "B")  # no scope asked: inherits A's
    assert claims_of(tok_b)["scope"] == "model:mock-1"
    r = exchange(gw, tok_b, "C", scope="model:mock-1 model:mock-embed")
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "invalid_scope"
    assert "model:mock-embed" in body["error_description"]
    r = exchange(gw, key_a, "B", scope="llm")  # wider than model:mock-1
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    # Denials are audited, with the reason.
    wait_until(lambda: len(audit_rows(gw, decision="deny", action="token_exchange")) == 2)
    rows = audit_rows(gw, decision="deny", action="token_exchange")
    assert all("invalid_scope" in r["reason"] and r["status"] == 400 for r in rows)
    out = cli(gw, "audit", "tail", "--denied", "--no-follow").stdout
    assert "invalid_scope" in out and "deny" in out
    out = cli(gw, "audit", "tail", "--agent", "B", "--no-follow", "--json").stdout
    recs = [json.loads(l) for l in out.splitlines()]
    assert recs and all("B" in r["chain"] for r in recs)


def test_budget_cap_and_depth_and_target_checks(start_gateway):
    g = start_gateway(
        base_config(
            free_port(),
            identity={"required": True, "delegation": {"max_depth": 2, "ttl": "1m"}},
            agents=AGENTS,
        )
    )
    key_a = create_key(g, "A")
    tok_b = token_for(g, key_a, "B", budget_usd="5")
    assert claims_of(tok_b)["pcl"]["budget_usd"] == 5
    r = exchange(g, tok_b, "C", budget_usd="10")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    tok_c = token_for(g, tok_b, "C", budget_usd="2.5")
    assert claims_of(tok_c)["exp"] - claims_of(tok_c)["iat"] <= 60
    # Depth: A -> B -> C is two delegations; a third is refused.
    r = exchange(g, tok_c, "acme")
    assert r.status_code == 400 and "max_depth" in r.json()["error_description"]
    # Loops and unknown agents.
    r = exchange(g, tok_b, "A")
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"
    r = exchange(g, key_a, "nobody")
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"
    # A bad subject token.
    r = exchange(g, tok_b[:-4] + "AAAA", "C")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert tok_b[:-4] not in r.text
    with g.http() as h:
        r = h.post("/oauth/token", data={"grant_type": "password"})
        assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
        r = h.post("/oauth/token", json={"grant_type": GRANT})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
        assert h.get("/oauth/token").status_code == 405


def test_signing_key_rotation_keeps_old_tokens_valid(gw):
    with gw.http() as h:
        jwks = h.get("/.well-known/jwks.json").json()
    assert len(jwks["keys"]) == 1
    k = jwks["keys"][0]
    assert k["kty"] == "EC" and k["crv"] == "P-256" and k["alg"] == "ES256"
    assert "d" not in k  # public only
    key_a = create_key(gw, "A")
    old = token_for(gw, key_a, "B")
    cli(gw, "keys", "rotate-signing")

    def two_keys():
        with gw.http() as h:
            return len(h.get("/.well-known/jwks.json").json()["keys"]) == 2

    wait_until(two_keys)
    new = token_for(gw, key_a, "B")
    hdr = lambda t: json.loads(base64.urlsafe_b64decode(t.split(".")[0] + "=="))
    assert hdr(new)["kid"] != hdr(old)["kid"]
    assert chat(gw, old).http_response.status_code == 200
    assert chat(gw, new).http_response.status_code == 200


# ---- audit durability ------------------------------------------------------------


def test_audit_records_survive_kill_9(start_gateway):
    g = start_gateway(
        base_config(free_port(), audit={"jsonl": "audit.jsonl", "buffer": 1024})
    )
    ids = []
    with g.http() as h:
        for i in range(50):
            r = h.post("/v1/chat/completions", json={"model": "mock-1", "messages": MSGS})
            assert r.status_code == 200
            ids.append(r.headers["x-request-id"])
    time.sleep(0.5)  # the writer commits within milliseconds; the buffer is then empty
    with g.http() as h:
        m = h.get("/metrics").text
    written = re.search(r'portcullis_audit_records_total\{outcome="written"\} (\d+)', m)
    dropped = re.search(r'portcullis_audit_records_total\{outcome="dropped"\} (\d+)', m)
    assert written and int(written.group(1)) >= 50, m
    assert dropped and int(dropped.group(1)) == 0, m
    g.signal(signal.SIGKILL)
    g.wait_exit(5)
    rows = audit_rows(g)
    got = {r["request_id"] for r in rows}
    assert set(ids) <= got, f"lost {len(set(ids) - got)} of {len(ids)} records"
    lines = (g.dir / "audit.jsonl").read_text().splitlines()
    recs = [json.loads(l) for l in lines]
    assert set(ids) <= {r["request_id"] for r in recs}
    assert all(r["decision"] == "allow" and r["status"] == 200 for r in recs)


def test_an_identity_section_requires_a_credential_by_default(start_gateway):
    g = start_gateway(base_config(free_port(), identity={"api_keys": True}, agents=AGENTS))
    with g.http() as h:
        err = assert_openai_error(h.get("/v1/models"), 401)
    assert "credential" in err["message"].lower() or "api key" in err["message"].lower(), err
    key = create_key(g, "A")
    assert chat(g, key).http_response.status_code == 200
    assert not any("identity.required is false" in l for l in g.log_lines())
