"""Cross-check: the official Alibaba Cloud Python SDKs against the emulator binary.

The emulator verifies every signature it receives (V3 ACS3-HMAC-SHA256 by
default, RPC V1 HMAC-SHA1 with signature_algorithm='v2'), so each passing call
proves that it accepts real SDK traffic, quirks included; each error test
proves that the SDK surfaces the emulator's error as it would the real one.

The binary is not built here: set EMULATOR_BIN, or build
`target/debug/alibabacloud-emulator` with `cargo build -p alibabacloud-emulator`.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest
from darabonba.core import DaraCore
from alibabacloud_kms20160120 import models as kms_models
from alibabacloud_kms20160120.client import Client as KmsClient
from alibabacloud_oos20190601 import models as oos_models
from alibabacloud_oos20190601.client import Client as OosClient
from alibabacloud_tea_openapi import utils_models
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_LINE = re.compile(r"^alibabacloud-emulator listening on http://127\.0\.0\.1:(\d+)$")
START_TIMEOUT_SECONDS = 30

SECRET_JSON = '{"username":"testuser","password":"testpassword"}'
STS = ("STS.testid", "stssecret", "CAIS-test-token/+=")

SEED = f"""
region = "cn-hangzhou"
account_id = "1234567890123456"

[[access_keys]]
id = "testid"
secret = "testsecret"

[[access_keys]]
id = "{STS[0]}"
secret = "{STS[1]}"
security_token = "{STS[2]}"
expires_at = "2099-01-01T00:00:00Z"

[[access_keys]]
id = "limitedid"
secret = "limitedsecret"
allow = ["kms:secret/test"]

[[kms.secrets]]
name = "test"
[[kms.secrets.versions]]
id = "v1"
stages = ["ACSCurrent"]
data = '{SECRET_JSON}'
create_time = "2024-01-02T03:04:05Z"
[[kms.secrets.versions]]
id = "v0"
stages = ["ACSPrevious"]
data = "old"

[[kms.secrets]]
name = "binary-test"
type = "binary"
[[kms.secrets.versions]]
id = "b1"
stages = ["ACSCurrent"]
data = "AAECAwQFBgf//iBiaW5hcnk="

[[kms.secrets]]
name = "rds"
secret_type = "Rds"
extended_config = '{{"SecretSubType":"SingleUser"}}'
[[kms.secrets.versions]]
id = "r1"
stages = ["ACSCurrent"]
data = '{{"AccountName":"app","AccountPassword":"pw"}}'

[[kms.secrets]]
name = "my secret+*~/中文"
[[kms.secrets.versions]]
id = "q1"
stages = ["ACSCurrent"]
data = "quirky"

