"""The provider's gRPC protocol, spoken by a non-Rust gRPC stack as the driver speaks it.

The stubs are generated at test time from proto/v1alpha1/service.proto with
grpc_tools.protoc (conftest.py `stubs`); the channel is the driver's:
`unix:<socket>`, authority `localhost`, insecure, its service config with
waitForReady and retries on UNAVAILABLE (conftest.py `dial`). The Mount
requests are built as the driver's nodeserver builds them
(conftest.py `mount_request`). Behind the provider is the emulator binary,
seeded with examples/emulator-seed.toml.

Binaries: PROVIDER_BIN / EMULATOR_BIN, or
`cargo build -p csi-secrets-store-provider-alibabacloud -p alibabacloud-emulator`.
"""

from __future__ import annotations

import base64
import json
import re
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import (
    CANARY_KMS_VALUE,
    EXAMPLE_SPC,
    NODE_PUBLISH_KEY,
    PROVIDER_SERVICE,
    REPO_ROOT,
    RUNTIME_NAME,
    Launcher,
    dial,
    mount_request,
    objects_request,
    spc_parameters,
)

# semver.org's regular expression for a SemVer 2.0.0 version.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)

# Generous for a debug build; the calls that test deadlines set their own.
CALL_TIMEOUT = 20


@pytest.fixture(scope="module")
def served(emulator_service):
    """One provider for the module (each test resets the emulator through `cloud`)."""
    launcher = Launcher(emulator_service)
    try:
        yield launcher()
    finally:
        launcher.close()


@pytest.fixture
def channel(served, cloud):
    with dial(served.socket) as channel:
        yield channel


@pytest.fixture
def csi(stubs, channel):
    return stubs.pb2_grpc.CSIDriverProviderStub(channel)


def rpc_error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def files_of(response) -> dict:
    paths = [f.path for f in response.files]
    assert len(paths) == len(set(paths)), f"duplicate file paths: {paths}"
    return {f.path: (f.mode, bytes(f.contents)) for f in response.files}


def versions_of(response) -> list:
    return [(v.id, v.version) for v in response.object_version]


# === Version ===


def test_version(stubs, csi):
    response = csi.Version(stubs.pb2.VersionRequest(version="v1alpha1"), timeout=CALL_TIMEOUT)
    assert response.version == "v1alpha1"
    assert response.runtime_name == RUNTIME_NAME
    assert SEMVER.match(response.runtime_version), response.runtime_version
    workspace = tomllib.loads((REPO_ROOT / "Cargo.toml").read_text(encoding="utf-8"))
    assert response.runtime_version == workspace["workspace"]["package"]["version"]


def test_wait_for_ready_reaches_a_provider_that_starts_later(stubs, cloud, short_tmp):
    # The driver's service config has waitForReady: a call made before the
    # socket exists waits for the provider instead of failing UNAVAILABLE.
    volume = short_tmp
    launcher = Launcher(cloud)
    try:
        with dial(volume / "alibabacloud.sock") as channel:
            stub = stubs.pb2_grpc.CSIDriverProviderStub(channel)
            pending = stub.Version.future(
                stubs.pb2.VersionRequest(version="v1alpha1"), timeout=CALL_TIMEOUT
            )
            time.sleep(0.3)
            assert not pending.done(), "the call did not wait for the provider"
            launcher(volume=volume)
            assert pending.result().runtime_name == RUNTIME_NAME
    finally:
        launcher.close()


# === Mount ===


