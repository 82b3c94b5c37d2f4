"""Helpers and fixtures of the chart tests: a real helm, a temporary copy of the
chart with a stand-in driver dependency, and helpers to render it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHART_NAME = "csi-secrets-store-provider-alibabacloud"
CHART_SRC = REPO / "charts" / CHART_NAME
STANDIN_DRIVER = HERE / "standin" / "secrets-store-csi-driver"
VALUES = HERE / "values"

# The documented install: release named after the chart, in kube-system.
RELEASE = CHART_NAME
NAMESPACE = "kube-system"

# The chart's kubeVersion floor, and the newest schemas kubernetes-validate ships.
KUBE_VERSIONS = ("1.30.0", "1.37.0")

# Paths and names the binary uses (see the Dockerfile and the host's defaults).
BINARY = "/usr/local/bin/csi-secrets-store-provider-alibabacloud"
CONFIG_PATH = "/etc/csi-secrets-store-provider-alibabacloud/config.toml"
PLUGIN_DIR = "/etc/csi-secrets-store-provider-alibabacloud/plugins"
RRSA_TOKEN_PATH = "/var/run/secrets/tokens/csi-secrets-store-provider-alibabacloud"
STS_AUDIENCE = "sts.aliyuncs.com"
SOCKET_NAME = "alibabacloud.sock"
PROVIDERS_DIR = "/var/run/secrets-store-csi-providers"


def find_helm() -> str | None:
    """helm from $HELM, else the one scripts/install-helm puts in .tools/bin."""
    candidate = os.environ.get("HELM") or str(REPO / ".tools" / "bin" / "helm")
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    return shutil.which(candidate) if os.environ.get("HELM") else None


@pytest.fixture(scope="session")
def helm() -> str:
    path = find_helm()
    if path is None:
        pytest.fail(
            "helm not found: run scripts/install-helm (installs .tools/bin/helm) "
            "or set HELM=/path/to/helm"
        )
    return path


@pytest.fixture(scope="session")
def chart(tmp_path_factory) -> Path:
    """A copy of the chart whose charts/ holds the stand-in driver chart; the
    source tree is never modified."""
    root = tmp_path_factory.mktemp("chart")
    dest = root / CHART_NAME
    shutil.copytree(CHART_SRC, dest, ignore=shutil.ignore_patterns("charts"))
    shutil.copytree(STANDIN_DRIVER, dest / "charts" / "secrets-store-csi-driver")
    return dest


@dataclass
class Rendered:
    """The documents `helm template` produced."""

    docs: list[dict]

    def all(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
        return found[0]

    def has(self, kind: str) -> bool:
        return bool(self.all(kind))

    @property
    def daemonset(self) -> dict:
        return self.one("DaemonSet")

    @property
    def pod(self) -> dict:
        return self.daemonset["spec"]["template"]["spec"]

    @property
    def container(self) -> dict:
        (container,) = self.pod["containers"]
        return container

    def volume(self, name: str) -> dict:
        (volume,) = [v for v in self.pod["volumes"] if v["name"] == name]
        return volume

    def mount(self, name: str) -> dict:
        (mount,) = [m for m in self.container["volumeMounts"] if m["name"] == name]
        return mount

    @property
    def env(self) -> dict[str, dict]:
        return {e["name"]: e for e in self.container.get("env", [])}

    @property
    def config_toml_text(self) -> str:
        configmap = self.one("ConfigMap", f"{RELEASE}-config")
        return configmap["data"]["config.toml"]

    @property
    def config(self) -> dict:
        return tomllib.loads(self.config_toml_text)

    @property
    def driver_values(self) -> dict:
        """The values the (stand-in) driver subchart received."""
        import json

        configmap = self.one("ConfigMap", "stand-in-secrets-store-csi-driver-values")
        return json.loads(configmap["data"]["values.json"])


def helm_args(value_files=(), sets=(), set_strings=()) -> list[str]:
    args: list[str] = []
    for f in value_files:
        args += ["-f", str(VALUES / f) if not os.path.isabs(str(f)) else str(f)]
    for s in sets:
        args += ["--set", s]
    for s in set_strings:
        args += ["--set-string", s]
    return args


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def render(helm, chart):
    """render(value_files, sets, set_strings, kube_version) -> Rendered;
    cached, since many tests look at the same rendering."""
    cache: dict = {}

    def _render(value_files=(), sets=(), set_strings=(), kube_version=KUBE_VERSIONS[0]):
        key = (tuple(value_files), tuple(sets), tuple(set_strings), kube_version)
        if key not in cache:
            proc = run_helm(
                helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE,
                "--kube-version", kube_version, *helm_args(value_files, sets, set_strings),
            )
            assert proc.returncode == 0, f"helm template failed:\n{proc.stderr}"
            docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
            cache[key] = Rendered(docs)
        return cache[key]

    return _render


@pytest.fixture(scope="session")
def render_error(helm, chart):
    """render_error(value_files, sets, set_strings) -> helm's error output;
    fails the test if rendering succeeds."""

    def _render_error(value_files=(), sets=(), set_strings=(), kube_version=KUBE_VERSIONS[0]):
        proc = run_helm(
            helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE,
            "--kube-version", kube_version, *helm_args(value_files, sets, set_strings),
        )
        assert proc.returncode != 0, "helm template succeeded, expected an error"
        return proc.stderr

    return _render_error


def chart_values() -> dict:
    return yaml.safe_load((CHART_SRC / "values.yaml").read_text())
