# SPDX-License-Identifier: Apache-2.0
# Fixtures shared by the integration tests: start the built gateway
# ($PORTCULLIS_BIN) on a config written to a tmp dir and a free port, fake
# upstreams on 127.0.0.1, and clients pointed at the gateway. A failing test
# shows the gateway's stdout/stderr.
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from fake_openai import FakeUpstream

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("PORTCULLIS_BIN") or REPO / "build" / "portcullis")
KEY_ENV = "PORTCULLIS_TEST_UPSTREAM_KEY"
CLIENT_KEY = "sk-client-not-a-provider-key"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_port() -> int:
    """A port with nothing listening: connecting to it is refused."""
    return free_port()


def require_binary() -> Path:
    if not BIN.is_file() or not os.access(BIN, os.X_OK):
        pytest.fail(
            f"gateway binary not found at {BIN} (set PORTCULLIS_BIN or run `make build`)",
            pytrace=False,
        )
    return BIN


# ---- config builders ------------------------------------------------------


def mock_provider(name: str = "mock", **mock: Any) -> dict:
    p: dict = {"name": name, "kind": "mock"}
    if mock:
        p["mock"] = mock
    return p


def openai_provider(name: str, base_url: str, **kw: Any) -> dict:
    return {"name": name, "kind": "openai", "base_url": base_url, "api_key_env": KEY_ENV, **kw}


def anthropic_provider(name: str, base_url: str, **kw: Any) -> dict:
    return {"name": name, "kind": "anthropic", "base_url": base_url, "api_key_env": KEY_ENV, **kw}


def target(provider: str, model: str | None = None, weight: int | None = None) -> dict:
    t: dict = {"provider": provider}
    if model is not None:
        t["model"] = model
    if weight is not None:
        t["weight"] = weight
    return t


def model(name: str, *targets: dict, price: dict | None = None) -> dict:
    m: dict = {"name": name, "targets": list(targets)}
    if price:
        m["price"] = price
    return m


def base_config(port: int, providers=None, models=None, limits=None, **extra: Any) -> dict:
    cfg: dict = {
        "listen": f"127.0.0.1:{port}",
        "workers": 2,
        "state": "embedded",
        "log_level": "info",
    }
    if limits:
        cfg["limits"] = limits
    cfg["providers"] = providers if providers is not None else [mock_provider()]
    cfg["models"] = (
        models
        if models is not None
        else [model("mock-1", target("mock")), model("mock-embed", target("mock"))]
    )
    cfg.update(extra)
    return cfg


# ---- the gateway process --------------------------------------------------


