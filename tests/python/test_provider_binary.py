"""The provider binary as an operator runs it: arguments, socket, signals,
health endpoints, config errors, the `version` and `mount` subcommands, and
what its logs never contain.

Every provider runs against the emulator binary (conftest.py), binds its
health server to 127.0.0.1 on a free port, and is killed at teardown.

Binaries: PROVIDER_BIN / EMULATOR_BIN, or
`cargo build -p csi-secrets-store-provider-alibabacloud -p alibabacloud-emulator`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
import tomllib

import grpc
import pytest

from conftest import (
    CANARY_KMS_VALUE,
    CANARY_OOS_VALUE,
    COMMAND_NAME,
    EXAMPLE_SPC,
    NODE_PUBLISH_KEY,
    PROVIDER_KEY,
    REPO_ROOT,
    RUNTIME_NAME,
    dial,
    mount_request,
    objects_request,
    provider_binary,
    provider_env,
    serve_args,
    spc_parameters,
)

CALL_TIMEOUT = 20
VERSION = tomllib.loads((REPO_ROOT / "Cargo.toml").read_text(encoding="utf-8"))["workspace"][
    "package"
]["version"]


def run(args: list[str], env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
    )


def version_call(stubs, sock) -> str:
    with dial(sock) as channel:
        stub = stubs.pb2_grpc.CSIDriverProviderStub(channel)
        return stub.Version(stubs.pb2.VersionRequest(version="v1alpha1"), timeout=CALL_TIMEOUT).runtime_version


def example_mount(stubs, channel, timeout=CALL_TIMEOUT, **kwargs):
    name, parameters = spc_parameters(EXAMPLE_SPC)
    stub = stubs.pb2_grpc.CSIDriverProviderStub(channel)
    return stub.Mount(mount_request(stubs.pb2, parameters, spc_name=name, **kwargs), timeout=timeout)


def is_socket(path) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


# === Arguments ===


def test_upstream_style_args_without_subcommand(launch, stubs, short_tmp):
    volume = short_tmp
    # As an upstream DaemonSet passes them: no subcommand, --flag=value, -v=N,
    # and the upstream concurrency flags (accepted, ignored).
    args = [
        str(provider_binary()),
        f"--provider-volume={volume}",
        "-v=2",
        "--healthz-port=0",
        "--healthz-bind-address=127.0.0.1",
        "--healthz-path=/ready",
        "--healthz-timeout=5s",
        "--max-concurrent-kms-secret-pulls=10",
        "--max-concurrent-oos-secret-pulls=10",
        "--log-format=json",
    ]
    provider = launch(args=args, volume=volume)
    assert provider.ready["socket"] == str(volume / "alibabacloud.sock")
    assert version_call(stubs, provider.socket) == VERSION
    with dial(provider.socket) as channel:
        # No --region: the SecretProviderClass's region is used.
        response = example_mount(stubs, channel)
    assert {f.path for f in response.files} == {"username", "password", "test", "db_password"}
    assert any("accepted for compatibility" in r.get("message", "") for r in provider.records())
    assert provider.http_get("/ready") == (200, "ok")
    assert provider.http_get("/live") == (200, "ok")
    assert provider.stop() == 0


@pytest.mark.parametrize(
    "flag, debug, trace",
    [
        pytest.param("-v=0", False, False, id="v0"),
        pytest.param("-v=2", True, False, id="v2"),
        pytest.param("--v=5", True, True, id="v5-long"),
    ],
)
def test_verbosity_flag_sets_the_log_level(launch, stubs, short_tmp, flag, debug, trace):
    volume = short_tmp
    args = [a for a in serve_args(volume) if not a.startswith("-v=")] + [flag]
    provider = launch(args=args, volume=volume)
    with dial(provider.socket) as channel:
        example_mount(stubs, channel)
    provider.wait_for_log(lambda r: r.get("message") == "mounted", 10, "'mounted'")
    levels = {r.get("level") for r in provider.records()}
    assert "INFO" in levels
    assert ("DEBUG" in levels) == debug, levels
    assert ("TRACE" in levels) == trace, levels


@pytest.mark.parametrize("arg", ["version", "--version"])
def test_version_subcommand(arg):
    result = run([str(provider_binary()), arg])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{COMMAND_NAME} {VERSION}\n"


# === Socket and signals ===


def test_socket_is_private_and_removed_on_sigterm(provider, stubs):
    mode = os.lstat(provider.socket).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600, oct(stat.S_IMODE(mode))
    assert version_call(stubs, provider.socket) == VERSION
    started = time.monotonic()
    assert provider.stop(signal.SIGTERM) == 0, provider.tail()
    assert time.monotonic() - started < 5
    assert not os.path.lexists(provider.socket)
    assert any(r.get("message") == "stopped" for r in provider.records())


def test_sigint_also_stops_cleanly(provider):
    assert provider.stop(signal.SIGINT) == 0, provider.tail()
    assert not os.path.lexists(provider.socket)


def test_sigterm_with_an_idle_driver_connection_exits_promptly(provider, stubs):
    # The driver keeps its channel to the provider open between Mounts; an
    # idle connection must not hold the shutdown for the whole grace period.
    with dial(provider.socket) as channel:
        stub = stubs.pb2_grpc.CSIDriverProviderStub(channel)
        stub.Version(stubs.pb2.VersionRequest(version="v1alpha1"), timeout=CALL_TIMEOUT)
        started = time.monotonic()
        assert provider.stop(signal.SIGTERM, timeout=30) == 0
        elapsed = time.monotonic() - started
    assert elapsed < 5, f"exit took {elapsed:.1f}s with an idle connection open"
    assert not os.path.lexists(provider.socket)


def test_in_flight_mount_finishes_after_sigterm(provider, stubs, cloud):
    cloud.set_latency("1s")
    with dial(provider.socket) as channel:
        name, parameters = spc_parameters(EXAMPLE_SPC)
        stub = stubs.pb2_grpc.CSIDriverProviderStub(channel)
        pending = stub.Mount.future(
            mount_request(stubs.pb2, parameters, spc_name=name), timeout=CALL_TIMEOUT
        )
        # The Mount is in the provider, waiting on the emulator (debug log at -v=5).
        provider.wait_for_log(
            lambda r: r.get("message") == "plugin calls Alibaba Cloud", 10, "the Mount's backend call"
        )
        assert not pending.done()
        sent = time.monotonic()
        provider.process.send_signal(signal.SIGTERM)
        provider.wait_for_log(lambda r: r.get("message") == "SIGTERM received", 5, "'SIGTERM received'")
        # No new connections while the Mount finishes (a plain channel,
        # without waitForReady, fails at once).
        with grpc.insecure_channel(
            f"unix:{provider.socket}", options=[("grpc.default_authority", "localhost")]
        ) as fresh:
            with pytest.raises(grpc.RpcError) as refused:
                stubs.pb2_grpc.CSIDriverProviderStub(fresh).Version(
                    stubs.pb2.VersionRequest(version="v1alpha1"), timeout=2
                )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value.details()
        response = pending.result()
        finished = time.monotonic() - sent
    files = {f.path: bytes(f.contents) for f in response.files}
    assert files["password"] == b"testpassword"
    assert files["db_password"] == b"second-password"
    assert finished > 0.3, "the Mount was answered before the latency elapsed"
    assert provider.stop(timeout=15) == 0, provider.tail()
    assert not os.path.lexists(provider.socket)
    messages = [r.get("message") for r in provider.records()]
    assert messages.index("mounted") < messages.index("stopped")


def test_stale_socket_is_replaced(launch, stubs, short_tmp):
    volume = short_tmp
    path = volume / "alibabacloud.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays: a socket nobody listens on
    os.chmod(path, 0o666)
    assert is_socket(path)
    launch(volume=volume)
    # A new socket, the provider's (private), that answers.
    assert is_socket(path)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert version_call(stubs, path) == VERSION


def test_regular_file_at_the_socket_path_is_kept(launch, short_tmp):
    volume = short_tmp
    path = volume / "alibabacloud.sock"
    path.write_text("keep me")
    provider = launch(volume=volume, wait=False)
    try:
        status = provider.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the provider started over a regular file; logs:\n{provider.tail()}")
    assert status not in (0, None)
    logs = provider.logs()
    assert str(path) in logs
    assert "is not a socket" in logs
    assert path.read_text() == "keep me"


def test_symlink_at_the_socket_path_is_replaced_and_its_target_untouched(launch, stubs, short_tmp):
    # What the chart leaves when a release goes from a non-root provider (its
    # socket in <providersDir>/alibabacloud/, linked from alibabacloud.sock) to
    # linux.runAsUser: 0 (the socket in <providersDir> itself).
    volume = short_tmp
    target = volume / "target"
    target.write_text("keep me")
    os.chmod(target, 0o644)
    path = volume / "alibabacloud.sock"
    os.symlink(target, path)
    launch(volume=volume)
    assert is_socket(path) and not os.path.islink(path)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert version_call(stubs, path) == VERSION
    assert target.read_text() == "keep me"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644


def test_missing_provider_volume_is_a_usage_error(cloud, short_tmp):
    missing = short_tmp / "absent"
    result = run(serve_args(missing), env=provider_env(cloud))
    assert result.returncode == 64, result.stderr
    assert "--provider-volume" in result.stderr and "not a directory" in result.stderr


# === Health endpoints ===


def test_live_and_healthz(provider):
    assert provider.health_addr.startswith("127.0.0.1:")
    assert provider.http_get("/live") == (200, "ok")
    assert provider.http_get("/healthz") == (200, "ok")
    assert provider.http_get("/nope")[0] == 404


# === Configuration ===


@pytest.mark.parametrize(
    "text, key",
    [
        pytest.param('[limits]\nmount_timeout = "30s"\nshutdown_graec = "5s"\n', "shutdown_graec", id="table"),
        pytest.param('bogus_top_level = true\n', "bogus_top_level", id="top-level"),
    ],
)
def test_config_with_an_unknown_key_exits_64(cloud, short_tmp, text, key):
    workdir = short_tmp
    config = workdir / "config.toml"
    config.write_text(text)
    result = run(serve_args(workdir, "--config", str(config)), env=provider_env(cloud))
    assert result.returncode == 64, (result.returncode, result.stderr)
    assert key in result.stderr
    assert str(config) in result.stderr
    assert not os.path.lexists(workdir / "alibabacloud.sock"), "no socket for a bad config"


def test_valid_config_file_is_used(launch, stubs, cloud, short_tmp):
    workdir = short_tmp
    config = workdir / "config.toml"
    config.write_text('[limits]\ndeadline_margin = "100ms"\n')
    provider = launch(args=serve_args(workdir, "--config", str(config)), volume=workdir)
    with dial(provider.socket) as channel:
        stub = stubs.pb2_grpc.CSIDriverProviderStub(channel)
        # 0.5 s would be refused at once with the default 1 s margin.
        response = stub.Mount(objects_request(stubs.pb2, "- objectName: test\n"), timeout=2)
    assert {f.path for f in response.files} == {"test"}


def test_upstream_identity_variables_with_bad_values_warn_and_start(launch, stubs, cloud):
    # Upstream started with any value of its variables and failed per Mount;
    # so does the binary, with a warning naming each at start-up.
    env = provider_env(cloud)
    env.update(
        ALIBABACLOUD_STS_ENDPOINT=cloud.url,
        ALICLOUD_ROLE_ARN="provider-role",
        ALICLOUD_ACCOUNT_ID="1234567890123456",
        ALICLOUD_ROLE_SESSION_EXPIRATION="1h",
    )
    provider = launch(env=env)
    warnings = [r.get("message", "") for r in provider.records() if r.get("level") == "WARN"]
    for needle in [
        'ALICLOUD_ROLE_ARN: "provider-role" is not a RAM role ARN',
        "only one of ALICLOUD_ACCOUNT_ID and ALICLOUD_CLUSTER_ID is set",
        'ALICLOUD_ROLE_SESSION_EXPIRATION="1h" is not a whole number of seconds: ignored',
    ]:
        assert any(needle in w for w in warnings), (needle, warnings)
    # The access key + AssumeRole link sends the role to STS, which refuses
    # it, as upstream's SDK did.
    with dial(provider.socket) as channel:
        stub = stubs.pb2_grpc.CSIDriverProviderStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.Mount(objects_request(stubs.pb2, "- objectName: test\n"), timeout=CALL_TIMEOUT)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED, error.value.details()
    assert "InvalidParameter.RoleArn" in error.value.details()
    assert provider.stop() == 0


# === The mount subcommand ===


def test_mount_subcommand_prints_files_and_versions(provider):
    result = run(
        [
            str(provider_binary()),
            "mount",
            "--spc",
            str(EXAMPLE_SPC),
            "--socket",
            str(provider.socket),
            "--show-contents",
        ]
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(rf"^Mount by {RUNTIME_NAME} {re.escape(VERSION)} succeeded in [\d.]+ ms$", out, re.M), out
    versions = re.findall(r"^  (\S+)\s+(\S+)$", out.split("object versions:\n")[1].split("files:\n")[0], re.M)
    assert versions == [("db_password", "2"), ("password", "v1"), ("test", "v1"), ("username", "v1")]
    files = re.findall(r"^  (\S+)\s+(\d{4})\s+(\d+) bytes\n      (.*)$", out.split("files:\n")[1], re.M)
    assert sorted(files) == sorted(
        [
            ("username", "0644", "8", "testuser"),
            ("password", "0644", "12", "testpassword"),
            ("test", "0644", "49", '{"username":"testuser","password":"testpassword"}'),
            ("db_password", "0644", "15", "second-password"),
        ]
    )


def test_mount_subcommand_reports_the_provider_error(provider, short_tmp):
    spc = short_tmp / "spc.yaml"
    spc.write_text(
        "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\n"
        "metadata:\n  name: broken\nspec:\n  provider: alibabacloud\n  parameters:\n"
        "    region: cn-hangzhou\n    objects: |\n      - objectName: missing\n"
    )
    result = run([str(provider_binary()), "mount", "--spc", str(spc), "--socket", str(provider.socket)])
    assert result.returncode != 0
    assert "Mount failed: NotFound" in result.stderr, result.stderr
    assert 'objects[0] (objectName "missing")' in result.stderr, result.stderr


# === Logs ===

SA_TOKENS = (
    '{"sts.aliyuncs.com":{"token":"eyJTOKEN-CANARY-3e8d.payload.sig",'
    '"expirationTimestamp":"2030-01-01T00:00:00Z"}}'
)
NEVER_LOGGED = [
    "testuser",
    "testpassword",
    "second-password",
    CANARY_KMS_VALUE,
    CANARY_OOS_VALUE,
    PROVIDER_KEY[1],
    NODE_PUBLISH_KEY[1],
    "WRONG-SECRET-5b2d",
    "eyJTOKEN-CANARY-3e8d",
]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_logs_at_v10_never_contain_secrets(launch, stubs, short_tmp, log_format):
    volume = short_tmp
    args = [a for a in serve_args(volume) if not a.startswith("-v=")] + ["-v=10"]
    args[args.index("--log-format") + 1] = log_format
    provider = start_any_format(launch, args, volume, log_format)
    np_secrets = {"access_key": NODE_PUBLISH_KEY[0], "access_secret": NODE_PUBLISH_KEY[1]}
    with dial(provider.socket) as channel:
        stub = stubs.pb2_grpc.CSIDriverProviderStub(channel)
        # Successes: the example with the provider's key; canaries with the
        # nodePublishSecretRef and the service account tokens.
        example_mount(stubs, channel)
        ok = objects_request(
            stubs.pb2,
            "- objectName: canary\n  jmesPath:\n    - path: k\n      objectAlias: k\n"
            "- objectName: canary/param\n  objectType: oos\n",
            secrets=np_secrets,
        )
        attributes = json.loads(ok.attributes)
        attributes["csi.storage.k8s.io/serviceAccount.tokens"] = SA_TOKENS
        ok.attributes = json.dumps(attributes)
        files = {f.path: bytes(f.contents) for f in stub.Mount(ok, timeout=CALL_TIMEOUT).files}
        assert files["k"] == CANARY_KMS_VALUE.encode()
        assert files["canary_param"] == CANARY_OOS_VALUE.encode()
        # Failures: a wrong nodePublishSecretRef secret (the service echoes
        # its string to sign), broken attributes JSON around the tokens, a
        # jmesPath that misses on the secret's content.
        failures = [
            objects_request(
                stubs.pb2,
                "- objectName: canary\n",
                secrets={"access_key": NODE_PUBLISH_KEY[0], "access_secret": "WRONG-SECRET-5b2d"},
            ),
            stubs.pb2.MountRequest(
                attributes='{"broken": ' + ok.attributes,
                secrets=ok.secrets,
                target_path=ok.target_path,
                permission="420",
            ),
            objects_request(
                stubs.pb2,
                "- objectName: canary\n  jmesPath:\n    - path: k.x\n      objectAlias: x\n",
                secrets=np_secrets,
            ),
        ]
        for request in failures:
            with pytest.raises(grpc.RpcError):
                stub.Mount(request, timeout=CALL_TIMEOUT)
    assert provider.stop(signal.SIGTERM) == 0
    text = provider.logs()
    # The capture really is at the most verbose level and saw the Mounts.
    assert "plugin calls Alibaba Cloud" in text
    assert "TRACE" in text
    assert "mount failed" in text
    for secret in NEVER_LOGGED:
        assert secret not in text, f"{secret!r} appears in the {log_format} logs at -v=10"


def start_any_format(launch, args, volume, log_format):
    """Starts a provider with any --log-format: a text one is ready when its
    'provider ready' line appears (ANSI colours and all)."""
    if log_format == "json":
        return launch(args=args, volume=volume)
    provider = launch(args=args, volume=volume, wait=False)
    deadline = time.monotonic() + 30
    while "provider ready" not in provider.logs() or not is_socket(provider.socket):
        if provider.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"provider did not start; logs:\n{provider.tail()}")
        time.sleep(0.02)
    return provider
