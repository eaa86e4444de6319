# SPDX-License-Identifier: Apache-2.0
# Bearer tokens from an external IdP whose keys the gateway fetches from a
# JWKS URL: a token signed with a key the IdP has just rotated in is served on
# the first try (the request waits for the refetch it triggers), and a stream
# of made-up key ids does not turn into a stream of fetches.
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from conftest import assert_openai_error, base_config, free_port

ISS = "https://idp.test"
MSGS = [{"role": "user", "content": "hello"}]


class IdP:
    """A JWKS endpoint on 127.0.0.1 that counts its fetches."""

    def __init__(self):
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.fetches = 0
        idp = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                idp.fetches += 1
                jwks = {"keys": []}
                for kid in idp.published:
                    k = json.loads(RSAAlgorithm.to_jwk(idp.keys[kid].public_key()))
                    k.update(kid=kid, alg="RS256", use="sig")
                    jwks["keys"].append(k)
                body = json.dumps(jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add_key(self, kid: str, publish: bool = True):
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)

    def token(self, kid: str, sub: str = "researcher") -> str:
        now = int(time.time())
        claims = {"iss": ISS, "aud": "portcullis", "sub": sub, "iat": now, "exp": now + 300}
        return jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def idp():
    i = IdP()
    yield i
    i.server.shutdown()


def chat(gw, token: str):
    with gw.http() as h:
        return h.post(
            "/v1/chat/completions",
            json={"model": "mock-1", "messages": MSGS},
            headers={"Authorization": f"Bearer {token}"},
        )


def test_rotated_key_is_fetched_while_the_request_waits(start_gateway, idp):
    idp.add_key("k1")
    gw = start_gateway(
        base_config(
            free_port(),
            identity={
                "required": True,
                "jwt": {
                    "issuer": ISS,
                    "audiences": ["portcullis"],
                    "algorithms": ["RS256"],
                    "jwks": {"url": idp.url, "min_refetch_interval": "1s"},
                },
            },
            agents=[{"id": "acme", "children": [{"id": "researcher"}]}],
        )
    )
    r = chat(gw, idp.token("k1"))
    assert r.status_code == 200, r.text
    fetched = idp.fetches

    # the IdP rotates in k2; the gateway's cached set has never seen it, and the
    # last fetch is older than the refetch interval
    idp.add_key("k2")
    time.sleep(1.2)
    r = chat(gw, idp.token("k2"))
    assert r.status_code == 200, r.text
    assert idp.fetches == fetched + 1
    assert r.json()["choices"][0]["message"]["content"]

    # a key id the IdP never published: refused, and inside the refetch interval
    # without another fetch (on a loaded machine the requests may outlast the
    # interval: then at most one fetch per interval elapsed)
    fetched_at = time.monotonic()
    idp.add_key("k9", publish=False)
    for _ in range(5):
        err = assert_openai_error(chat(gw, idp.token("k9")), 401)
        assert err["code"] == "unknown_key_id", err
    allowed = int((time.monotonic() - fetched_at) / 1.0)
    assert idp.fetches - (fetched + 1) <= allowed, (idp.fetches, fetched, allowed)
    # and the token is never echoed
    assert idp.token("k9")[:40] not in json.dumps(err)
