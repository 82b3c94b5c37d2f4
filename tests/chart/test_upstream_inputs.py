"""The chart rendered from the upstream project's own inputs: the `--set` lists
of its e2e and bats install commands, the install commands of its chart
README, its chart's values.yaml and the values files of its examples, tests
and README (rewritten as test data in values/upstream/, placeholders filled,
each file saying where it comes from).

Each must render and pass Kubernetes schema validation, or fail with the
message of a deliberate difference (documented in the chart README's "Coming
from the upstream chart").
"""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from chart_helpers import (
    KUBE_VERSIONS,
    NAMESPACE,
    RELEASE,
    RRSA_TOKEN_PATH,
    STS_AUDIENCE,
    VALUES,
    Rendered,
    helm_args,
    run_helm,
)

UPSTREAM = VALUES / "upstream"

# Placeholders of upstream's commands, filled.
ACCOUNT_ID = "1234567890123456"
CLUSTER_ID = "c0123456789abcdef0123456789abcdef"
# `helm install <chart> --generate-name` names the release <chart name>-<unix time>.
GENERATED_RELEASE = "csi-secrets-store-provider-alibabacloud-1767225600"

# tests/e2e/suite_test.go, deployHelmChart: `helm install
# csi-secrets-store-provider-alibabacloud <chart> -n kube-system
# --create-namespace --wait --timeout 5m`, plus, when the suite has an OIDC
# provider ARN, the RRSA values, and always the rotation and sync values.
E2E_RRSA_SETS = (
    "rrsa.enable=true",
    f"rrsa.accountId={ACCOUNT_ID}",
    f"rrsa.clusterId={CLUSTER_ID}",
)
E2E_DRIVER_SETS = (
    "secrets-store-csi-driver.enableSecretRotation=true",
    "secrets-store-csi-driver.syncSecret.enabled=true",
    "secrets-store-csi-driver.rotationPollInterval=10s",
)
# tests/alibabacloud.bats and tests/alibabacloud-ak.bats: `helm install -f
# values.yaml <chart> --namespace kube-system --generate-name` with these.
BATS_SETS = (
    "secrets-store-csi-driver.enableSecretRotation=true",
    "secrets-store-csi-driver.rotationPollInterval=10s",
    "secrets-store-csi-driver.syncSecret.enabled=true",
)

# name -> (release, values files, --set list)
INSTALLS = {
    "e2e suite with an OIDC provider": (RELEASE, (), E2E_RRSA_SETS + E2E_DRIVER_SETS),
    "e2e suite without an OIDC provider": (RELEASE, (), E2E_DRIVER_SETS),
    "bats suites": (GENERATED_RELEASE, ("upstream/tests-values.yaml",), BATS_SETS),
    "README install": (GENERATED_RELEASE, (), ()),
    "README pod-level RRSA from account and cluster ids": (
        GENERATED_RELEASE,
        (),
        (f"rrsa.accountId={ACCOUNT_ID}", f"rrsa.clusterId={CLUSTER_ID}"),
    ),
    "README pod-level RRSA with the OIDC provider ARN from a Secret": (
        GENERATED_RELEASE,
        (),
        (
            "envVarsFromSecret.ALICLOUD_OIDC_PROVIDER_ARN.secretKeyRef=alibaba-credentials",
            "envVarsFromSecret.ALICLOUD_OIDC_PROVIDER_ARN.key=oidcproviderarn",
        ),
    ),
    "README provider-level RRSA": (GENERATED_RELEASE, ("upstream/readme-provider-rrsa.yaml",), ()),
    "README RAM role": (GENERATED_RELEASE, ("upstream/readme-ram-role.yaml",), ()),
    "README AK/SK": (GENERATED_RELEASE, ("upstream/readme-aksk.yaml",), ()),
    "chart values.yaml without linux.image": (RELEASE, ("upstream/chart-values-0.6.0.yaml",), ()),
    "examples/rrsa-values.yaml without linux.image": (
        GENERATED_RELEASE,
        ("upstream/examples-rrsa-values.yaml",),
        (),
    ),
}

