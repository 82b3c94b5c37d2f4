"""Cross-check: the official STS SDK and credential providers against the emulator binary.

- `alibabacloud-sts20150401` calls AssumeRole signed with V3 and with V1
  (signature_algorithm='v2'), and AssumeRoleWithOIDC anonymously.
- `alibabacloud-credentials` runs its RamRoleArn (V1 GET), OIDCRoleArn (token
  file, anonymous GET) and EcsRamRole (IMDSv2 token, v1 fallback) providers
  against the emulator's STS and metadata listeners, pointed at them as the
  API reference (section 8) describes.

The credentials they return are then used with the KMS SDK: each reads a
secret its role may read and is refused one it may not, so the emulator's
per-role permissions are checked through the official clients too.

The emulator is started from examples/emulator-seed.toml, whose identity half
(an RRSA OIDC provider, pod roles for team-a and team-b, the node role, the
provider role, a cross-account role) these tests rely on. OIDC tokens are
minted here, unsigned: the example provider has no hmac_key, so the emulator
checks the claims and not the signature.

The binary is not built here: set EMULATOR_BIN, or build
`target/debug/alibabacloud-emulator` with `cargo build -p alibabacloud-emulator`.
"""

from __future__ import annotations

import base64
import calendar
import json
import os
import queue
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from alibabacloud_credentials.client import Client as CredClient
from alibabacloud_credentials.exceptions import CredentialException
from alibabacloud_credentials.provider import (
    EcsRamRoleCredentialsProvider,
    OIDCRoleArnCredentialsProvider,
    RamRoleArnCredentialsProvider,
    StaticSTSCredentialsProvider,
)
from alibabacloud_kms20160120 import models as kms_models
from alibabacloud_kms20160120.client import Client as KmsClient
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_sts20150401.client import Client as StsClient
from alibabacloud_tea_openapi import utils_models
from alibabacloud_tea_openapi.exceptions import ClientException
from darabonba.core import DaraCore

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SEED = REPO_ROOT / "examples/emulator-seed.toml"
START_TIMEOUT_SECONDS = 30
ANNOUNCEMENTS = [
    re.compile(r"^alibabacloud-emulator listening on http://(127\.0\.0\.1:\d+)$"),
    re.compile(r"^alibabacloud-emulator imds listening on http://(127\.0\.0\.1:\d+)$"),
    re.compile(r"^alibabacloud-emulator kubernetes listening on http://(127\.0\.0\.1:\d+)$"),
]

ACCOUNT = "1234567890123456"
OIDC_PROVIDER = f"acs:ram::{ACCOUNT}:oidc-provider/ack-rrsa-c0ffee"
ISSUER = "https://oidc-ack-cn-hangzhou.oss-cn-hangzhou.aliyuncs.com/c0ffee"
TEAM_A_ROLE = f"acs:ram::{ACCOUNT}:role/team-a-app"
TEAM_B_ROLE = f"acs:ram::{ACCOUNT}:role/team-b-app"
PROVIDER_ROLE = f"acs:ram::{ACCOUNT}:role/csi-secrets-store-provider"
CROSS_ROLE = "acs:ram::6543210987654321:role/shared-secrets-reader"
CROSS_EXTERNAL_ID = "c0ffee-external-id"
NODE_ROLE_NAME = "ack-worker-node"
KUBERNETES_TOKEN = "emulator-kubernetes-token"
TEST_SECRET = '{"username":"testuser","password":"testpassword"}'


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


class IdentityEmulator:
    """The emulator process: API (with STS), metadata server, Kubernetes API."""

    def __init__(self, process: subprocess.Popen, api: str, imds: str, kubernetes: str):
        self.process = process
        self.endpoint = api
        self.imds = imds
        self.kubernetes = kubernetes

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

    def stats(self) -> dict:
        return self.admin("GET", "stats")

    def sts_calls(self, action: str) -> int:
        return self.stats()["actions"].get(action, {}).get("total", 0)


