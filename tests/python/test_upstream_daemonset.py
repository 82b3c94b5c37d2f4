"""The provider binary started exactly as a DaemonSet written for the upstream
Go provider starts it: the full argument list the upstream chart renders (and
Go-style and klog variants of it), an upstream-style environment, no
subcommand, no --log-format, no --healthz-bind-address. It must start, answer
Version and Mount over its socket (the emulator behind it) and health probes
over IPv4 and IPv6.

The upstream chart (0.6.0, templates/provider-alibabacloud-installer.yaml)
renders the container args

    --provider-volume=/provider
    -v=<logVerbosity>            (only when logVerbosity is not 0)
    --healthz-port=<linux.healthzPort>
    --healthz-path=<linux.healthzPath>
    --healthz-timeout=<linux.healthzTimeout>
    --region=<regionId>

with the image's entrypoint. Two values are the test's own: /provider (the
hostPath mount point inside the container) is a temporary directory, and the
port is a free one instead of 8989.
"""

from __future__ import annotations

import os
import re
import socket
import time
import urllib.error
import urllib.request

import pytest

from conftest import (
    EXAMPLE_SPC,
    RUNTIME_NAME,
    START_TIMEOUT_SECONDS,
    dial,
    mount_request,
    objects_request,
    provider_binary,
    provider_env,
    spc_parameters,
)

CALL_TIMEOUT = 20
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def upstream_chart_args(volume, port, verbosity=0, region="cn-hangzhou", timeout="5s", path="/healthz"):
    """The upstream chart's container args, in its order."""
    args = [f"--provider-volume={volume}"]
    if verbosity:
        args.append(f"-v={verbosity}")
    args += [
        f"--healthz-port={port}",
        f"--healthz-path={path}",
        f"--healthz-timeout={timeout}",
        f"--region={region}",
    ]
    return args


def upstream_env(cloud) -> dict:
    """As the upstream chart sets it: envVarsFromSecret (an AccessKey) and the
    RRSA ids; plus the endpoints of the emulator (this provider's override)."""
    env = provider_env(cloud)
    env.update(ALICLOUD_ACCOUNT_ID="1234567890123456", ALICLOUD_CLUSTER_ID="c0123456789abcdef")
    return env


def wait_for_socket(provider) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not provider.socket.exists():
        if provider.process.poll() is not None:
            pytest.fail(f"provider exited with {provider.process.returncode}; logs:\n{provider.tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no socket at {provider.socket} after {START_TIMEOUT_SECONDS}s; logs:\n{provider.tail()}")
        time.sleep(0.02)


def http_get(host: str, port: int, path: str) -> tuple[int, str]:
    url = f"http://{host}:{port}{path}"
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except urllib.error.URLError:
            # The health server starts right after the socket.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def version_and_mounts(stubs, provider) -> None:
    with dial(provider.socket) as channel:
        stub = stubs.pb2_grpc.CSIDriverProviderStub(channel)
        version = stub.Version(stubs.pb2.VersionRequest(version="v1alpha1"), timeout=CALL_TIMEOUT)
        assert version.version == "v1alpha1"
        assert version.runtime_name == RUNTIME_NAME == "secrets-store-csi-driver-provider-alibabacloud"
        name, parameters = spc_parameters(EXAMPLE_SPC)
        response = stub.Mount(mount_request(stubs.pb2, parameters, spc_name=name), timeout=CALL_TIMEOUT)
        files = {f.path: bytes(f.contents) for f in response.files}
        assert files["password"] == b"testpassword"
        assert files["db_password"] == b"second-password"
        # Without `region` in the SecretProviderClass: --region.
        request = objects_request(stubs.pb2, "- objectName: test\n")
        attributes = request.attributes.replace('"region":"cn-hangzhou",', "")
        assert '"region"' not in attributes
        request.attributes = attributes
        response = stub.Mount(request, timeout=CALL_TIMEOUT)
        assert [f.path for f in response.files] == ["test"]