# Files whose linux.image the test removes before rendering (the one key
# this chart refuses; see REFUSED).
WITHOUT_IMAGE = {"chart values.yaml without linux.image", "examples/rrsa-values.yaml without linux.image"}

# The deliberate refusals: name -> (values files, --set list, message).
GO_IMAGE = "the upstream Go provider, which this chart cannot run: remove linux.image.repository and linux.image.tag"
REFUSED = {
    "chart values.yaml (pins the upstream Go image)": (("upstream/chart-values-0.6.0.yaml",), (), GO_IMAGE),
    "examples/rrsa-values.yaml (pins the upstream Go image)": (
        ("upstream/examples-rrsa-values.yaml",),
        (),
        GO_IMAGE,
    ),
    "chart values.yaml as published, placeholders unfilled": (
        ("PLACEHOLDERS",),
        (),
        "regionId is the ACK placeholder __ACK_REGION_ID__: set it to your region",
    ),
    "rrsa.enable alone (no OIDC provider anywhere)": (
        (),
        ("rrsa.enable=true",),
        "rrsa.enable needs the cluster's OIDC provider",
    ),
}


def values_files(name, files, tmp_path):
    """The values files of a case, as paths: those of WITHOUT_IMAGE cases
    without linux.image; PLACEHOLDERS is the upstream values.yaml as published."""
    out = []
    for f in files:
        if f == "PLACEHOLDERS":
            text = (UPSTREAM / "chart-values-0.6.0.yaml").read_text()
            text = text.replace("regionId: cn-hangzhou", "regionId: __ACK_REGION_ID__")
            text = text.replace("registry-cn-hangzhou.", "registry-__ACK_REGION_ID__.")
            text = text.replace("registry.cn-hangzhou.", "registry.__ACK_REGION_ID__.")
            path = tmp_path / "published.yaml"
            path.write_text(text)
            out.append(path)
        elif name in WITHOUT_IMAGE:
            values = yaml.safe_load((VALUES / f).read_text())
            del values["linux"]["image"]
            path = tmp_path / "without-image.yaml"
            path.write_text(yaml.safe_dump(values))
            out.append(path)
        else:
            out.append(VALUES / f)
    return [str(p) for p in out]


def template(helm, chart, release, files, sets, kube_version=KUBE_VERSIONS[0]):
    return run_helm(
        helm, "template", release, str(chart), "--namespace", NAMESPACE,
        "--kube-version", kube_version, *helm_args(files, sets),
    )


@pytest.fixture
def rendered(helm, chart, tmp_path):
    cache = {}

    def _rendered(name, kube_version=KUBE_VERSIONS[0]):
        if (name, kube_version) not in cache:
            release, files, sets = INSTALLS[name]
            proc = template(helm, chart, release, values_files(name, files, tmp_path), sets, kube_version)
            assert proc.returncode == 0, f"{name}: helm template failed:\n{proc.stderr}"
            cache[(name, kube_version)] = Rendered([d for d in yaml.safe_load_all(proc.stdout) if d])
        return cache[(name, kube_version)]

    return _rendered


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", INSTALLS)
def test_upstream_installs_render_and_validate(rendered, name, kube_version):
    r = rendered(name, kube_version)
    for doc in r.docs:
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']} is invalid for Kubernetes {kube_version}: {err}")
    # What upstream's tests look for: the DaemonSet's pods by `app`, its
    # container by name (the e2e suite patches its env).
    assert r.daemonset["spec"]["template"]["metadata"]["labels"]["app"] == "csi-secrets-store-provider-alibabacloud"
    assert r.container["name"] == "provider-alibabacloud-installer"


