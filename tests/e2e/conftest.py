"""Fixtures for end-to-end tests: real `tollgated` processes on loopback, the
simulated model provider (a test fixture) for them to call, and the real
desktop binary driven through tauri-driver + WebKitWebDriver.

Run by scripts/e2e.sh inside Xvfb and a private D-Bus session with an unlocked
GNOME Keyring (scripts/with-keyring.sh)."""

import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.common.options import ArgOptions

REPO = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/tollgate-target"))
CONSOLE_BIN = os.environ.get("TOLLGATE_BIN", str(TARGET / "debug" / "tollgate"))
GATEWAY_BIN = os.environ.get("TOLLGATED_BIN", str(TARGET / "debug" / "tollgated"))
# TEST FIXTURE: the simulated model provider (crates/sim-provider).
SIM_BIN = os.environ.get("SIM_PROVIDER_BIN", str(TARGET / "debug" / "sim-provider"))
ARTIFACTS = REPO / "test-artifacts" / "e2e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(args: list, marker: str, what: str, env: dict | None = None):
    """Starts a server that prints `<marker><url>` once it listens on a port
    it picked; answers the process and that URL."""
    env = env or {**os.environ, "RUST_LOG": "warn"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(marker):
            return proc, line.split()[-1]
    raise AssertionError(f"{what} did not start")


class Gateway:
    """A `tollgated` on SQLite, or a node of `database_url` (PostgreSQL); a
    node joining others shares their encryption key and admin token."""

    def __init__(self, name: str, database_url: str | None = None, joins: "Gateway | None" = None):
        self.dir = tempfile.mkdtemp(prefix="tollgate-e2e-gw-")
        env = {**os.environ, "RUST_LOG": "warn"}
        if database_url:
            env["TOLLGATE_DATABASE_URL"] = database_url
        if joins:
            shutil.copy(pathlib.Path(joins.dir, "encryption.key"), self.dir)
        self.proc, self.base = listening(
            [GATEWAY_BIN, "serve", "--listen", "127.0.0.1:0", "--name", name, "--data-dir", self.dir],
            "tollgated listening on ",
            f"tollgated {name}",
            env,
        )
        self.token = joins.token if joins else pathlib.Path(self.dir, "bootstrap-admin-token").read_text().strip()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def gateways():
    gws = [Gateway("east"), Gateway("west")]
    yield gws
    for gw in gws:
        gw.stop()


@pytest.fixture(scope="session")
def cluster():
    """Two nodes of one instance on a fresh PostgreSQL database of the test
    server `scripts/e2e.sh` starts (`TOLLGATE_TEST_POSTGRES`, an admin URL)."""
    admin = os.environ.get("TOLLGATE_TEST_POSTGRES")
    assert admin, "TOLLGATE_TEST_POSTGRES is not set: run through scripts/e2e.sh"
    name = f"e2e_{os.getpid()}_{int(time.time())}"
    subprocess.run(["psql", "-q", admin, "-c", f"CREATE DATABASE {name}"], check=True)
    url = admin.rsplit("/", 1)[0] + "/" + name
    first = Gateway("cluster", database_url=url)
    nodes = [first, Gateway("cluster", database_url=url, joins=first)]
    yield nodes
    for node in nodes:
        if node.proc.poll() is None:
            node.stop()


@pytest.fixture(scope="session")
def sim_provider():
    """The simulated provider's base URL (`http://127.0.0.1:<port>`; its API is under `/v1`).
    Keys named `sim-key-fail-<status>` fail with that status; any other key works."""
    proc, base = listening([SIM_BIN], "sim-provider listening on ", "sim-provider")
    yield base
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def console_data_dir():
    path = tempfile.mkdtemp(prefix="tollgate-e2e-console-")
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def driver(console_data_dir):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    data_dir = str(console_data_dir)
    port = free_port()
    log = open(ARTIFACTS / "tauri-driver.log", "w")
    tauri_driver = subprocess.Popen(
        ["tauri-driver", "--port", str(port), "--native-port", str(free_port()), "--native-driver", "/usr/bin/WebKitWebDriver"],
        env={**os.environ, "TOLLGATE_CONSOLE_DATA_DIR": data_dir, "RUST_LOG": "info"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    options = ArgOptions()
    options.set_capability("tauri:options", {"application": CONSOLE_BIN})
    options.set_capability("browserName", "wry")
    drv = webdriver.Remote(command_executor=f"http://127.0.0.1:{port}", options=options)
    drv.implicitly_wait(0)
    yield drv
    drv.quit()
    tauri_driver.terminate()
    tauri_driver.wait(timeout=10)
    log.close()