@pytest.mark.parametrize("verbosity", [0, 2], ids=["logVerbosity-0", "logVerbosity-2"])
def test_upstream_chart_args_start_and_serve(launch, cloud, stubs, short_tmp, verbosity):
    volume, port = short_tmp, free_port()
    args = [str(provider_binary()), *upstream_chart_args(volume, port, verbosity=verbosity)]
    provider = launch(args=args, env=upstream_env(cloud), volume=volume, wait=False)
    wait_for_socket(provider)
    version_and_mounts(stubs, provider)
    # Go's `:8989`: every address, both IP versions.
    assert http_get("127.0.0.1", port, "/healthz") == (200, "ok")
    if has_ipv6_loopback():
        assert http_get("[::1]", port, "/healthz") == (200, "ok")
    logs = provider.logs()
    # Plain text lines, as klog wrote them: no colours outside a terminal.
    assert not ANSI.search(logs), logs[:400]
    assert "provider ready" in logs
    assert "klog flags" not in logs
    assert provider.stop() == 0, provider.tail()
    assert not os.path.lexists(provider.socket)


def test_a_repeated_flag_takes_its_last_value(launch, cloud, stubs, short_tmp):
    # As Go's flag package: a patch that appends --healthz-port overrides the chart's.
    volume, port = short_tmp, free_port()
    args = [str(provider_binary()), *upstream_chart_args(volume, 1), f"--healthz-port={port}"]
    provider = launch(args=args, env=upstream_env(cloud), volume=volume, wait=False)
    wait_for_socket(provider)
    assert http_get("127.0.0.1", port, "/healthz") == (200, "ok")
    assert provider.stop() == 0, provider.tail()


def test_upstream_binary_name_and_go_style_flags(launch, cloud, stubs, short_tmp, tmp_path):
    # Started through the upstream image's binary name (the image links it),
    # with one-dash flags, values in the next argument, a fractional Go
    # duration, and every klog flag a DaemonSet might carry.
    volume, port = short_tmp, free_port()
    upstream_name = tmp_path / "secrets-store-csi-driver-provider-alibaba-cloud"
    os.symlink(provider_binary(), upstream_name)
    klog = [
        "--logtostderr",
        "-alsologtostderr=false",
        "--vmodule=server=4,auth=5",
        "-log_dir",
        str(tmp_path),
        "--log_file=/var/log/provider.log",
        "--log_file_max_size=1800",
        "-stderrthreshold=INFO",
        "--add_dir_header",
        "-skip_headers=false",
        "--skip_log_headers",
        "--one_output=true",
        "--log_backtrace_at=server.go:80",
    ]
    args = [
        str(upstream_name),
        "-provider-volume",
        str(volume),
        "-v",
        "3",
        f"-healthz-port={port}",
        "-healthz-path",
        "/healthz",
        "-healthz-timeout=1.5s",
        "-region",
        "cn-hangzhou",
        "-max-concurrent-kms-secret-pulls=10",
        "--max-concurrent-oos-secret-pulls",
        "10",
        *klog,
    ]
    provider = launch(args=args, env=upstream_env(cloud), volume=volume, wait=False)
    wait_for_socket(provider)
    version_and_mounts(stubs, provider)
    assert http_get("127.0.0.1", port, "/healthz") == (200, "ok")
    logs = provider.logs()
    warnings = [line for line in logs.splitlines() if "klog flags of the upstream provider" in line]
    assert len(warnings) == 1, logs
    for flag in ("--logtostderr", "--vmodule=server=4,auth=5", f"--log_dir={tmp_path}", "--log_backtrace_at=server.go:80"):
        assert flag in warnings[0], warnings[0]
    # -v 3 is the log level: debug lines appear.
    assert " DEBUG " in logs
    assert provider.stop() == 0, provider.tail()


@pytest.mark.parametrize(
    "extra, timeout, message",
    [
        (["--endpoint=unix:///provider/alibabacloud.sock"], "5s", "flag provided but not defined: -endpoint"),
        (["-logtostderr=maybe"], "5s", 'invalid boolean value "maybe" for -logtostderr'),
        (["--region"], "5s", "flag needs an argument: -region"),
        ([], "5", "missing unit in duration"),
    ],
)
def test_what_go_refused_is_refused(cloud, short_tmp, extra, timeout, message):
    import subprocess

    args = [str(provider_binary()), *upstream_chart_args(short_tmp, free_port(), timeout=timeout), *extra]
    result = subprocess.run(args, capture_output=True, text=True, timeout=30, env=upstream_env(cloud))
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert message in result.stderr, result.stderr
    assert not os.path.lexists(short_tmp / "alibabacloud.sock")