# Named apart from conftest.py's `cloud` and test_emulator_sdk.py's `emulator`.
@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("sts-emulator") / "emulator.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            str(emulator_binary()),
            "--seed", str(EXAMPLE_SEED),
            "--listen", "127.0.0.1:0",
            "--imds-listen", "127.0.0.1:0",
            "--kubernetes-listen", "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    # readline() blocks; read in a thread so that a hung start fails the test.
    lines: queue.Queue = queue.Queue()

    def read_announcements():
        for _ in ANNOUNCEMENTS:
            lines.put(process.stdout.readline())

    threading.Thread(target=read_announcements, daemon=True).start()
    addresses = []
    for pattern in ANNOUNCEMENTS:
        try:
            line = lines.get(timeout=START_TIMEOUT_SECONDS)
        except queue.Empty:
            line = ""
        match = pattern.match(line.rstrip("\n"))
        if not match:
            process.kill()
            process.wait()
            log.close()
            pytest.fail(
                f"emulator did not announce {pattern.pattern} (got {line!r}); "
                f"stderr: {log_path.read_text()}"
            )
        addresses.append(match.group(1))
    try:
        yield IdentityEmulator(process, *addresses)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(autouse=True)
def clean(emu):
    """Each test starts with default knobs, zeroed counters and no live issued credentials."""
    # The wall clock first: credentials expired on an advanced clock would
    # come back to life when it is set back.
    emu.admin("DELETE", "clock")
    emu.admin("POST", "credentials/expire")
    emu.admin("DELETE", "credentials/lifetime")
    emu.admin("PUT", "imds", {"hardened": False, "tokens_unavailable": False})
    emu.admin("DELETE", "faults")
    emu.admin("DELETE", "stats")
    yield