[[oos.parameters]]
name = "db/password"
[[oos.parameters.versions]]
version = 1
value = "first-password"
[[oos.parameters.versions]]
version = 2
value = "second-password"
"""


def emulator_binary() -> Path:
    configured = os.environ.get("EMULATOR_BIN")
    path = Path(configured) if configured else REPO_ROOT / "target/debug/alibabacloud-emulator"
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file():
        pytest.fail(
            f"emulator binary {path} not found: run `cargo build -p alibabacloud-emulator` "
            "or set EMULATOR_BIN"
        )
    return path


class Emulator:
    """A running emulator process and its admin endpoints."""

    def __init__(self, process: subprocess.Popen, port: int):
        self.process = process
        self.port = port
        self.endpoint = f"127.0.0.1:{port}"

    def admin(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://{self.endpoint}/__emulator/{path}",
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    seed = tmp_path_factory.mktemp("emulator") / "seed.toml"
    seed.write_text(SEED, encoding="utf-8")
    log = (seed.parent / "emulator.log").open("w")
    process = subprocess.Popen(
        [str(emulator_binary()), "--seed", str(seed), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    # readline() blocks; read in a thread so that a hung start fails the test.
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        first = lines.get(timeout=START_TIMEOUT_SECONDS)
    except queue.Empty:
        first = ""
    match = READY_LINE.match(first.rstrip("\n"))
    if not match:
        process.kill()
        process.wait()
        log.close()
        pytest.fail(
            f"emulator did not announce its port (first line {first!r}); "
            f"stderr: {(seed.parent / 'emulator.log').read_text()}"
        )
    try:
        yield Emulator(process, int(match.group(1)))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(autouse=True)
def no_faults(emulator):
    emulator.admin("DELETE", "faults")
    yield
    emulator.admin("DELETE", "faults")


@pytest.fixture
def wire(monkeypatch):
    """The requests the SDK sends, as (query, lower-cased headers)."""
    sent = []
    send = DaraCore.do_action

    def recording(request, runtime=None):
        sent.append((dict(request.query), {k.lower(): v for k, v in request.headers.items()}))
        return send(request, runtime)

    monkeypatch.setattr(DaraCore, "do_action", staticmethod(recording))
    return sent


def config(emulator, signature_algorithm=None, key=("testid", "testsecret"), token=None):
    return utils_models.Config(
        endpoint=emulator.endpoint,
        protocol="http",
        region_id="cn-hangzhou",
        access_key_id=key[0],
        access_key_secret=key[1],
        security_token=token,
        signature_algorithm=signature_algorithm,
    )


def kms(emulator, **kwargs) -> KmsClient:
    return KmsClient(config(emulator, **kwargs))


def oos(emulator, **kwargs) -> OosClient:
    return OosClient(config(emulator, **kwargs))


SIGNATURES = [pytest.param(None, id="v3"), pytest.param("v2", id="v1")]


# === KMS GetSecretValue ===


@pytest.mark.parametrize("algorithm", SIGNATURES)
def test_kms_get_secret_value(emulator, algorithm, wire):
    response = kms(emulator, signature_algorithm=algorithm).get_secret_value(
        kms_models.GetSecretValueRequest(secret_name="test")
    )
    # The SDK really used the signature this case is named after.
    [(query, headers)] = wire
    if algorithm is None:
        assert headers["authorization"].startswith("ACS3-HMAC-SHA256 ")
        assert "Signature" not in query
    else:
        assert "authorization" not in headers
        assert (query["SignatureMethod"], query["SignatureVersion"]) == ("HMAC-SHA1", "1.0")
    body = response.body
    assert response.status_code == 200
    assert body.secret_name == "test"
    assert body.secret_data == SECRET_JSON
    assert json.loads(body.secret_data) == {"username": "testuser", "password": "testpassword"}
    assert body.version_id == "v1"
    assert body.version_stages.version_stage == ["ACSCurrent"]
    assert body.secret_data_type == "text"
    assert body.secret_type == "Generic"
    assert body.create_time == "2024-01-02T03:04:05Z"
    assert body.request_id == response.headers["x-acs-request-id"]


@pytest.mark.parametrize("algorithm", SIGNATURES)
def test_kms_with_sts_security_token(emulator, algorithm):
    client = kms(emulator, signature_algorithm=algorithm, key=STS[:2], token=STS[2])
    body = client.get_secret_value(kms_models.GetSecretValueRequest(secret_name="test")).body
    assert body.secret_data == SECRET_JSON


@pytest.mark.parametrize("algorithm", SIGNATURES)
def test_kms_pinned_version_and_previous_stage(emulator, algorithm):
    client = kms(emulator, signature_algorithm=algorithm)
    pinned = client.get_secret_value(
        kms_models.GetSecretValueRequest(secret_name="test", version_id="v0")
    ).body
    assert (pinned.version_id, pinned.secret_data) == ("v0", "old")
    previous = client.get_secret_value(
        kms_models.GetSecretValueRequest(secret_name="test", version_stage="ACSPrevious")
    ).body
    assert previous.version_id == "v0"
    assert previous.version_stages.version_stage == ["ACSPrevious"]


def test_kms_binary_secret_is_base64_text(emulator):
    body = kms(emulator).get_secret_value(
        kms_models.GetSecretValueRequest(secret_name="binary-test")
    ).body
    assert body.secret_data_type == "binary"
    assert body.secret_data == "AAECAwQFBgf//iBiaW5hcnk="


@pytest.mark.parametrize("algorithm", SIGNATURES)
def test_kms_extended_config_with_python_booleans(emulator, algorithm):
    # The SDK sends FetchExtendedConfig=True (capitalised).
    body = kms(emulator, signature_algorithm=algorithm).get_secret_value(
        kms_models.GetSecretValueRequest(secret_name="rds", fetch_extended_config=True)
    ).body
    assert body.secret_type == "Rds"
    assert json.loads(body.extended_config) == {"SecretSubType": "SingleUser"}


@pytest.mark.parametrize("algorithm", SIGNATURES)
def test_kms_secret_name_with_special_characters(emulator, algorithm):
    # V3 query arrives form-encoded (space as '+'); both must verify.
    body = kms(emulator, signature_algorithm=algorithm).get_secret_value(
        kms_models.GetSecretValueRequest(secret_name="my secret+*~/中文")
    ).body
    assert body.secret_data == "quirky"


def test_kms_secret_by_arn(emulator):
    body = kms(emulator).get_secret_value(
        kms_models.GetSecretValueRequest(
            secret_name="acs:kms:cn-hangzhou:1234567890123456:secret/test"
        )
    ).body
    assert body.secret_name == "test"


# === OOS GetSecretParameter ===


@pytest.mark.parametrize("algorithm", SIGNATURES)
def test_oos_get_secret_parameter_latest(emulator, algorithm):
    body = oos(emulator, signature_algorithm=algorithm).get_secret_parameter(
        oos_models.GetSecretParameterRequest(
            name="db/password", with_decryption=True, region_id="cn-hangzhou"
        )
    ).body
    assert body.parameter.name == "db/password"
    assert body.parameter.parameter_version == 2
    assert body.parameter.type == "Secret"
    assert body.parameter.value == "second-password"
    assert body.request_id


def test_oos_get_secret_parameter_version(emulator):
    body = oos(emulator).get_secret_parameter(
        oos_models.GetSecretParameterRequest(
            name="db/password", with_decryption=True, parameter_version=1
        )
    ).body
    assert (body.parameter.parameter_version, body.parameter.value) == (1, "first-password")


def test_oos_without_decryption_has_no_value(emulator):
    body = oos(emulator).get_secret_parameter(
        oos_models.GetSecretParameterRequest(name="db/password")
    ).body
    assert body.parameter.value is None


# === Errors as the SDK surfaces them ===


def client_error(call) -> ClientException:
    with pytest.raises(ClientException) as raised:
        call()
    return raised.value


def test_kms_not_found(emulator):
    error = client_error(
        lambda: kms(emulator).get_secret_value(kms_models.GetSecretValueRequest(secret_name="nope"))
    )
    assert (error.code, error.status_code) == ("Forbidden.ResourceNotFound", 404)
    assert "Resource not found." in error.message
    assert error.data["Recommend"].startswith("https://api.aliyun.com/troubleshoot?q=")


def test_oos_not_found(emulator):
    error = client_error(
        lambda: oos(emulator).get_secret_parameter(
            oos_models.GetSecretParameterRequest(name="db/nope", with_decryption=True)
        )
    )
    assert (error.code, error.status_code) == ("EntityNotExists.Parameter", 404)


def test_kms_no_permission(emulator):
    client = kms(emulator, key=("limitedid", "limitedsecret"))
    assert client.get_secret_value(kms_models.GetSecretValueRequest(secret_name="test")).body
    error = client_error(
        lambda: client.get_secret_value(kms_models.GetSecretValueRequest(secret_name="binary-test"))
    )
    assert (error.code, error.status_code) == ("Forbidden.NoPermission", 403)


@pytest.mark.parametrize("algorithm", SIGNATURES)
def test_wrong_secret_is_signature_does_not_match(emulator, algorithm):
    client = kms(emulator, signature_algorithm=algorithm, key=("testid", "wrong"))
    error = client_error(
        lambda: client.get_secret_value(kms_models.GetSecretValueRequest(secret_name="test"))
    )
    assert (error.code, error.status_code) == ("SignatureDoesNotMatch", 400)
    assert "server string to sign is:" in error.message


def test_sts_key_with_wrong_token(emulator):
    client = kms(emulator, key=STS[:2], token="not-the-token")
    error = client_error(
        lambda: client.get_secret_value(kms_models.GetSecretValueRequest(secret_name="test"))
    )
    assert error.code == "InvalidSecurityToken.MismatchWithAccessKey"


@pytest.mark.parametrize("algorithm", SIGNATURES)
def test_unknown_access_key(emulator, algorithm):
    client = oos(emulator, signature_algorithm=algorithm, key=("nobody", "x"))
    error = client_error(
        lambda: client.get_secret_parameter(oos_models.GetSecretParameterRequest(name="db/password"))
    )
    assert (error.code, error.status_code) == ("InvalidAccessKeyId.NotFound", 404)


def test_injected_throttling(emulator):
    emulator.admin(
        "PUT", "faults", [{"action": "GetSecretValue", "code": "Rejected.Throttling", "times": 1}]
    )
    client = kms(emulator)
    request = kms_models.GetSecretValueRequest(secret_name="test")
    error = client_error(lambda: client.get_secret_value(request))
    assert (error.code, error.status_code) == ("Rejected.Throttling", 429)
    assert "QPS Limit Exceeded" in error.message
    # Only the first request was faulted.
    assert client.get_secret_value(request).body.version_id == "v1"


def test_injected_throttling_with_retry_after(emulator):
    emulator.admin(
        "POST",
        "faults",
        {"action": "GetSecretParameter", "object": "db/password", "code": "Rejected.Throttling", "retry_after": 2},
    )
    with pytest.raises(ThrottlingException) as raised:
        oos(emulator).get_secret_parameter(oos_models.GetSecretParameterRequest(name="db/password"))
    assert (raised.value.code, raised.value.retry_after) == ("Rejected.Throttling", 2)


def test_injected_server_error(emulator):
    emulator.admin(
        "PUT", "faults", {"action": "*", "code": "ServiceUnavailableTemporary", "probability": 1.0}
    )
    with pytest.raises(ServerException) as raised:
        kms(emulator).get_secret_value(kms_models.GetSecretValueRequest(secret_name="test"))
    assert (raised.value.code, raised.value.status_code) == ("ServiceUnavailableTemporary", 503)


def test_stats_count_sdk_requests(emulator):
    emulator.admin("DELETE", "stats")
    client = kms(emulator)
    client.get_secret_value(kms_models.GetSecretValueRequest(secret_name="test"))
    client_error(
        lambda: client.get_secret_value(kms_models.GetSecretValueRequest(secret_name="nope"))
    )
    stats = emulator.admin("GET", "stats")
    outcomes = stats["actions"]["GetSecretValue"]["outcomes"]
    assert outcomes == {"Success": 1, "Forbidden.ResourceNotFound": 1}
