"""A private Sluice stack for the browser tests: ingest, gateway and two workers, started from
the debug binaries on free loopback ports, with their own Redis key prefix and database."""

import base64
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("SLUICE_BIN_DIR", ROOT / "target" / "debug"))
OUT = ROOT / "target" / "browser"
REDIS_URL = os.environ.get("SLUICE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
POSTGRES_URL = os.environ.get(
    "SLUICE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
JWT_SECRET = "browser-test-secret-of-at-least-32-bytes"
ADMIN_TOKEN = "browser-admin-token-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_json(url, data=None, headers=None):
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers=headers or {})
    if body is not None:
        request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def jwt(secret, ttl=3600):
    def b64(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"exp": int(time.time()) + ttl, "sub": "browser"}).encode())
    signature = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256)
    return f"{header}.{claims}.{b64(signature.digest())}"


class Stack:
    """The running services; each can be stopped and started again on the same port."""

    # Each service logs to OUT/<log_prefix><name>.log.
    log_prefix = ""

    def __init__(self):
        tag = secrets.token_hex(4)
        # The run's id, as the Rust tests' (tests/src/lib.rs: run_id), so that a cleanup can
        # tell a run still going from one whose process is gone.
        run = os.environ.get("SLUICE_TEST_RUN") or str(os.getpid())
        self.prefix = f"test:{run}:browser:{tag}:"
        self.database = f"sluice_test_{run}_browser_{tag}"
        self.ingest_port = free_port()
        self.gateway_port = free_port()
        self.auth_port = free_port()
        base, _, _ = POSTGRES_URL.rpartition("/")
        self.env = dict(
            os.environ,
            SLUICE__REDIS__URL=REDIS_URL,
            SLUICE__REDIS__KEY_PREFIX=self.prefix,
            SLUICE__POSTGRES__URL=f"{base}/{self.database}",
            SLUICE__INGEST__LISTEN=f"127.0.0.1:{self.ingest_port}",
            SLUICE__GATEWAY__LISTEN=f"127.0.0.1:{self.gateway_port}",
            SLUICE__WORKER__DEAD_AFTER_MS="2000",
            SLUICE__GATEWAY__ALERTS__NO_LIVE_WORKERS_FOR_SECS="2",
            SLUICE__GATEWAY__ALERTS__RESOLVE_AFTER_SECS="2",
            SLUICE__GATEWAY__ADMIN_TOKEN=ADMIN_TOKEN,
            RUST_LOG="warn",
        )
        self.processes = {}
        self.psql(f'CREATE DATABASE "{self.database}"')

    def psql(self, sql):
        subprocess.run(["psql", POSTGRES_URL, "-qtAc", sql], check=True, capture_output=True)

    def redis(self, *args):
        out = subprocess.run(
            ["redis-cli", "-u", REDIS_URL, *args], check=True, capture_output=True, text=True
        )
        return out.stdout.strip()

    def counter(self, name):
        return int(self.redis("GET", self.prefix + name) or 0)

    def start(self, name, binary, **env):
        OUT.mkdir(parents=True, exist_ok=True)
        log = open(OUT / f"{self.log_prefix}{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            [str(BIN / binary)], env=dict(self.env, **env), stdout=log, stderr=log
        )

    def stop(self, name):
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)

    def start_gateway(self):
        self.start("gateway", "sluice-gateway")
        wait_for(lambda: http_json(self.gateway("/health"))["status"] == "ok", 20, "the gateway")

    def start_workers(self):
        for name in ("worker-1", "worker-2"):
            self.start(name, "sluice-worker", SLUICE__WORKER__ID=f"{self.prefix}{name}")

    def stop_workers(self):
        for name in ("worker-1", "worker-2"):
            self.stop(name)

    def start_all(self):
        self.start("ingest", "sluice-ingest")
        wait_for(lambda: http_json(self.ingest("/health"))["status"] == "ok", 20, "ingest")
        self.start_gateway()
        self.start(
            "auth-gateway",
            "sluice-gateway",
            SLUICE__GATEWAY__LISTEN=f"127.0.0.1:{self.auth_port}",
            SLUICE__STREAM__AUTH__JWT_SECRET=JWT_SECRET,
        )
        self.start_workers()
        wait_for(lambda: self.stats()["workers_alive"] == 2, 30, "two live workers")

    def ingest(self, path):
        return f"http://127.0.0.1:{self.ingest_port}{path}"

    def gateway(self, path):
        return f"http://127.0.0.1:{self.gateway_port}{path}"

    def stats(self):
        return http_json(self.gateway("/stats"))

    def post(self, n=1):
        for _ in range(n):
            http_json(
                self.ingest("/messages"),
                {"user_id": 1, "channel_id": 2, "content": "from the browser tests"},
            )

    def close(self):
        for name in list(self.processes):
            try:
                self.stop(name)
            except Exception:  # noqa: BLE001 - best effort at teardown
                self.processes.get(name) and self.processes[name].kill()
        keys = self.redis("--scan", "--pattern", self.prefix + "*").split()
        for i in range(0, len(keys), 500):
            self.redis("DEL", *keys[i : i + 500])
        self.psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


class Sender:
    """Posts messages at a steady rate from a thread until stopped."""

    def __init__(self, stack, per_second=40):
        self.stack = stack
        self.period = 1 / per_second
        self.sent = 0
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            try:
                self.stack.post()
                self.sent += 1
            except OSError:
                pass
            time.sleep(self.period)

    def stop(self):
        self.running = False
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def stack():
    s = Stack()
    try:
        s.start_all()
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


# What the browser itself logs while a server is unreachable, or a connection is cut on
# purpose: tests that stop a server or block WebSocket accept these, and only these.
NETWORK_ERRORS = ("WebSocket connection to", "Failed to load resource", "net::ERR_")


@pytest.fixture
def page(browser):
    """A fresh page; the test fails if the page logs any console error or throws. A test that
    cuts connections on purpose sets `page.network_errors_expected = True`."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    problems = []
    p.on("console", lambda m: m.type == "error" and problems.append(m.text))
    p.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    p.network_errors_expected = False
    yield p
    context.close()
    if p.network_errors_expected:
        problems = [m for m in problems if not any(n in m for n in NETWORK_ERRORS)]
    assert not problems, problems