def test_mount_of_the_seed_example(stubs, csi, cloud):
    name, parameters = spc_parameters(EXAMPLE_SPC)
    request = mount_request(stubs.pb2, parameters, spc_name=name)
    # The request really is the driver's shape.
    attributes = json.loads(request.attributes)
    assert attributes["secretProviderClass"] == "test-secrets"
    assert attributes["csi.storage.k8s.io/ephemeral"] == "true"
    assert request.secrets == "{}" and request.permission == "420"

    response = csi.Mount(request, timeout=CALL_TIMEOUT)

    assert files_of(response) == {
        "username": (0o644, b"testuser"),
        "password": (0o644, b"testpassword"),
        "test": (0o644, b'{"username":"testuser","password":"testpassword"}'),
        # pathTranslation defaults to "_"
        "db_password": (0o644, b"second-password"),
    }
    # One version per file, sorted by id: the KMS VersionId, the OOS version.
    assert versions_of(response) == [
        ("db_password", "2"),
        ("password", "v1"),
        ("test", "v1"),
        ("username", "v1"),
    ]
    assert not response.HasField("error")
    # One backend call per object, signed and accepted by the emulator.
    actions = cloud.admin("GET", "stats")["actions"]
    assert actions["GetSecretValue"]["outcomes"] == {"Success": 1}
    assert actions["GetSecretParameter"]["outcomes"] == {"Success": 1}


@pytest.mark.parametrize(
    "permission, file_permission, want",
    [
        pytest.param(0o600, None, 0o600, id="permission-384"),
        pytest.param(0o644, "0440", 0o440, id="filePermission-0440"),
    ],
)
def test_mount_file_modes(stubs, csi, permission, file_permission, want):
    objects = "- objectName: db/password\n  objectType: oos\n  objectVersion: '1'\n"
    if file_permission:
        objects += f"  filePermission: '{file_permission}'\n"
    objects += "- objectName: binary-test\n"
    response = csi.Mount(
        objects_request(stubs.pb2, objects, permission=permission), timeout=CALL_TIMEOUT
    )
    files = files_of(response)
    assert files["db_password"] == (want, b"first-password")
    # The other object keeps the request's default mode; a binary secret
    # (served base64-encoded) is written as its bytes.
    assert files["binary-test"] == (permission, base64.b64decode("AAECAwQFBgf//iBiaW5hcnk="))
    assert versions_of(response) == [("binary-test", "v1"), ("db_password", "1")]


def test_mount_with_node_publish_secret_ref(stubs, csi, cloud):
    request = objects_request(
        stubs.pb2,
        "- objectName: canary\n  jmesPath:\n    - path: k\n      objectAlias: k\n",
        secrets={"access_key": NODE_PUBLISH_KEY[0], "access_secret": NODE_PUBLISH_KEY[1]},
    )
    response = csi.Mount(request, timeout=CALL_TIMEOUT)
    assert files_of(response)["k"] == (0o644, CANARY_KMS_VALUE.encode())

    wrong = objects_request(
        stubs.pb2,
        "- objectName: canary\n",
        secrets={"access_key": NODE_PUBLISH_KEY[0], "access_secret": "WRONG-SECRET-5b2d"},
    )
    error = rpc_error(lambda: csi.Mount(wrong, timeout=CALL_TIMEOUT))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
    assert 'objects[0] (objectName "canary")' in error.details()
    assert "SignatureDoesNotMatch" in error.details()
    assert "WRONG-SECRET-5b2d" not in error.details()


def test_concurrent_mounts(stubs, csi):
    name, parameters = spc_parameters(EXAMPLE_SPC)
    request = mount_request(stubs.pb2, parameters, spc_name=name)
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: csi.Mount(request, timeout=CALL_TIMEOUT), range(16)))
    for response in responses:
        assert files_of(response)["username"] == (0o644, b"testuser")


# === Errors as a Python client sees them ===


@pytest.mark.parametrize(
    "objects, label, backend_code",
    [
        pytest.param(
            "- objectName: missing\n",
            'objects[0] (objectName "missing") objectType kms',
            "Forbidden.ResourceNotFound",
            id="kms",
        ),
        pytest.param(
            "- objectName: test\n- objectName: db/nope\n  objectType: oos\n",
            'objects[1] (objectName "db/nope") objectType oos',
            "EntityNotExists.Parameter",
            id="oos",
        ),
        pytest.param(
            "- objectName: test\n  objectVersion: v9\n",
            'objects[0] (objectName "test") objectType kms',
            None,
            id="kms-version",
        ),
    ],
)
def test_missing_object_is_not_found(stubs, csi, objects, label, backend_code):
    error = rpc_error(lambda: csi.Mount(objects_request(stubs.pb2, objects), timeout=CALL_TIMEOUT))
    assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
    assert label in error.details()
    if backend_code:
        assert backend_code in error.details()