class Gateway:
    """One `portcullis serve` process on a config file in its own directory."""

    def __init__(self, workdir: Path, config: dict, env: dict[str, str], name: str):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.config = config
        self.env = env
        self.config_path = self.dir / "portcullis.yaml"
        self.stdout_path = self.dir / "stdout.log"
        self.stderr_path = self.dir / "stderr.log"
        self.port = int(str(config["listen"]).rsplit(":", 1)[1])
        self.scheme = "https" if config.get("tls") else "http"
        self.proc: subprocess.Popen | None = None
        self.stopped_by_test = False
        self.write_config(config)

    # -- addresses and clients --
    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def client(self, **kw: Any) -> openai.OpenAI:
        kw.setdefault("api_key", CLIENT_KEY)
        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 20)
        return openai.OpenAI(base_url=self.base_url, **kw)

    def http(self, **kw: Any) -> httpx.Client:
        kw.setdefault("timeout", 20)
        return httpx.Client(base_url=self.url, **kw)

    # -- config --
    def write_config(self, config: dict | str) -> None:
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.config_path)  # atomic: a reload never reads half a file

    def reload(self, config: dict | str) -> None:
        self.write_config(config)
        self.signal(signal.SIGHUP)

    # -- process --
    def start(self, timeout: float = 15.0) -> "Gateway":
        require_binary()
        self._out = open(self.stdout_path, "ab")
        self._err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            [str(BIN), "serve", "-c", str(self.config_path)],
            cwd=self.dir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"gateway exited with {self.proc.returncode} before listening on "
                    f"{self.port}\n--- log ---\n{self.log_text()}",
                    pytrace=False,
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"gateway did not listen on {self.port} in {timeout}s", pytrace=False)
                time.sleep(0.02)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code."""
        if self.proc is None:
            return None
        self.stopped_by_test = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for f in (self._out, self._err):
            f.close()
        return self.proc.returncode

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        self.stopped_by_test = True
        return self.proc.wait(timeout)

    # -- output --
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def log_text(self) -> str:
        return f"[stdout]\n{self.stdout()}\n[stderr]\n{self.stderr()}"

    def log_lines(self) -> list[str]:
        return [l for l in (self.stdout() + "\n" + self.stderr()).splitlines() if l.strip()]

    def log_records(self) -> list[dict]:
        """The log lines that parse as JSON objects."""
        out = []
        for line in self.log_lines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def wait_for_log(self, pred, timeout: float = 5.0, since: int = 0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for rec in self.log_records()[since:]:
                if pred(rec):
                    return rec
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching log line in {timeout}s\n{self.log_text()}")
            time.sleep(0.05)


@pytest.fixture
def upstream_key() -> str:
    """The provider API key the gateway reads from the environment (a secret)."""
    return "sk-upstream-SECRET-" + secrets.token_hex(12)


@pytest.fixture
def start_gateway(request, tmp_path, upstream_key):
    """start_gateway(config, env=None, start=True) -> Gateway. Many per test are fine;
    each is stopped at teardown, and one that died on its own fails the test."""
    gateways: list[Gateway] = []
    request.node._gateways = gateways

    def start(config: dict, env: dict[str, str] | None = None, start: bool = True) -> Gateway:
        full_env = dict(os.environ)
        full_env[KEY_ENV] = upstream_key
        full_env.update(env or {})
        gw = Gateway(tmp_path / f"gw{len(gateways)}", config, full_env, f"gw{len(gateways)}")
        gateways.append(gw)
        return gw.start() if start else gw

    yield start

    died = [
        (gw.name, gw.proc.returncode)
        for gw in gateways
        if gw.proc is not None and not gw.stopped_by_test and gw.proc.poll() is not None
    ]
    for gw in gateways:
        gw.stop()
    if died:
        pytest.fail(f"gateway process died during the test: {died}", pytrace=False)
    # With a sanitizer build ($PORTCULLIS_BIN from build-asan) its reports fail the test.
    reports = [
        gw.name
        for gw in gateways
        if any(m in gw.stderr() for m in SANITIZER_MARKS)
    ]
    if reports:
        pytest.fail(f"sanitizer report in the log of {reports}", pytrace=False)
    # Under an ASan/UBSan build (make integration-asan) a memory error or leak is
    # reported on stderr; it fails the test even when the answers looked right.
    for gw in gateways:
        err = gw.stderr()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in err:
                pytest.fail(f"{gw.name}: sanitizer report\n{err[-6000:]}", pytrace=False)


@pytest.fixture
def gateway(start_gateway):
    """A gateway with the default config: the mock provider serving mock-1."""
    return start_gateway(base_config(free_port()))


def _fake(request):
    fake = FakeUpstream().start()
    request.addfinalizer(fake.stop)
    request.addfinalizer(fake.release.set)
    return fake


@pytest.fixture
def fake(request) -> FakeUpstream:
    return _fake(request)


@pytest.fixture
def fake2(request) -> FakeUpstream:
    return _fake(request)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for gw in getattr(item, "_gateways", []):
            if gw.proc is None:
                continue
            text = gw.log_text()
            if len(text) > 20000:
                text = "...\n" + text[-20000:]
            rep.sections.append((f"gateway {gw.name} ({gw.config_path})", text))


# ---- assertions used by several test files -----------------------------------


def assert_openai_error(resp: httpx.Response, status: int) -> dict:
    """The response is an OpenAI-shaped error with this status; returns the error object."""
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {resp.text!r}")
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err, dict), body
    assert {"message", "type", "code", "param"} <= set(err), err
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str) and err["type"], err
    return err