@pytest.mark.parametrize("name", INSTALLS)
def test_upstream_installs_pass_lint(helm, chart, tmp_path, name):
    _, files, sets = INSTALLS[name]
    proc = run_helm(
        helm, "lint", "--strict", str(chart), "--namespace", NAMESPACE,
        *helm_args(values_files(name, files, tmp_path), sets),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", REFUSED)
def test_deliberate_refusals_say_what_to_change(helm, chart, tmp_path, name):
    files, sets, message = REFUSED[name]
    proc = template(helm, chart, RELEASE, values_files(name, files, tmp_path), sets)
    assert proc.returncode != 0, f"{name}: rendered, expected a refusal"
    assert message in proc.stderr, f"{message!r} not in:\n{proc.stderr}"


def test_e2e_rrsa_install_is_what_upstream_renders(rendered):
    # Upstream renders: the projected token (rrsa.enable) and the ids as
    # ALICLOUD_ACCOUNT_ID / ALICLOUD_CLUSTER_ID, no role (the suite adds
    # credentials to the DaemonSet later).
    r = rendered("e2e suite with an OIDC provider")
    assert r.daemonset["metadata"]["name"] == RELEASE
    assert r.daemonset["metadata"]["namespace"] == NAMESPACE
    (source,) = r.volume("rrsa-token")["projected"]["sources"]
    token = source["serviceAccountToken"]
    assert token["audience"] == STS_AUDIENCE
    assert f"{r.mount('rrsa-token')['mountPath']}/{token['path']}" == RRSA_TOKEN_PATH
    assert r.env["ALICLOUD_ACCOUNT_ID"] == {"name": "ALICLOUD_ACCOUNT_ID", "value": ACCOUNT_ID}
    assert r.env["ALICLOUD_CLUSTER_ID"] == {"name": "ALICLOUD_CLUSTER_ID", "value": CLUSTER_ID}
    assert "ALICLOUD_ROLE_ARN" not in r.env
    driver = r.driver_values
    assert driver["enableSecretRotation"] is True
    assert driver["syncSecret"]["enabled"] is True
    assert driver["rotationPollInterval"] == "10s"


def test_e2e_install_without_oidc_mounts_no_token(rendered):
    r = rendered("e2e suite without an OIDC provider")
    assert not any(v["name"] == "rrsa-token" for v in r.pod["volumes"])
    assert "ALICLOUD_ACCOUNT_ID" not in r.env


def test_readme_installs_set_what_the_readme_says(rendered):
    ids = rendered("README pod-level RRSA from account and cluster ids")
    assert ids.env["ALICLOUD_ACCOUNT_ID"]["value"] == ACCOUNT_ID
    assert not any(v["name"] == "rrsa-token" for v in ids.pod["volumes"])
    from_secret = rendered("README pod-level RRSA with the OIDC provider ARN from a Secret")
    assert from_secret.env["ALICLOUD_OIDC_PROVIDER_ARN"]["valueFrom"]["secretKeyRef"] == {
        "name": "alibaba-credentials",
        "key": "oidcproviderarn",
    }
    provider = rendered("README provider-level RRSA")
    assert provider.env["ALICLOUD_ROLE_ARN"]["valueFrom"]["secretKeyRef"]["key"] == "rolearn"
    assert provider.env["ALICLOUD_CLUSTER_ID"]["value"] == CLUSTER_ID
    assert provider.volume("rrsa-token")
    role = rendered("README RAM role")
    assert {"ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "ALICLOUD_ROLE_ARN"} <= set(role.env)
    # A generated release name keeps the resource names readable.
    assert rendered("README install").daemonset["metadata"]["name"] == GENERATED_RELEASE


def test_upstream_values_file_keeps_its_settings(rendered):
    r = rendered("chart values.yaml without linux.image")
    assert r.config["cloud"]["region"] == "cn-hangzhou"
    assert r.container["resources"]["limits"] == {"cpu": "100m", "memory": "500Mi"}
    assert r.container["image"].startswith("ghcr.io/")
    assert r.driver_values["linux"]["image"]["repository"] == "registry.cn-hangzhou.aliyuncs.com/acs/csi-secrets-store-driver"
    old = rendered("examples/rrsa-values.yaml without linux.image")
    assert old.driver_values["filteredWatchSecret"] is True
    assert old.volume("rrsa-token")


def test_notes_of_the_e2e_rrsa_install(helm, chart):
    proc = run_helm(
        helm, "install", RELEASE, str(chart), "--namespace", NAMESPACE, "--dry-run=client",
        *helm_args((), E2E_RRSA_SETS + E2E_DRIVER_SETS),
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.split("NOTES:", 1)[1]
    assert "without\nALICLOUD_ROLE_ARN (envVarsFromSecret) the provider does not use it" in text
    assert "Provider-level RRSA is on" not in text