# === Helpers ===


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_token(subject: str, *, audience="sts.aliyuncs.com", issuer=ISSUER, expires_in=3600) -> str:
    """An unsigned JWT like the kubelet's projected service-account token."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": subject,
        "aud": [audience],
        "iat": now,
        "nbf": now,
        "exp": now + expires_in,
    }
    header = {"alg": "none", "typ": "JWT"}
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."


def service_account(namespace: str, name: str = "app") -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def sdk_config(emu, *, key=("testid", "testsecret"), token=None, credential=None, algorithm=None):
    config = utils_models.Config(
        endpoint=emu.endpoint,
        protocol="http",
        region_id="cn-hangzhou",
        signature_algorithm=algorithm,
    )
    if credential is not None:
        config.credential = credential
    else:
        config.access_key_id, config.access_key_secret = key
        config.security_token = token
    return config


def kms_with(emu, provider, algorithm=None) -> KmsClient:
    """A KMS client whose credentials come from a credentials provider."""
    return KmsClient(sdk_config(emu, credential=CredClient(provider=provider), algorithm=algorithm))


def read_secret(client: KmsClient, name: str) -> str:
    return client.get_secret_value(kms_models.GetSecretValueRequest(secret_name=name)).body.secret_data


def assert_refused(client: KmsClient, name: str, code="Forbidden.NoPermission"):
    with pytest.raises(ClientException) as error:
        read_secret(client, name)
    assert error.value.code == code


def expiration(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def assert_expires_in(text: str, seconds: int):
    assert abs(expiration(text) - (time.time() + seconds)) <= 5, text


def sts_endpoint(emu) -> str:
    # The credentials providers hard-code https; a full URL is used verbatim.
    return f"http://{emu.endpoint}"


def token_file(tmp_path: Path, token: str) -> str:
    path = tmp_path / "token"
    path.write_text(token, encoding="utf-8")
    return str(path)


def ecs_provider(emu, **kwargs) -> EcsRamRoleCredentialsProvider:
    provider = EcsRamRoleCredentialsProvider(async_update_enabled=False, **kwargs)
    # The provider hard-codes 100.100.100.200 (API reference, section 8).
    provider._EcsRamRoleCredentialsProvider__metadata_service_host = emu.imds
    return provider


# === STS SDK ===

SIGNATURES = [pytest.param(None, id="v3"), pytest.param("v2", id="v1")]


@pytest.fixture
def wire(monkeypatch):
    """The requests the SDKs send, as (query, lower-cased headers)."""
    sent = []
    send = DaraCore.do_action

    def recording(request, runtime=None):
        sent.append((dict(request.query), {k.lower(): v for k, v in request.headers.items()}))
        return send(request, runtime)

    monkeypatch.setattr(DaraCore, "do_action", staticmethod(recording))
    return sent


@pytest.mark.parametrize("algorithm", SIGNATURES)
def test_sts_sdk_assume_role_then_kms_with_the_role(emu, algorithm, wire):
    sts = StsClient(sdk_config(emu, algorithm=algorithm))
    response = sts.assume_role(
        sts_models.AssumeRoleRequest(
            role_arn=PROVIDER_ROLE,
            role_session_name="python-sdk",
            duration_seconds=900,
        )
    )
    [(query, headers)] = wire
    if algorithm is None:
        assert headers["authorization"].startswith("ACS3-HMAC-SHA256 ")
    else:
        assert query["SignatureMethod"] == "HMAC-SHA1"
    body = response.body
    creds = body.credentials
    assert creds.access_key_id.startswith("STS.")
    assert creds.access_key_secret and creds.security_token
    assert_expires_in(creds.expiration, 900)
    assert body.assumed_role_user.arn == f"acs:ram::{ACCOUNT}:role/csi-secrets-store-provider/python-sdk"
    assert body.assumed_role_user.assumed_role_id.endswith(":python-sdk")
    assert body.request_id == response.headers["x-acs-request-id"]

    kms = KmsClient(
        sdk_config(
            emu,
            key=(creds.access_key_id, creds.access_key_secret),
            token=creds.security_token,
            algorithm=algorithm,
        )
    )
    assert read_secret(kms, "test") == TEST_SECRET
    assert_refused(kms, "team-a/db")
    # Without the token the temporary key is refused.
    bare = KmsClient(sdk_config(emu, key=(creds.access_key_id, creds.access_key_secret)))
    assert_refused(bare, "test", code="InvalidSecurityToken.Malformed")
    assert emu.stats()["actions"]["AssumeRole"]["outcomes"] == {"Success": 1}


@pytest.mark.parametrize(
    "role, key, code, status",
    [
        (f"acs:ram::{ACCOUNT}:role/missing", ("testid", "testsecret"), "EntityNotExist.Role", 404),
        (PROVIDER_ROLE, ("limitedid", "limitedsecret"), "NoPermission", 403),
        (CROSS_ROLE, ("testid", "testsecret"), "NoPermission", 403),
        ("not-an-arn", ("testid", "testsecret"), "InvalidParameter.RoleArn", 400),
    ],
)
def test_sts_sdk_surfaces_sts_errors(emu, role, key, code, status):
    sts = StsClient(sdk_config(emu, key=key))
    with pytest.raises(ClientException) as error:
        sts.assume_role(sts_models.AssumeRoleRequest(role_arn=role, role_session_name="s1"))
    assert (error.value.code, error.value.status_code) == (code, status)


def test_sts_sdk_duration_beyond_the_role_maximum(emu):
    sts = StsClient(sdk_config(emu))
    with pytest.raises(ClientException) as error:
        sts.assume_role(
            sts_models.AssumeRoleRequest(
                role_arn=PROVIDER_ROLE, role_session_name="s1", duration_seconds=7200
            )
        )
    assert error.value.code == "InvalidParameter.DurationSeconds"


def test_sts_sdk_assume_role_with_oidc_is_anonymous(emu, wire):
    sts = StsClient(sdk_config(emu))
    response = sts.assume_role_with_oidc(
        sts_models.AssumeRoleWithOIDCRequest(
            role_arn=TEAM_A_ROLE,
            oidcprovider_arn=OIDC_PROVIDER,
            oidctoken=mint_token(service_account("team-a")),
            role_session_name="team-a.pod-1",
        )
    )
    [(query, headers)] = wire
    assert "authorization" not in headers and "Signature" not in query
    body = response.body
    assert body.oidctoken_info.subject == service_account("team-a")
    assert body.oidctoken_info.issuer == ISSUER
    assert body.oidctoken_info.client_ids == "sts.aliyuncs.com"
    assert_expires_in(body.credentials.expiration, 3600)
    kms = KmsClient(
        sdk_config(
            emu,
            key=(body.credentials.access_key_id, body.credentials.access_key_secret),
            token=body.credentials.security_token,
        )
    )
    assert json.loads(read_secret(kms, "team-a/db")) == {"password": "team-a-password"}
    assert_refused(kms, "team-b/db")


# === alibabacloud-credentials: RamRoleArn ===


def test_ram_role_arn_provider_reads_what_the_role_may(emu):
    provider = RamRoleArnCredentialsProvider(
        access_key_id="testid",
        access_key_secret="testsecret",
        role_arn=PROVIDER_ROLE,
        role_session_name="ram-role-arn",
        duration_seconds=900,
        sts_endpoint=sts_endpoint(emu),
    )
    kms = kms_with(emu, provider)
    assert read_secret(kms, "test") == TEST_SECRET
    assert_refused(kms, "team-b/db")
    assert_refused(kms, "node/bootstrap")
    credentials = provider.get_credentials()
    assert credentials.get_access_key_id().startswith("STS.")
    assert credentials.get_provider_name() == "ram_role_arn/static_ak"
    assert emu.sts_calls("AssumeRole") >= 1


def test_ram_role_arn_provider_refused_without_trust(emu):
    provider = RamRoleArnCredentialsProvider(
        access_key_id="limitedid",
        access_key_secret="limitedsecret",
        role_arn=PROVIDER_ROLE,
        sts_endpoint=sts_endpoint(emu),
    )
    with pytest.raises(CredentialException) as error:
        provider.get_credentials()
    assert "NoPermission" in str(error.value.message)


def test_chained_cross_account_role_with_external_id(emu, tmp_path):
    pod = OIDCRoleArnCredentialsProvider(
        role_arn=TEAM_A_ROLE,
        oidc_provider_arn=OIDC_PROVIDER,
        oidc_token_file_path=token_file(tmp_path, mint_token(service_account("team-a"))),
        role_session_name="team-a.pod-1",
        sts_endpoint=sts_endpoint(emu),
    )
    cross = RamRoleArnCredentialsProvider(
        credentials_provider=pod,
        role_arn=CROSS_ROLE,
        role_session_name="team-a.pod-1",
        external_id=CROSS_EXTERNAL_ID,
        sts_endpoint=sts_endpoint(emu),
    )
    kms = kms_with(emu, cross)
    assert read_secret(kms, "test") == TEST_SECRET
    assert_refused(kms, "team-a/db")
    issued = emu.admin("GET", "credentials")
    last = issued[-1]
    assert (last["role_arn"], last["source"]) == (CROSS_ROLE, "AssumeRole")
    assert last["caller"] == "assumed-role/team-a-app/team-a.pod-1"

    wrong = RamRoleArnCredentialsProvider(
        credentials_provider=pod,
        role_arn=CROSS_ROLE,
        external_id="wrong-external-id",
        sts_endpoint=sts_endpoint(emu),
    )
    with pytest.raises(CredentialException) as error:
        wrong.get_credentials()
    assert "NoPermission" in str(error.value.message)


# === alibabacloud-credentials: OIDCRoleArn (RRSA) ===


@pytest.mark.parametrize(
    "namespace, role, own, other",
    [
        ("team-a", TEAM_A_ROLE, "team-a/db", "team-b/db"),
        ("team-b", TEAM_B_ROLE, "team-b/db", "team-a/db"),
    ],
)
def test_oidc_provider_pods_read_only_their_own_secrets(emu, tmp_path, namespace, role, own, other):
    provider = OIDCRoleArnCredentialsProvider(
        role_arn=role,
        oidc_provider_arn=OIDC_PROVIDER,
        oidc_token_file_path=token_file(tmp_path, mint_token(service_account(namespace))),
        role_session_name=f"{namespace}.pod-1",
        sts_endpoint=sts_endpoint(emu),
    )
    kms = kms_with(emu, provider)
    assert json.loads(read_secret(kms, own)) == {"password": f"{namespace}-password"}
    assert_refused(kms, other)
    assert_refused(kms, "node/bootstrap")
    assert emu.stats()["actions"]["AssumeRoleWithOIDC"]["outcomes"] == {"Success": 1}


@pytest.mark.parametrize(
    "token, code",
    [
        (mint_token(service_account("team-a"), expires_in=-60), "AuthenticationFail.OIDCToken.Expired"),
        (mint_token(service_account("team-b")), "AuthenticationFail.NoPermission"),
        (mint_token(service_account("team-a"), audience="other"), "AuthenticationFail.OIDCToken.AudienceNotMatch"),
        (mint_token(service_account("team-a"), issuer="https://elsewhere"), "AuthenticationFail.OIDCToken.Invalid"),
        ("not-a-jwt", "AuthenticationFail.OIDCToken.Invalid"),
    ],
    ids=["expired", "other-subject", "audience", "issuer", "malformed"],
)
def test_oidc_provider_refusals(emu, tmp_path, token, code):
    provider = OIDCRoleArnCredentialsProvider(
        role_arn=TEAM_A_ROLE,
        oidc_provider_arn=OIDC_PROVIDER,
        oidc_token_file_path=token_file(tmp_path, token),
        sts_endpoint=sts_endpoint(emu),
    )
    with pytest.raises(CredentialException) as error:
        provider.get_credentials()
    assert code in str(error.value.message)


def test_oidc_provider_with_an_unknown_provider_arn(emu, tmp_path):
    provider = OIDCRoleArnCredentialsProvider(
        role_arn=TEAM_A_ROLE,
        oidc_provider_arn=f"acs:ram::{ACCOUNT}:oidc-provider/unknown",
        oidc_token_file_path=token_file(tmp_path, mint_token(service_account("team-a"))),
        sts_endpoint=sts_endpoint(emu),
    )
    with pytest.raises(CredentialException) as error:
        provider.get_credentials()
    assert "AuthenticationFail.NoPermission" in str(error.value.message)
    assert "Parameter OIDCProviderArn is not valid" in str(error.value.message)


def test_emulator_minted_token_works_with_the_provider(emu, tmp_path):
    minted = emu.admin("POST", "oidc/token", {"namespace": "team-b", "name": "app", "expires_in": "10m"})
    provider = OIDCRoleArnCredentialsProvider(
        role_arn=TEAM_B_ROLE,
        oidc_provider_arn=OIDC_PROVIDER,
        oidc_token_file_path=token_file(tmp_path, minted["token"]),
        sts_endpoint=sts_endpoint(emu),
    )
    assert read_secret(kms_with(emu, provider), "team-b/db") == '{"password":"team-b-password"}'


# === Expiry and refresh ===


def test_short_lifetimes_are_refreshed_and_expired_credentials_refused(emu):
    emu.admin("PUT", "credentials/lifetime", {"lifetime": "2s"})
    provider = RamRoleArnCredentialsProvider(
        access_key_id="testid",
        access_key_secret="testsecret",
        role_arn=PROVIDER_ROLE,
        sts_endpoint=sts_endpoint(emu),
    )
    first = provider.get_credentials()
    assert expiration(emu.admin("GET", "credentials")[-1]["expires_at"].replace("+00:00", "Z")) <= time.time() + 2
    # Python refreshes 15 minutes before Expiration: with a 2 s lifetime,
    # every use asks STS again and gets new credentials.
    kms = kms_with(emu, provider)
    for _ in range(3):
        assert read_secret(kms, "test") == TEST_SECRET
    assert emu.sts_calls("AssumeRole") == 4
    assert provider.get_credentials().get_access_key_id() != first.get_access_key_id()

    # Held past their Expiration, the first credentials are refused: the
    # emulator's clock is moved on rather than waited for.
    assert emu.admin("POST", "clock", {"advance": "3s"})["frozen"] is False
    stale = KmsClient(
        sdk_config(
            emu,
            key=(first.get_access_key_id(), first.get_access_key_secret()),
            token=first.get_security_token(),
        )
    )
    assert_refused(stale, "test", code="InvalidSecurityToken.Expired")


def test_expire_now_refuses_live_credentials(emu):
    sts = StsClient(sdk_config(emu))
    creds = sts.assume_role(
        sts_models.AssumeRoleRequest(role_arn=PROVIDER_ROLE, role_session_name="expire-now")
    ).body.credentials
    provider = StaticSTSCredentialsProvider(
        access_key_id=creds.access_key_id,
        access_key_secret=creds.access_key_secret,
        security_token=creds.security_token,
    )
    kms = kms_with(emu, provider)
    assert read_secret(kms, "test") == TEST_SECRET
    assert emu.admin("POST", "credentials/expire", {"role_arn": PROVIDER_ROLE}) == {"expired": 1}
    assert_refused(kms, "test", code="InvalidSecurityToken.Expired")


# === alibabacloud-credentials: EcsRamRole (metadata server) ===


def imds_stats(emu) -> dict:
    return emu.admin("GET", "imds/stats")["paths"]


def test_ecs_ram_role_provider_with_imdsv2_only(emu):
    emu.admin("PUT", "imds", {"hardened": True})
    provider = ecs_provider(emu)
    kms = kms_with(emu, provider)
    assert read_secret(kms, "node/bootstrap") == "node-only-bootstrap-token"
    assert read_secret(kms, "test") == TEST_SECRET
    assert_refused(kms, "team-a/db")
    credentials = provider.get_credentials()
    assert credentials.get_provider_name() == "ecs_ram_role"
    stats = imds_stats(emu)
    assert stats["token"]["outcomes"] == {"Success": stats["token"]["total"]}
    assert stats["role-name"]["without_token"] == 0
    assert stats["credentials"]["without_token"] == 0
    assert stats["credentials"]["outcomes"]["Success"] >= 1
    issued = [c for c in emu.admin("GET", "credentials") if c["source"] == "Imds"]
    assert issued and issued[-1]["role_arn"].endswith(f":role/{NODE_ROLE_NAME}")


def test_ecs_ram_role_provider_falls_back_to_imdsv1(emu):
    emu.admin("PUT", "imds", {"tokens_unavailable": True})
    provider = ecs_provider(emu, role_name=NODE_ROLE_NAME)
    assert read_secret(kms_with(emu, provider), "node/bootstrap") == "node-only-bootstrap-token"
    stats = imds_stats(emu)
    assert stats["token"]["outcomes"].get("404", 0) >= 1
    assert stats["credentials"]["without_token"] >= 1
    assert stats["credentials"]["outcomes"]["Success"] >= 1


def test_ecs_ram_role_provider_with_v1_disabled_fails_without_tokens(emu):
    emu.admin("PUT", "imds", {"tokens_unavailable": True})
    provider = ecs_provider(emu, disable_imds_v1=True)
    with pytest.raises(CredentialException):
        provider.get_credentials()
    assert "credentials" not in imds_stats(emu)


def test_metadata_and_kubernetes_listeners_answer_plain_http(emu):
    request = urllib.request.Request(
        f"http://{emu.imds}/latest/api/token",
        method="PUT",
        headers={"X-aliyun-ecs-metadata-token-ttl-seconds": "60"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        token = response.read().decode()
    request = urllib.request.Request(
        f"http://{emu.imds}/latest/meta-data/region-id",
        headers={"X-aliyun-ecs-metadata-token": token},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.read().decode() == "cn-hangzhou"

    url = f"http://{emu.kubernetes}/api/v1/namespaces/team-a/serviceaccounts/app"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {KUBERNETES_TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        account = json.loads(response.read())
    assert account["metadata"]["annotations"]["ack.alibabacloud.com/role-arn"] == TEAM_A_ROLE
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(urllib.request.Request(url), timeout=5)
    assert error.value.code == 401
