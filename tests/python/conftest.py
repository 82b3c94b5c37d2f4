"""Shared fixtures for the provider tests (test_provider_grpc.py, test_provider_binary.py).

Nothing here is autouse and no fixture is named like test_emulator_sdk.py's
own (`emulator`, `no_faults`, `wire`), so that module is unaffected.

The binaries are not built here: set PROVIDER_BIN / EMULATOR_BIN, or build
`target/debug/csi-secrets-store-provider-alibabacloud` and
`target/debug/alibabacloud-emulator` with
`cargo build -p csi-secrets-store-provider-alibabacloud -p alibabacloud-emulator`.

The provider's gRPC stubs are generated at test time from
proto/v1alpha1/service.proto with grpc_tools.protoc into a temporary
directory; nothing generated is kept in the repository.
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_FILE = REPO_ROOT / "proto/v1alpha1/service.proto"
EXAMPLE_SEED = REPO_ROOT / "examples/emulator-seed.toml"
EXAMPLE_SPC = REPO_ROOT / "examples/secretproviderclass.yaml"
SOCKET_FILE = "alibabacloud.sock"
PROVIDER_SERVICE = "v1alpha1.CSIDriverProvider"
# Version.runtime_name: the upstream provider's name, kept.
RUNTIME_NAME = "secrets-store-csi-driver-provider-alibabacloud"
# What the `version` subcommand prints: the command's own name.
COMMAND_NAME = "csi-secrets-store-provider-alibabacloud"

START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 15

EMULATOR_READY = re.compile(r"^alibabacloud-emulator listening on (http://127\.0\.0\.1:(\d+))$")

# The provider signs with this key (from the environment, as a DaemonSet
# with an access-key Secret would); the nodePublishSecretRef key is another.
# Both secrets, and the canary values, must never appear in the logs.
PROVIDER_KEY = ("provider-key", "PROVIDER-SECRET-a41c9e0b")
NODE_PUBLISH_KEY = ("np-key", "NP-SECRET-9c1e77d2")
CANARY_KMS_VALUE = "CANARY-VALUE-7f3a19e4"
CANARY_OOS_VALUE = "OOS-CANARY-51d0c3a8"

# Appended to examples/emulator-seed.toml: the example stays the example,
# plus keys and canary objects of our own.
SEED_EXTRA = f"""

# --- added by tests/python/conftest.py ---
[[access_keys]]
id = "{PROVIDER_KEY[0]}"
secret = "{PROVIDER_KEY[1]}"

[[access_keys]]
id = "{NODE_PUBLISH_KEY[0]}"
secret = "{NODE_PUBLISH_KEY[1]}"

[[kms.secrets]]
name = "canary"
[[kms.secrets.versions]]
id = "c1"
stages = ["ACSCurrent"]
data = '{{"k":"{CANARY_KMS_VALUE}"}}'

[[oos.parameters]]
name = "canary/param"
[[oos.parameters.versions]]
version = 1
value = "{CANARY_OOS_VALUE}"
"""


def _binary(env_var: str, default: str, build: str) -> Path:
    configured = os.environ.get(env_var)
    path = Path(configured) if configured else REPO_ROOT / default
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file():
        pytest.fail(f"binary {path} not found: run `{build}` or set {env_var}")
    return path


def provider_binary() -> Path:
    return _binary(
        "PROVIDER_BIN",
        "target/debug/csi-secrets-store-provider-alibabacloud",
        "cargo build -p csi-secrets-store-provider-alibabacloud",
    )


def emulator_binary() -> Path:
    return _binary(
        "EMULATOR_BIN",
        "target/debug/alibabacloud-emulator",
        "cargo build -p alibabacloud-emulator",
    )


def short_tempdir(prefix: str) -> Path:
    """A directory with a short path: a Unix socket path must fit in 108 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture
def short_tmp():
    """A fresh directory with a short path (see short_tempdir), removed at teardown."""
    path = short_tempdir("csi-tmp-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# === The emulator ===


class EmulatorProcess:
    """A running emulator and its admin endpoints."""

    def __init__(self, process: subprocess.Popen, url: str, log: Path):
        self.process = process
        self.url = url
        self.log = log

    def admin(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/__emulator/{path}",
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None

    def set_latency(self, latency: str) -> None:
        self.admin("PUT", "latency", {"latency": latency})
        assert self.admin("GET", "latency") == {"latency": latency}

    def reset(self) -> None:
        self.admin("DELETE", "latency")
        self.admin("DELETE", "faults")
        self.admin("DELETE", "stats")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def emulator_service():
    """The emulator, seeded with examples/emulator-seed.toml plus SEED_EXTRA."""
    workdir = short_tempdir("csi-emu-")
    seed = workdir / "seed.toml"
    seed.write_text(EXAMPLE_SEED.read_text(encoding="utf-8") + SEED_EXTRA, encoding="utf-8")
    log_path = workdir / "emulator.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [str(emulator_binary()), "--seed", str(seed), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        first = lines.get(timeout=START_TIMEOUT_SECONDS)
    except queue.Empty:
        first = ""
    match = EMULATOR_READY.match(first.rstrip("\n"))
    if not match:
        process.kill()
        process.wait()
        log.close()
        stderr = log_path.read_text()
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(
            f"emulator did not announce its port (first line {first!r}); stderr: {stderr}\n"
            "(is the emulator binary older than examples/emulator-seed.toml? rebuild it)"
        )
    try:
        yield EmulatorProcess(process, match.group(1), log_path)
    finally:
        stop_process(process)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def cloud(emulator_service):
    """The emulator with no latency, no faults and fresh stats, before and after."""
    emulator_service.reset()
    yield emulator_service
    emulator_service.reset()


# === The provider ===


def provider_env(cloud: EmulatorProcess, key=PROVIDER_KEY) -> dict:
    """The provider's environment: endpoints on the emulator, an access key,
    and none of the caller's cloud or log settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALIBABA", "ACCESS_KEY", "SECRET_ACCESS", "CSI_PROVIDER"))
        and k != "RUST_LOG"
    }
    env.update(
        ALIBABACLOUD_KMS_ENDPOINT=cloud.url,
        ALIBABACLOUD_OOS_ENDPOINT=cloud.url,
        ACCESS_KEY_ID=key[0],
        SECRET_ACCESS_KEY=key[1],
    )
    return env


class ProviderProcess:
    """A provider process whose stderr goes to a file."""

    def __init__(self, args: list[str], env: dict, volume: Path, log: Path):
        self.args = args
        self.volume = volume
        self.socket = volume / SOCKET_FILE
        self.log_path = log
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=self._log, stdin=subprocess.DEVNULL, env=env
        )
        self.ready: dict | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 60) -> str:
        """The last lines of the logs, for failure messages."""
        return "\n".join(self.logs().splitlines()[-lines:])

    def records(self) -> list[dict]:
        """The JSON log records (with --log-format json)."""
        out = []
        for line in self.logs().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return out

    def wait_for_log(self, predicate, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for record in self.records():
                if predicate(record):
                    return record
            if self.process.poll() is not None:
                pytest.fail(
                    f"provider exited with {self.process.returncode} while waiting for {what}; "
                    f"logs:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"provider did not log {what} within {timeout}s; logs:\n{self.tail()}")
            time.sleep(0.02)

    def wait_ready(self) -> "ProviderProcess":
        self.ready = self.wait_for_log(
            lambda r: r.get("message") == "provider ready", START_TIMEOUT_SECONDS, "'provider ready'"
        )
        # The socket exists before the ready line; check anyway.
        deadline = time.monotonic() + 5
        while not self.socket.exists():
            if time.monotonic() > deadline:
                pytest.fail(f"provider logged ready but {self.socket} does not exist")
            time.sleep(0.02)
        return self

    @property
    def health_addr(self) -> str:
        assert self.ready is not None, "provider not ready"
        return self.ready["health"]

    def http_get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{self.health_addr}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """Sends `sig` and waits; returns the exit status (killed on timeout: fails)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"provider did not exit within {timeout}s of signal {sig}; logs:\n{self.tail()}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


def serve_args(volume: Path, *extra: str, verbosity: int = 5) -> list[str]:
    """`serve` as this project's chart runs it, bound to 127.0.0.1 on a free port."""
    return [
        str(provider_binary()),
        "serve",
        "--provider-volume",
        str(volume),
        "--healthz-port",
        "0",
        "--healthz-bind-address",
        "127.0.0.1",
        "--region",
        "cn-hangzhou",
        f"-v={verbosity}",
        "--log-format",
        "json",
        *extra,
    ]


class Launcher:
    """Starts provider processes; close() kills them and removes their directories."""

    def __init__(self, cloud: EmulatorProcess):
        self.cloud = cloud
        self.started: list[ProviderProcess] = []
        self.dirs: list[Path] = []

    def __call__(self, args=None, env=None, wait=True, volume: Path | None = None) -> ProviderProcess:
        """Starts `args` (default: serve_args on a fresh volume); waits for
        'provider ready' unless wait=False."""
        if volume is None:
            volume = short_tempdir("csi-vol-")
            self.dirs.append(volume)
        log = short_tempdir("csi-log-")
        self.dirs.append(log)
        args = serve_args(volume) if args is None else args
        env = provider_env(self.cloud) if env is None else env
        provider = ProviderProcess(args, env, volume, log / "provider.log")
        self.started.append(provider)
        return provider.wait_ready() if wait else provider

    def close(self) -> None:
        for provider in self.started:
            provider.close()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def launch(cloud):
    """launch(args=None, env=None, wait=True, volume=None) -> ProviderProcess;
    every process started is killed at teardown."""
    launcher = Launcher(cloud)
    yield launcher
    launcher.close()


@pytest.fixture
def provider(launch):
    """A provider serving on a fresh socket, with the emulator behind it."""
    return launch()


# === The gRPC client, as the Secrets Store CSI Driver dials the provider ===

# The driver's service config (pkg/secrets-store/provider_client.go), with
# the keys written in their canonical (lowerCamel) form.
DRIVER_SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": PROVIDER_SERVICE}],
            "waitForReady": True,
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "1s",
                "maxBackoff": "10s",
                "backoffMultiplier": 1.1,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


@pytest.fixture(scope="session")
def stubs():
    """Python modules generated from proto/v1alpha1/service.proto (pb2 and pb2_grpc)."""
    try:
        from grpc_tools import protoc
    except ImportError:
        pytest.fail("grpcio-tools is missing: pip install -r tests/python/requirements.txt")
    out = short_tempdir("csi-stubs-")
    well_known = Path(protoc.__file__).parent / "_proto"
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_FILE.parent.parent}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO_FILE),
        ]
    )
    if status != 0:
        pytest.fail(f"grpc_tools.protoc failed on {PROTO_FILE} with status {status}")
    sys.path.insert(0, str(out))
    try:
        pb2 = importlib.import_module("v1alpha1.service_pb2")
        pb2_grpc = importlib.import_module("v1alpha1.service_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    yield types.SimpleNamespace(pb2=pb2, pb2_grpc=pb2_grpc)
    shutil.rmtree(out, ignore_errors=True)


def dial(socket: Path):
    """A channel to the provider socket as the driver opens it: unix:, authority
    localhost, insecure, the driver's service config with retries."""
    import grpc

    return grpc.insecure_channel(
        f"unix:{socket}",
        options=[
            ("grpc.default_authority", "localhost"),
            ("grpc.service_config", json.dumps(DRIVER_SERVICE_CONFIG)),
            ("grpc.enable_retries", 1),
        ],
    )


def spc_parameters(path: Path = EXAMPLE_SPC) -> tuple[str, dict]:
    """(metadata.name, spec.parameters) of a SecretProviderClass manifest."""
    import yaml

    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert doc["spec"]["provider"] == "alibabacloud"
    return doc["metadata"]["name"], dict(doc["spec"]["parameters"])


POD = {
    "name": "app-7d9f8b6c5-x2x4q",
    "namespace": "team-a",
    "uid": "2b1c7e9a-5f3d-4c1e-9a7b-6d8e0f1a2b3c",
    "service_account": "app",
}


def mount_request(
    pb2,
    parameters: dict,
    spc_name: str = "test-secrets",
    secrets: dict | None = None,
    pod: dict = POD,
    permission: int = 0o644,
):
    """A MountRequest built as the driver's nodeserver builds it: the SPC
    parameters plus the volume context (secretProviderClass, the kubelet pod
    info, ephemeral), JSON-encoded like Go's json.Marshal of a map (sorted
    keys); secrets "{}" without a nodePublishSecretRef; permission "420"."""
    attributes = dict(parameters)
    attributes.update(
        {
            "secretProviderClass": spc_name,
            "csi.storage.k8s.io/pod.name": pod["name"],
            "csi.storage.k8s.io/pod.namespace": pod["namespace"],
            "csi.storage.k8s.io/pod.uid": pod["uid"],
            "csi.storage.k8s.io/serviceAccount.name": pod["service_account"],
            "csi.storage.k8s.io/ephemeral": "true",
        }
    )
    return pb2.MountRequest(
        attributes=json.dumps(attributes, sort_keys=True, separators=(",", ":")),
        secrets=json.dumps(secrets or {}, sort_keys=True, separators=(",", ":")),
        target_path=(
            f"/var/lib/kubelet/pods/{pod['uid']}/volumes/kubernetes.io~csi/secrets-store-inline/mount"
        ),
        permission=json.dumps(permission),
        current_object_version=[],
    )


def objects_request(pb2, objects_yaml: str, **kwargs):
    """A MountRequest for a SecretProviderClass with just `objects` (and region)."""
    return mount_request(pb2, {"region": "cn-hangzhou", "objects": objects_yaml}, **kwargs)