@pytest.mark.parametrize(
    "objects, parameters, wanted",
    [
        pytest.param(
            "- objectName: test\n  objectAliass: t\n",
            {},
            ['objects[0] has an unknown field "objectAliass"'],
            id="unknown-field",
        ),
        pytest.param(
            "- objectName: test\n  objectType: vault\n",
            {},
            ['objects[0] (objectName "test")', 'unsupported object type "vault", only support "kms" and "oos"'],
            id="unsupported-type",
        ),
        pytest.param(
            "- objectName: test\n  jmesPath:\n    - path: nokey\n      objectAlias: x\n",
            {},
            ['objects[0] (objectName "test")', "jmes path - nokey for object alias - x"],
            id="jmes-path-misses",
        ),
        pytest.param(
            "- objectName: test\n  objectAlias: ../escape\n",
            {},
            ['objects[0] (objectName "test")', "objectAlias"],
            id="path-escape",
        ),
        pytest.param(
            "- objectName: test\n",
            {"region": "Not A Region"},
            ['region "Not A Region"'],
            id="bad-region",
        ),
        pytest.param("", {}, ["has no objects"], id="no-objects"),
    ],
)
def test_bad_secret_provider_class_is_invalid_argument(stubs, csi, cloud, objects, parameters, wanted):
    request = mount_request(stubs.pb2, {"region": "cn-hangzhou", "objects": objects, **parameters})
    error = rpc_error(lambda: csi.Mount(request, timeout=CALL_TIMEOUT))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    for text in wanted:
        assert text in error.details()


def test_request_without_pod_info_is_invalid_argument(stubs, csi):
    request = objects_request(stubs.pb2, "- objectName: test\n")
    attributes = json.loads(request.attributes)
    del attributes["csi.storage.k8s.io/pod.uid"]
    request.attributes = json.dumps(attributes)
    error = rpc_error(lambda: csi.Mount(request, timeout=CALL_TIMEOUT))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "csi.storage.k8s.io/pod.uid" in error.details()
    assert "podInfoOnMount" in error.details()


@pytest.mark.parametrize(
    "objects, labels",
    [
        pytest.param("- objectName: test\n", ['objects[0] (objectName "test")'], id="kms"),
        pytest.param(
            "- objectName: binary-test\n- objectName: db/password\n  objectType: oos\n",
            ['objects[0] (objectName "binary-test")', 'objects[1] (objectName "db/password")'],
            id="kms-and-oos",
        ),
    ],
)
def test_deadline_is_answered_by_the_provider(stubs, csi, cloud, objects, labels):
    # The emulator answers after 4 s; the caller allows 2.5 s. The provider
    # (limits.deadline_margin 1 s) must give up first and say why, naming
    # the objects; the client's own expiry would say only "Deadline Exceeded".
    cloud.set_latency("4s")
    timeout = 2.5
    started = time.monotonic()
    error = rpc_error(lambda: csi.Mount(objects_request(stubs.pb2, objects), timeout=timeout))
    elapsed = time.monotonic() - started
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error.details()
    assert error.details() != "Deadline Exceeded"
    for label in labels:
        assert label in error.details(), error.details()
    assert elapsed < timeout - 0.3, f"answered after {elapsed:.2f}s: the client timed out, not the provider"


def test_deadline_shorter_than_the_margin_is_refused_at_once(stubs, csi, cloud):
    error = rpc_error(
        lambda: csi.Mount(objects_request(stubs.pb2, "- objectName: test\n"), timeout=0.8)
    )
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "limits.deadline_margin" in error.details(), error.details()
    assert cloud.admin("GET", "stats").get("actions", {}) == {}, "no backend call was made"


# === grpc.health.v1 ===


def test_health_check_serving(channel):
    health = health_pb2_grpc.HealthStub(channel)
    response = health.Check(
        health_pb2.HealthCheckRequest(service=PROVIDER_SERVICE), timeout=CALL_TIMEOUT
    )
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    error = rpc_error(
        lambda: health.Check(
            health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=CALL_TIMEOUT
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
