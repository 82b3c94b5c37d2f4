"""The provider binary's /metrics, read by real Prometheus parsers.

A provider runs against the emulator (conftest.py); a few Mounts go over its
socket; then its health server's /metrics is scraped in both formats and
parsed with the official Python client's parsers (the Prometheus text format
0.0.4 and OpenMetrics 1.0), and, where it is installed, checked by
`promtool check metrics`. Every expected family must be there, the counters
must have moved, and no label value may carry the pod, namespace, service
account, SecretProviderClass or object names of the Mounts.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import grpc
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from conftest import dial, objects_request

CALL_TIMEOUT = 20
PREFIX = "alibabacloud_provider_"

# Names that must never be label values (nor appear at all).
POD = {
    "name": "metrics-pod-3f9a1c",
    "namespace": "metrics-ns-8c21e7",
    "uid": "6c0f5b7e-1d2a-4b3c-8e9f-0a1b2c3d4e5f",
    "service_account": "metrics-sa-77d0",
}
SPC_NAME = "metrics-spc-a9b8"
OBJECTS = """
- objectName: "canary"
  objectType: "kms"
- objectName: "db/password"
  objectType: "oos"
"""
MISSING = "metrics-missing-secret-e4f1"

EXPECTED_FAMILIES = {
    # family name as the parser gives it (counters without _total)
    "build_info": "gauge",
    "start_time_seconds": "gauge",
    "mounts": "counter",
    "mount_duration_seconds": "histogram",
    "mounts_in_flight": "gauge",
    "object_fetches": "counter",
    "object_fetches_in_flight": "gauge",
    "backend_calls": "counter",
    "backend_call_duration_seconds": "histogram",
    "backend_retries": "counter",
    "backend_throttled": "counter",
    "credential_cache_requests": "counter",
    "credential_refreshes": "counter",
    "credential_resolutions": "counter",
    "fetches_coalesced": "counter",
    "value_cache_requests": "counter",
    "plugin_instantiation_seconds": "histogram",
    "plugin_traps": "counter",
    "plugin_timeouts": "counter",
}


def scrape(provider, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(f"http://{provider.health_addr}/metrics")
    if accept:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return response.headers["Content-Type"], response.read().decode()


def samples(families) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families
        for s in family.samples
    }


def value(all_samples, name: str, **labels) -> float | None:
    for (sample_name, sample_labels), v in all_samples.items():
        if sample_name == name and all((k, w) in sample_labels for k, w in labels.items()):
            return v
    return None


@pytest.fixture
def mounted(provider, stubs):
    """A provider that has served one good Mount and one failed one."""
    with dial(provider.socket) as channel:
        stub = stubs.pb2_grpc.CSIDriverProviderStub(channel)
        response = stub.Mount(
            objects_request(stubs.pb2, OBJECTS, spc_name=SPC_NAME, pod=POD), timeout=CALL_TIMEOUT
        )
        assert {f.path for f in response.files} == {"canary", "db_password"}
        with pytest.raises(grpc.RpcError) as failed:
            stub.Mount(
                objects_request(
                    stubs.pb2, f"- objectName: {MISSING}\n", spc_name=SPC_NAME, pod=POD
                ),
                timeout=CALL_TIMEOUT,
            )
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    return provider


def test_scrape_parses_with_the_prometheus_text_parser(mounted):
    content_type, text = scrape(mounted)
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    families = list(text_string_to_metric_families(text))
    types = {f.name: f.type for f in families}
    for name, kind in EXPECTED_FAMILIES.items():
        assert types.get(PREFIX + name) == kind, (name, types.get(PREFIX + name), sorted(types))
    for family in families:
        assert family.name.startswith(PREFIX), family.name
        assert family.documentation, family.name

    got = samples(families)
    assert value(got, PREFIX + "mounts_total", grpc_code="OK") == 1
    assert value(got, PREFIX + "mounts_total", grpc_code="NotFound") == 1
    assert value(got, PREFIX + "mount_duration_seconds_count", grpc_code="OK") == 1
    assert value(got, PREFIX + "mounts_in_flight") == 0
    assert (
        value(got, PREFIX + "backend_calls_total", product="kms", action="GetSecretValue", code="ok")
        == 1
    )
    assert (
        value(got, PREFIX + "backend_calls_total", product="oos", action="GetSecretParameter", code="ok")
        == 1
    )
    assert value(got, PREFIX + "object_fetches_total", object_type="kms", result="ok") == 1
    assert value(got, PREFIX + "object_fetches_total", object_type="oos", result="ok") == 1
    assert value(got, PREFIX + "object_fetches_total", object_type="kms", result="not_found") == 1
    assert value(got, PREFIX + "credential_resolutions_total", link="environment_access_key") == 2
    assert value(got, PREFIX + "plugin_instantiation_seconds_count", plugin="kms") == 2
    assert value(got, PREFIX + "plugin_instantiation_seconds_count", plugin="oos") == 1
    (version,) = [dict(labels)["version"] for (name, labels) in got if name == PREFIX + "build_info"]
    assert version


def test_no_label_carries_a_pod_namespace_or_object_name(mounted):
    _, text = scrape(mounted)
    forbidden = [
        POD["name"],
        POD["namespace"],
        POD["uid"],
        POD["service_account"],
        SPC_NAME,
        "canary",
        "db/password",
        MISSING,
    ]
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for key, label in sample.labels.items():
                for name in forbidden:
                    assert name not in label, (sample.name, key, label)
    for name in forbidden:
        assert name not in text, name


def test_openmetrics_when_asked_and_its_parser_accepts_it(mounted):
    content_type, text = scrape(
        mounted, "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    )
    assert content_type.startswith("application/openmetrics-text; version=1.0.0"), content_type
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}
    for name, kind in EXPECTED_FAMILIES.items():
        assert families[PREFIX + name].type == kind, name
    got = samples(families.values())
    assert value(got, PREFIX + "mounts_total", grpc_code="OK") == 1


def test_promtool_accepts_the_scrape(mounted):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    _, text = scrape(mounted)
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
