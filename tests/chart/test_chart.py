"""The Helm chart, rendered by a real helm: lint, Kubernetes schema validation,
and what the provider depends on (socket, args, identity, hardening, config)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tomllib

import kubernetes_validate
import pytest
import yaml

from chart_helpers import (
    BINARY,
    CHART_SRC,
    CONFIG_PATH,
    KUBE_VERSIONS,
    NAMESPACE,
    PLUGIN_DIR,
    PROVIDERS_DIR,
    RELEASE,
    REPO,
    RRSA_TOKEN_PATH,
    SOCKET_NAME,
    STS_AUDIENCE,
    VALUES,
    chart_values,
    helm_args,
    run_helm,
)

# Every values set the chart is checked with: name -> (values files, --set).
SCENARIOS = {
    "defaults": ((), ()),
    "rrsa-seed": (("rrsa-seed.yaml",), ()),
    "rrsa-ids": (("rrsa-ids.yaml",), ()),
    "aksk-seed": (("aksk-seed.yaml",), ()),
    "rotation": (("rotation.yaml",), ()),
    "plugin": (("plugin.yaml",), ()),
    "plugin-volume": (("plugin-volume.yaml",), ()),
    "plugin-capabilities": (("plugin-capabilities.yaml",), ()),
    "strict": (("strict.yaml",), ()),
    "identity": (("identity.yaml",), ()),
    "root-hostnetwork": (("root-hostnetwork.yaml",), ()),
    "upstream-0.6.0": (("upstream-0.6.0.yaml",), ()),
    "no-driver": ((), ("secrets-store-csi-driver.install=false",)),
    "metrics": (("metrics.yaml",), ()),
}


def scenario(name, render, kube_version=KUBE_VERSIONS[0]):
    files, sets = SCENARIOS[name]
    return render(files, sets, kube_version=kube_version)


# === Lint and Kubernetes schemas ===


@pytest.mark.parametrize("name", SCENARIOS)
def test_helm_lint(helm, chart, name):
    files, sets = SCENARIOS[name]
    proc = run_helm(helm, "lint", "--strict", str(chart), "--namespace", NAMESPACE, *helm_args(files, sets))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", SCENARIOS)
def test_manifests_match_kubernetes_schemas(render, name, kube_version):
    rendered = scenario(name, render, kube_version)
    assert rendered.docs
    for doc in rendered.docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # Prometheus Operator CRDs: test_monitoring.py
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} is invalid for Kubernetes {kube_version}: {err}")


def test_kube_version_floor(helm, chart):
    proc = run_helm(helm, "template", "x", str(chart), "--kube-version", "1.29.0")
    assert proc.returncode != 0
    assert "kubeVersion" in proc.stderr or ">=1.30.0-0" in proc.stderr


def test_chart_metadata():
    meta = yaml.safe_load((CHART_SRC / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2"
    assert meta["version"] == "0.1.0" and meta["appVersion"] == "0.1.0"
    assert meta["kubeVersion"] == ">=1.30.0-0"
    (dep,) = meta["dependencies"]
    assert dep == {
        "name": "secrets-store-csi-driver",
        "version": "1.6.0",
        "repository": "https://kubernetes-sigs.github.io/secrets-store-csi-driver/charts",
        "condition": "secrets-store-csi-driver.install",
    }


def test_source_tree_has_no_vendored_dependency():
    # The dependency comes from its repository at package time; tests use a
    # stand-in in a temporary copy and never write into the source tree.
    assert not (CHART_SRC / "charts").exists() or not any((CHART_SRC / "charts").iterdir())


# === Socket, arguments, probes ===


def test_socket_dir_and_arguments(render):
    r = scenario("defaults", render)
    c = r.container
    assert c["command"] == [BINARY]
    assert c["args"][0] == "serve"
    args = c["args"][1:]
    # A non-root provider binds in its own directory, which the init
    # container prepares and <providersDir>/alibabacloud.sock links into.
    assert "--provider-volume=/provider/alibabacloud" in args
    assert f"--config={CONFIG_PATH}" in args
    assert "--healthz-port=8989" in args
    assert "--healthz-path=/healthz" in args
    assert "--healthz-timeout=5s" in args
    assert "-v=0" in args
    assert "--log-format=text" in args
    # No --region: the region lives in config.toml.
    assert not any(a.startswith("--region") for a in args)

    vol = r.volume("providers-dir")
    assert vol["hostPath"] == {"path": PROVIDERS_DIR, "type": "DirectoryOrCreate"}
    # Only that directory is mounted in the provider, not the other providers' sockets.
    assert r.mount("providers-dir") == {
        "name": "providers-dir",
        "mountPath": "/provider/alibabacloud",
        "subPath": "alibabacloud",
    }
    # The driver looks in the same directory.
    assert r.driver_values["linux"]["providersDir"] == PROVIDERS_DIR


def test_config_mounted_where_the_binary_reads_it(render):
    r = scenario("defaults", render)
    mount = r.mount("config")
    assert mount["mountPath"] == CONFIG_PATH
    assert mount["subPath"] == "config.toml"
    assert mount["readOnly"] is True
    assert r.volume("config")["configMap"]["name"] == "csi-secrets-store-provider-alibabacloud-config"


def test_probes(render):
    r = scenario("defaults", render)
    c = r.container
    assert c["ports"] == [{"name": "healthz", "containerPort": 8989, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/live", "port": "healthz"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    # The readiness probe outlasts the provider's own end-to-end timeout (5s).
    assert c["readinessProbe"]["timeoutSeconds"] == 6


def test_custom_health_settings(render):
    r = render(sets=("linux.healthzPort=9090", "linux.healthzPath=/ready", "linux.healthzTimeout=1500ms"))
    c = r.container
    assert "--healthz-port=9090" in c["args"]
    assert "--healthz-path=/ready" in c["args"]
    assert "--healthz-timeout=1500ms" in c["args"]
    assert c["ports"][0]["containerPort"] == 9090
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["readinessProbe"]["timeoutSeconds"] == 3  # ceil(1.5) + 1
    assert c["livenessProbe"]["httpGet"]["path"] == "/live"


@pytest.mark.parametrize(
    "timeout, probe_seconds",
    [("1.5s", 3), (".5s", 2), ("1m30s", 91), ("1m0.5s", 62), ("250000us", 2), ("2s500ms", 4), ("5s", 6)],
)
def test_health_timeout_takes_go_durations(render, timeout, probe_seconds):
    # The upstream chart passed linux.healthzTimeout to Go's flag.Duration.
    c = render(sets=(f"linux.healthzTimeout={timeout}",)).container
    assert f"--healthz-timeout={timeout}" in c["args"]
    assert c["readinessProbe"]["timeoutSeconds"] == probe_seconds


def test_log_settings(render):
    r = scenario("root-hostnetwork", render)
    assert "-v=4" in r.container["args"]
    assert "--log-format=json" in r.container["args"]


def test_termination_grace_follows_shutdown_grace(render):
    assert scenario("defaults", render).pod["terminationGracePeriodSeconds"] == 30
    r = render(sets=("config.limits.shutdown_grace=1m30s",))
    assert r.pod["terminationGracePeriodSeconds"] == 100


# === Hardening ===


def test_hardened_by_default(render):
    r = scenario("defaults", render)
    pod, c = r.pod, r.container
    assert pod["hostNetwork"] is False
    assert "dnsPolicy" not in pod
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["fsGroup"] == 65532
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532 and sc["runAsGroup"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    # No writable scratch space: the binary keeps tokens in memory.
    writable = [m for m in c["volumeMounts"] if not m.get("readOnly")]
    assert [m["name"] for m in writable] == ["providers-dir"]
    assert not any("emptyDir" in v for v in pod["volumes"])


def test_non_root_socket_dir_preparation(render):
    r = scenario("defaults", render)
    (init,) = r.pod["initContainers"]
    assert init["name"] == "prepare-providers-dir"
    sc = init["securityContext"]
    assert sc["runAsUser"] == 0
    # Every change but the owner's is made as the owner: CAP_CHOWN only (no
    # FOWNER, no DAC_OVERRIDE).
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert init["volumeMounts"] == [{"name": "providers-dir", "mountPath": "/provider"}]
    script = init["command"][-1]
    assert 'chown 0:0 "$dir"' in script and 'chmod 0755 "$dir"' in script
    assert 'chown 65532:65532 "$own"' in script
    assert f'ln -s alibabacloud/{SOCKET_NAME} "$sock"' in script
    # Nothing is ever opened to the provider's group (earlier versions: chgrp, g+rwx,+t).
    assert "chgrp" not in script and "g+" not in script and "+t" not in script


def test_custom_user_and_group(render):
    r = render(sets=("linux.runAsUser=10001", "linux.runAsGroup=10002"))
    sc = r.container["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"]) == (10001, 10002)
    script = r.pod["initContainers"][0]["command"][-1]
    assert 'chown 10001:10002 "$own"' in script


def init_script(render, **ids) -> str:
    sets = tuple(f"linux.{k}={v}" for k, v in ids.items())
    return render(sets=sets).pod["initContainers"][0]["command"][-1]


def run_init_script(script: str, providers_dir) -> subprocess.CompletedProcess:
    """The init script on providers_dir, as root with only the capabilities
    the chart grants it (CAP_CHOWN)."""
    script = script.replace("dir=/provider\n", f"dir={providers_dir}\n", 1)
    assert f"dir={providers_dir}\n" in script
    return subprocess.run(
        ["setpriv", "--bounding-set=-all,+chown", "--inh-caps=-all", "/bin/sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
    )


needs_root_and_setpriv = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="runs the init script as root with only CAP_CHOWN (needs root and util-linux setpriv)",
)


def bound_socket(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()


def assert_prepared(providers, uid=65532, gid=65532):
    st = os.lstat(providers)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o755)
    own = providers / "alibabacloud"
    st = os.lstat(own)
    assert stat.S_ISDIR(st.st_mode)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, 0o700)
    assert os.listdir(own) == []
    link = providers / SOCKET_NAME
    st = os.lstat(link)
    assert stat.S_ISLNK(st.st_mode) and st.st_uid == 0
    assert os.readlink(link) == f"alibabacloud/{SOCKET_NAME}"


@needs_root_and_setpriv
def test_init_script_on_a_new_node(render, tmp_path):
    providers = tmp_path / "providers"
    providers.mkdir(mode=0o755)
    bound_socket(providers / "aws.sock")
    result = run_init_script(init_script(render), providers)
    assert result.returncode == 0, result.stderr
    assert_prepared(providers)
    # other providers' sockets are left alone
    assert stat.S_ISSOCK(os.lstat(providers / "aws.sock").st_mode)
    # and the script can run again (the next pod of the DaemonSet), after the
    # provider bound its socket there
    bound_socket(providers / "alibabacloud" / SOCKET_NAME)
    os.chown(providers / "alibabacloud" / SOCKET_NAME, 65532, 65532)
    result = run_init_script(init_script(render), providers)
    assert result.returncode == 0, result.stderr
    assert_prepared(providers)


@needs_root_and_setpriv
def test_init_script_undoes_what_earlier_chart_versions_did(render, tmp_path):
    # Earlier versions: providersDir root:65532, mode 1775, the provider's
    # socket in it, owned by 65532; the upstream provider's, by root.
    providers = tmp_path / "providers"
    providers.mkdir()
    os.chown(providers, 0, 65532)
    os.chmod(providers, 0o1775)
    bound_socket(providers / SOCKET_NAME)
    os.chown(providers / SOCKET_NAME, 65532, 65532)
    result = run_init_script(init_script(render, runAsUser=10001, runAsGroup=10002), providers)
    assert result.returncode == 0, result.stderr
    assert_prepared(providers, 10001, 10002)


@needs_root_and_setpriv
def test_init_script_replaces_what_another_user_planted(render, tmp_path):
    # While earlier versions left providersDir writable by gid 65532, another
    # pod with that gid could have planted its own "alibabacloud" entries.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep me")
    os.chmod(outside, 0o755)

    providers = tmp_path / "providers"
    providers.mkdir(mode=0o755)
    os.symlink(outside, providers / "alibabacloud")  # a symlink to elsewhere
    os.symlink(outside, providers / SOCKET_NAME)
    result = run_init_script(init_script(render), providers)
    assert result.returncode == 0, result.stderr
    assert_prepared(providers)
    st = os.stat(outside)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o755), "the symlink's target was changed"
    assert (outside / "keep").read_text() == "keep me"

    # a directory of another user, sticky and open, with files and links in it
    shutil.rmtree(providers)
    providers.mkdir(mode=0o755)
    own = providers / "alibabacloud"
    own.mkdir()
    (own / ".hidden").write_text("x")
    os.symlink(outside / "keep", own / SOCKET_NAME)
    (own / "empty-dir").mkdir()
    bound_socket(own / "other.sock")
    for entry in [own, own / ".hidden", own / "empty-dir", own / "other.sock"]:
        os.chown(entry, 1234, 65532, follow_symlinks=False)
    os.chmod(own, 0o1777)
    (providers / SOCKET_NAME).mkdir()  # even a directory at the socket's name
    result = run_init_script(init_script(render), providers)
    assert result.returncode == 0, result.stderr
    assert_prepared(providers)
    assert (outside / "keep").read_text() == "keep me"


@needs_root_and_setpriv
def test_init_script_stops_at_what_it_cannot_explain(render, tmp_path):
    providers = tmp_path / "providers"
    providers.mkdir(mode=0o755)
    nested = providers / "alibabacloud" / "nested"
    nested.mkdir(parents=True)
    (nested / "file").write_text("x")
    result = run_init_script(init_script(render), providers)
    assert result.returncode != 0
    assert "is a directory that is not empty; it is not the provider's" in result.stderr
    # the provider's directory stays closed to everyone but root
    st = os.lstat(providers / "alibabacloud")
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700)


def test_setup_container_can_be_disabled(render):
    r = render(sets=("linux.providersDirSetup.enabled=false",))
    assert "initContainers" not in r.pod
    assert r.container["securityContext"]["runAsUser"] == 65532
    # the same layout, prepared by the operator
    assert "--provider-volume=/provider/alibabacloud" in r.container["args"]
    assert r.mount("providers-dir")["subPath"] == "alibabacloud"


def test_root_mode_and_host_network_on_request(render):
    r = scenario("root-hostnetwork", render)
    assert "initContainers" not in r.pod
    sc = r.container["securityContext"]
    assert sc["runAsUser"] == 0 and "runAsNonRoot" not in sc
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert r.pod["hostNetwork"] is True
    assert r.pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert "fsGroup" not in r.pod["securityContext"]
    # as root, as upstream: the socket in the providers directory itself
    assert "--provider-volume=/provider" in r.container["args"]
    assert r.mount("providers-dir") == {"name": "providers-dir", "mountPath": "/provider"}


def test_scheduling_defaults(render):
    pod = scenario("defaults", render).pod
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}]}]


def test_resources(render):
    c = scenario("defaults", render).container
    assert c["resources"] == {
        "requests": {"cpu": "50m", "memory": "96Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }


def test_image_reference(render):
    c = scenario("defaults", render).container
    assert c["image"] == "ghcr.io/alibabacloud-csi/csi-secrets-store-provider-alibabacloud:0.1.0"
    assert c["imagePullPolicy"] == "IfNotPresent"
    digest = "sha256:" + "a" * 64
    c = render(sets=(f"linux.image.digest={digest}",)).container
    assert c["image"] == f"ghcr.io/alibabacloud-csi/csi-secrets-store-provider-alibabacloud@{digest}"


# === RBAC ===


def test_rbac_is_get_serviceaccounts_only(render):
    r = scenario("defaults", render)
    role = r.one("ClusterRole")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]}]
    binding = r.one("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "csi-secrets-store-provider-alibabacloud", "namespace": NAMESPACE}
    ]
    sa = r.one("ServiceAccount")
    assert sa["metadata"]["name"] == "csi-secrets-store-provider-alibabacloud"
    assert r.pod["serviceAccountName"] == "csi-secrets-store-provider-alibabacloud"
    assert r.pod["automountServiceAccountToken"] is True
    # No other RBAC objects anywhere (the stand-in driver renders none).
    assert not r.has("Role") and not r.has("RoleBinding")


def test_upstream_resource_names_are_kept(render):
    # `helm upgrade` from an upstream release adopts the same objects; the
    # DaemonSet selector (immutable) is the upstream one.
    r = scenario("defaults", render)
    assert r.daemonset["metadata"]["name"] == "csi-secrets-store-provider-alibabacloud"
    assert r.daemonset["spec"]["selector"] == {"matchLabels": {"app": "csi-secrets-store-provider-alibabacloud"}}
    assert r.one("ClusterRole")["metadata"]["name"] == "csi-secrets-store-provider-alibabacloud"
    assert r.one("ClusterRoleBinding")["metadata"]["name"] == "csi-secrets-store-provider-alibabacloud-binding"
    assert r.container["name"] == "provider-alibabacloud-installer"


def test_no_service_account_lookup(render):
    r = scenario("strict", render)
    assert not r.has("ClusterRole") and not r.has("ClusterRoleBinding")
    assert r.one("ServiceAccount")["automountServiceAccountToken"] is False
    assert r.pod["automountServiceAccountToken"] is False


def test_rbac_install_false(render):
    r = render(sets=("rbac.install=false", "serviceAccount.name=my-provider"))
    assert not r.has("ServiceAccount") and not r.has("ClusterRole")
    assert r.pod["serviceAccountName"] == "my-provider"


# === Identity: RRSA and envVarsFromSecret ===


def secret_env(rendered, name):
    return rendered.env[name]["valueFrom"]["secretKeyRef"]


def test_rrsa_token_volume(render):
    r = scenario("rrsa-seed", render)
    (source,) = r.volume("rrsa-token")["projected"]["sources"]
    token = source["serviceAccountToken"]
    assert token["audience"] == STS_AUDIENCE
    assert token["expirationSeconds"] == 7200
    mount = r.mount("rrsa-token")
    assert mount["readOnly"] is True
    assert f"{mount['mountPath']}/{token['path']}" == RRSA_TOKEN_PATH
    # A non-root process can read it: kubelet gives projected files the pod's fsGroup.
    assert r.pod["securityContext"]["fsGroup"] == r.container["securityContext"]["runAsGroup"]


def test_rrsa_seed_env(render):
    r = scenario("rrsa-seed", render)
    assert set(r.env) == {"ALICLOUD_ROLE_ARN", "ALICLOUD_OIDC_PROVIDER_ARN"}
    assert secret_env(r, "ALICLOUD_ROLE_ARN") == {"name": "alibaba-credentials", "key": "rolearn"}
    assert secret_env(r, "ALICLOUD_OIDC_PROVIDER_ARN") == {"name": "alibaba-credentials", "key": "oidcproviderarn"}


def test_rrsa_from_account_and_cluster_ids(render):
    r = scenario("rrsa-ids", render)
    assert r.env["ALICLOUD_ACCOUNT_ID"] == {"name": "ALICLOUD_ACCOUNT_ID", "value": "1234567890123456"}
    assert r.env["ALICLOUD_CLUSTER_ID"] == {"name": "ALICLOUD_CLUSTER_ID", "value": "c0123456789abcdef0123456789abcdef"}
    assert secret_env(r, "ALICLOUD_ROLE_ARN") == {"name": "alibaba-credentials", "key": "rolearn"}
    assert r.config["cloud"]["region"] == "cn-shanghai"


def test_numeric_account_id_keeps_its_digits(render):
    r = render(
        ("rrsa-seed.yaml",),
        ("rrsa.accountId=1234567890123456", "rrsa.clusterId=c0123"),
    )
    assert r.env["ALICLOUD_ACCOUNT_ID"]["value"] == "1234567890123456"


def test_aksk_seed_env(render):
    r = scenario("aksk-seed", render)
    assert set(r.env) == {"ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "ALICLOUD_ROLE_ARN"}
    assert secret_env(r, "ACCESS_KEY_ID") == {"name": "alibaba-credentials", "key": "id"}
    assert secret_env(r, "SECRET_ACCESS_KEY") == {"name": "alibaba-credentials", "key": "secret"}
    assert secret_env(r, "ALICLOUD_ROLE_ARN") == {"name": "alibaba-credentials", "key": "rolearn"}
    # No provider RRSA token unless asked for.
    assert not any(v["name"] == "rrsa-token" for v in r.pod["volumes"])


def test_secrets_only_reach_the_pod_as_references(render):
    # Credentials never appear as literal values in any manifest.
    for name in SCENARIOS:
        r = scenario(name, render)
        for e in r.container.get("env", []):
            if e["name"] in {"ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "ALICLOUD_ROLE_ARN", "ALICLOUD_OIDC_PROVIDER_ARN"}:
                assert "value" not in e and "secretKeyRef" in e["valueFrom"], (name, e)


def test_env_entries_without_secret_key_ref_are_skipped(helm, chart, render, tmp_path):
    # As the upstream chart: an entry without secretKeyRef renders nothing.
    values = tmp_path / "env.yaml"
    values.write_text(
        "envVarsFromSecret:\n"
        "  ACCESS_KEY_ID: {secretKeyRef: alibaba-credentials, key: id}\n"
        "  ALICLOUD_ROLE_ARN: {key: rolearn}\n"
        "  ALICLOUD_OIDC_TOKEN_FILE: {}\n"
        "  ALICLOUD_ROLE_SESSION_NAME: null\n"
        "linux:\n"
        "  env: [{name: ALICLOUD_ROLE_ARN, value: acs:ram::1:role/r}]\n"
    )
    r = render((str(values),))
    assert secret_env(r, "ACCESS_KEY_ID") == {"name": "alibaba-credentials", "key": "id"}
    # linux.env may set a name whose envVarsFromSecret entry is skipped.
    assert r.env["ALICLOUD_ROLE_ARN"] == {"name": "ALICLOUD_ROLE_ARN", "value": "acs:ram::1:role/r"}
    assert "ALICLOUD_OIDC_TOKEN_FILE" not in r.env
    assert "ALICLOUD_ROLE_SESSION_NAME" not in r.env
    text = notes(helm, chart, (str(values),))
    assert (
        "envVarsFromSecret entries without secretKeyRef are skipped, as the upstream chart\n"
        "skipped them: ALICLOUD_OIDC_TOKEN_FILE, ALICLOUD_ROLE_ARN, ALICLOUD_ROLE_SESSION_NAME."
    ) in text


def test_extra_env(render):
    r = render(
        ("aksk-seed.yaml",),
        (
            "linux.env[0].name=ALIBABACLOUD_KMS_ENDPOINT",
            "linux.env[0].value=https://kms.cn-hangzhou.aliyuncs.com",
        ),
    )
    assert r.env["ALIBABACLOUD_KMS_ENDPOINT"]["value"] == "https://kms.cn-hangzhou.aliyuncs.com"
    assert "ACCESS_KEY_ID" in r.env


def test_driver_gets_the_sts_token_request(render):
    for name in ("defaults", "rrsa-seed", "aksk-seed", "strict"):
        r = scenario(name, render)
        driver = r.one("CSIDriver")
        assert {"audience": STS_AUDIENCE} in driver["spec"]["tokenRequests"]
        assert driver["spec"]["requiresRepublish"] is False


def test_no_driver(render):
    r = scenario("no-driver", render)
    assert not r.has("CSIDriver")
    assert r.has("DaemonSet")


# === Rotation and sync pass through to the driver ===


def test_rotation(render):
    r = scenario("rotation", render)
    assert r.one("CSIDriver")["spec"]["requiresRepublish"] is True
    values = r.driver_values
    assert values["enableSecretRotation"] is True
    assert values["rotationPollInterval"] == "120s"
    assert values["syncSecret"] == {"enabled": True}
    assert values["tokenRequests"] == [{"audience": STS_AUDIENCE}]


# === config.toml ===


# The [identity] keys of config.toml the chart leaves to the binary: the
# in-cluster Kubernetes API (the pod's own token and CA) is what the chart
# deploys. Any other key of config.toml must be a chart value.
IDENTITY_KEYS_LEFT_TO_THE_BINARY = {"kubernetes_url", "kubernetes_token_file", "kubernetes_ca_file"}


def test_default_config_matches_the_binary_defaults(render):
    """The chart's defaults are the binary's (the repository's config.toml),
    plus the region, which the chart always sets; [identity] is compared key by
    key, except the Kubernetes API keys the chart leaves to the binary."""
    rendered = scenario("defaults", render).config
    shipped = tomllib.loads((REPO / "config.toml").read_text())
    assert rendered["cloud"].pop("region") == ""
    shipped.get("cloud", {}).pop("region", None)
    left_out = set(shipped["identity"]) - set(rendered["identity"])
    assert left_out == IDENTITY_KEYS_LEFT_TO_THE_BINARY, (
        f"[identity] keys of config.toml that are not chart values: {sorted(left_out)}"
    )
    for key in IDENTITY_KEYS_LEFT_TO_THE_BINARY:
        del shipped["identity"][key]
    drift = {
        key: {"chart": rendered["identity"].get(key), "config.toml": value}
        for key, value in shipped["identity"].items()
        if rendered["identity"].get(key) != value
    }
    assert not drift, f"[identity] defaults of the chart differ from config.toml: {drift}"
    # An empty [cloud.endpoints] table and an absent one mean the same.
    for table in (rendered["cloud"], shipped["cloud"]):
        if table.get("endpoints") == {}:
            del table["endpoints"]
    assert rendered == shipped


def test_config_region_and_overrides(render):
    r = render(
        sets=(
            "regionId=ap-southeast-1",
            "config.cloud.network=public",
            "config.cloud.endpoints.kms=http://127.0.0.1:8765",
            "config.cloud.allowed_endpoints={kms.*.aliyuncs.com,*.cryptoservice.kms.aliyuncs.com,kms.internal:8443}",
            "config.cloud.ca_file=/etc/kms-ca/ca.pem",
            "config.limits.fetch_concurrency=64",
            "config.limits.mount_timeout=45s",
        )
    )
    config = r.config
    assert config["cloud"]["region"] == "ap-southeast-1"
    assert config["cloud"]["network"] == "public"
    assert config["cloud"]["endpoints"] == {"kms": "http://127.0.0.1:8765"}
    assert config["cloud"]["allowed_endpoints"] == [
        "kms.*.aliyuncs.com",
        "*.cryptoservice.kms.aliyuncs.com",
        "kms.internal:8443",
    ]
    assert config["cloud"]["ca_file"] == "/etc/kms-ca/ca.pem"
    assert config["limits"]["fetch_concurrency"] == 64
    assert config["limits"]["mount_timeout"] == "45s"
    # Integers stay integers, whatever YAML made of them.
    assert config["limits"]["response_max_bytes"] == 4194304
    assert "4194304" in r.config_toml_text and "e+06" not in r.config_toml_text


def test_config_change_restarts_the_pods(render):
    before = scenario("defaults", render).daemonset["spec"]["template"]["metadata"]["annotations"]
    after = render(sets=("config.limits.fetch_concurrency=64",)).daemonset["spec"]["template"]["metadata"]["annotations"]
    assert before["checksum/config"] != after["checksum/config"]


def test_strict_identity(render):
    identity = scenario("strict", render).config["identity"]
    assert identity["policy"] == "strict"
    assert identity["oidc_provider_arn"] == ""
    assert not IDENTITY_KEYS_LEFT_TO_THE_BINARY & set(identity)


def test_identity_values(render):
    """Every [identity] value reaches config.toml with the binary's type."""
    r = scenario("identity", render)
    assert r.config["identity"] == {
        "policy": "upstream",
        "oidc_provider_arn": "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0123456789abcdef0123456789abcdef",
        "session_duration": "12h",
        # Digits stay a string: the binary reads a string.
        "cross_account_external_id": "0123456789",
        "refresh_margin": "15m",
        "cache_max_entries": 512,
        "cache_idle_ttl": "30m",
        "service_account_cache_ttl": "5m",
        "metadata_url": "https://imds-proxy.kube-system.svc:8443",
    }
    # Provider-level RRSA with the OIDC provider ARN from config.toml only:
    # no environment variable names it.
    assert set(r.env) == {"ALICLOUD_ROLE_ARN"}
    assert r.mount("rrsa-token")["readOnly"] is True


def test_external_id_is_escaped(render, tmp_path):
    """Quotes and backslashes stay in the string (TOML basic string escapes)."""
    external_id = 'a"b\\c=,.@:/-_'
    values = tmp_path / "external-id.yaml"
    values.write_text(yaml.safe_dump({"config": {"identity": {"cross_account_external_id": external_id}}}))
    r = render((str(values),))
    assert r.config["identity"]["cross_account_external_id"] == external_id


def test_identity_change_restarts_the_pods(render):
    before = scenario("defaults", render).daemonset["spec"]["template"]["metadata"]["annotations"]
    after = render(sets=("config.identity.session_duration=2h",)).daemonset["spec"]["template"]["metadata"]["annotations"]
    assert before["checksum/config"] != after["checksum/config"]


@pytest.mark.parametrize("duration", ["15m", "900s", "12h", "11h59m59s", "12h999ms", "1h30m"])
def test_session_durations_sts_accepts(render, duration):
    r = render(sets=(f"config.identity.session_duration={duration}", "config.identity.refresh_margin=1m"))
    assert r.config["identity"]["session_duration"] == duration


def test_null_leaves_a_key_to_the_binary(render):
    r = render(sets=("config.cloud.ca_file=null",))
    assert "ca_file" not in r.config["cloud"]


def test_disable_a_builtin_route(render):
    r = render(sets=("config.plugins.oos.enabled=false", "config.plugins.oos.builtin=null"))
    assert r.config["plugins"]["oos"] == {"enabled": False}


# === Custom plugins ===


def test_embedded_plugin(render):
    r = scenario("plugin", render)
    configmap = r.one("ConfigMap", "csi-secrets-store-provider-alibabacloud-plugins")
    assert configmap["binaryData"] == {"vault.wasm": "AGFzbQ0AAQA="}
    assert "data" not in configmap
    (source,) = r.volume("plugins")["projected"]["sources"]
    assert source == {"configMap": {"name": "csi-secrets-store-provider-alibabacloud-plugins"}}
    assert r.mount("plugins") == {"name": "plugins", "mountPath": PLUGIN_DIR, "readOnly": True}
    vault = r.config["plugins"]["vault"]
    assert vault["path"] == f"{PLUGIN_DIR}/vault.wasm"
    assert vault["timeout"] == "5s"
    assert vault["memory_limit_mib"] == 32
    assert vault["config"] == {"address": "https://vault.internal:8200", "namespace": "team-a", "max_retries": 3}
    # The built-in routes stay.
    assert r.config["plugins"]["kms"] == {"builtin": "kms"}
    assert r.config["plugins"]["oos"] == {"builtin": "oos"}
    # A new plugin file rolls the pods.
    assert "checksum/plugins" in r.daemonset["spec"]["template"]["metadata"]["annotations"]


def test_plugins_from_existing_configmaps(render):
    r = render(
        ("plugin.yaml",),
        ("pluginFiles.configMaps={team-plugins,more-plugins}",),
    )
    sources = r.volume("plugins")["projected"]["sources"]
    assert [s["configMap"]["name"] for s in sources] == [
        "csi-secrets-store-provider-alibabacloud-plugins",
        "team-plugins",
        "more-plugins",
    ]


def test_plugins_from_any_volume(render):
    r = scenario("plugin-volume", render)
    volume = r.volume("plugins")
    assert volume == {"name": "plugins", "persistentVolumeClaim": {"claimName": "csi-provider-plugins", "readOnly": True}}
    assert r.mount("plugins")["mountPath"] == PLUGIN_DIR
    assert not r.has("ConfigMap") or all(
        not cm["metadata"]["name"].endswith("-plugins") for cm in r.all("ConfigMap")
    )
    plugins = r.config["plugins"]
    assert plugins["vault"] == {"path": f"{PLUGIN_DIR}/vault.wasm"}
    assert plugins["legacy"] == {"builtin": "kms"}


def test_no_plugin_volume_by_default(render):
    r = scenario("defaults", render)
    assert not any(v["name"] == "plugins" for v in r.pod["volumes"])


PLUGIN_CACHE = "/var/cache/csi-secrets-store-provider-alibabacloud"


def test_custom_plugins_get_a_private_compile_cache(render):
    """With a custom plugin routed, config.toml names a directory on an
    emptyDir that only the provider's pod mounts; without one, neither."""
    r = scenario("plugin", render)
    assert r.config["plugin_cache"] == {"dir": f"{PLUGIN_CACHE}/plugins"}
    assert r.volume("plugin-cache") == {"name": "plugin-cache", "emptyDir": {"sizeLimit": "512Mi"}}
    assert r.mount("plugin-cache") == {"name": "plugin-cache", "mountPath": PLUGIN_CACHE}

    r = scenario("defaults", render)
    assert r.config["plugin_cache"] == {"dir": ""}
    assert not any(v["name"] == "plugin-cache" for v in r.pod["volumes"])

    # A disabled custom route compiles nothing.
    r = render(("plugin.yaml",), ("config.plugins.vault.enabled=false",))
    assert r.config["plugin_cache"] == {"dir": ""}

    # An operator's own directory is kept as set.
    r = render(("plugin.yaml",), ("config.plugin_cache.dir=/var/lib/provider-cache",))
    assert r.config["plugin_cache"] == {"dir": "/var/lib/provider-cache"}


def test_plugin_route_limits_and_capabilities(render):
    """Every per-route limit and capability reaches [plugins.<type>] and
    [plugins.<type>.capabilities] with the binary's types."""
    r = scenario("plugin-capabilities", render)
    vault = r.config["plugins"]["vault"]
    assert vault == {
        "path": f"{PLUGIN_DIR}/vault.wasm",
        "timeout": "5s",
        "memory_limit_mib": 32,
        "max_output_bytes": 65536,
        "max_host_calls": 8,
        "http_timeout": "2s",
        "http_max_response_bytes": 262144,
        "http_ca_file": f"{PLUGIN_DIR}/vault-ca.pem",
        "config": {"address": "https://vault.internal:8200", "role": "app"},
        "capabilities": {
            "http": ["https://vault.internal:8200", "http://127.0.0.1:8200", "https://[fd00::10]:8200/"],
            "allow_internal_addresses": True,
            "alibaba_cloud": False,
            "service_account_audiences": ["vault", "https://vault.example.com"],
            "node_publish_secret_keys": ["vault_token"],
            "pod_info": True,
        },
    }
    # A built-in plugin on another objectType keeps its grants; an empty list
    # stays a list (nothing granted), not a missing key.
    assert r.config["plugins"]["kms-shared"] == {
        "builtin": "kms",
        "max_host_calls": 64,
        "capabilities": {"alibaba_cloud": True, "http": []},
    }
    assert r.config["plugins"]["kms"] == {"builtin": "kms"}
    # Sub-tables, as config.toml writes them (not inline tables).
    text = r.config_toml_text
    assert "\n[plugins.vault.capabilities]\n" in text
    assert "\n[plugins.vault.config]\n" in text
    assert "\n[plugins.kms-shared.capabilities]\n" in text
    # The driver issues the tokens the route is granted.
    audiences = [t["audience"] for t in r.one("CSIDriver")["spec"]["tokenRequests"]]
    assert audiences == [STS_AUDIENCE, "vault", "https://vault.example.com"]
    assert r.mount("plugins")["mountPath"] == PLUGIN_DIR


def rust_struct_fields(name: str) -> dict[str, str]:
    """Field -> Rust type of `pub struct <name>` in contract/src/config.rs."""
    source = (REPO / "contract" / "src" / "config.rs").read_text()
    match = re.search(rf"^pub struct {name} \{{\n(.*?)^\}}", source, re.M | re.S)
    assert match, f"pub struct {name} not found in contract/src/config.rs"
    return dict(re.findall(r"^\s+pub (\w+): (.+),$", match.group(1), re.M))


# Rust field type -> JSON schema type of the chart value and Python type of the
# rendered TOML value.
RUST_TYPES = {
    "bool": ("boolean", bool),
    "Option<bool>": ("boolean", bool),
    "u32": ("integer", int),
    "u64": ("integer", int),
    "usize": ("integer", int),
    "Option<u32>": ("integer", int),
    "Option<u64>": ("integer", int),
    "Option<usize>": ("integer", int),
    "Duration": ("string", str),
    "Option<Duration>": ("string", str),
    "Option<String>": ("string", str),
    "Option<PathBuf>": ("string", str),
    "Vec<String>": ("array", list),
    "Capabilities": ("object", dict),
    "BTreeMap<String, toml::Value>": ("object", dict),
}


def schema_types(node: dict) -> list[str]:
    kind = node["type"]
    return kind if isinstance(kind, list) else [kind]


@pytest.mark.parametrize(
    "struct, where",
    [
        ("PluginRoute", ("plugins", "additionalProperties", "oneOf", 1)),
        ("Capabilities", ("plugins", "additionalProperties", "oneOf", 1, "properties", "capabilities")),
        ("PluginLimits", ("plugin_defaults",)),
    ],
)
def test_plugin_tables_match_the_binary(render, struct, where):
    """The schema of a route, its capabilities and plugin_defaults has exactly
    the keys of the binary's struct (deny_unknown_fields), with its types; the
    rendered values have the types the binary reads."""
    fields = rust_struct_fields(struct)
    schema = json.loads((CHART_SRC / "values.schema.json").read_text())
    node = schema["properties"]["config"]["properties"]
    for step in where:
        node = node[step]
    props = node["properties"]
    assert node.get("additionalProperties") is False
    assert set(props) == set(fields), f"{struct}: schema {sorted(props)} vs binary {sorted(fields)}"
    for key, rust_type in fields.items():
        assert rust_type in RUST_TYPES, f"{struct}.{key}: add {rust_type} to RUST_TYPES"
        json_type, _ = RUST_TYPES[rust_type]
        assert json_type in schema_types(props[key]), f"{struct}.{key} is {rust_type}, schema {props[key]}"
        if json_type == "array":
            assert props[key]["items"]["type"] == "string"
    rendered = scenario("plugin-capabilities", render).config
    tables = {
        "PluginRoute": [rendered["plugins"]["vault"], rendered["plugins"]["kms-shared"]],
        "Capabilities": [rendered["plugins"]["vault"]["capabilities"]],
        "PluginLimits": [rendered["plugin_defaults"]],
    }[struct]
    for table in tables:
        assert set(table) <= set(fields)
        for key, value in table.items():
            _, python_type = RUST_TYPES[fields[key]]
            assert type(value) is python_type, f"{struct}.{key} = {value!r}"
            if python_type is list:
                assert all(isinstance(v, str) for v in value)
    # The values set exercises every key (`enabled` has its own test).
    assert set(fields) - set().union(*tables) <= {"enabled"}


def test_capabilities_left_out_grant_nothing(render):
    """No capabilities (or null) writes no table: the binary then denies all
    but its defaults."""
    assert "capabilities" not in scenario("plugin", render).config["plugins"]["vault"]
    r = render(("plugin.yaml",), ("config.plugins.vault.capabilities=null",))
    assert "capabilities" not in r.config["plugins"]["vault"]
    assert "capabilities" not in r.config_toml_text


def test_readme_plugin_example_renders_as_shown(render, tmp_path):
    """The chart README's Vault example renders into the config.toml it shows."""
    readme = (CHART_SRC / "README.md").read_text()
    (example,) = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "service_account_audiences" in b]
    (shown,) = [b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if "[plugins.vault.capabilities]" in b]
    values = tmp_path / "readme-vault.yaml"
    values.write_text(example.replace("AGFzbQ0AAQA...", "AGFzbQ0AAQA="))
    r = render((str(values),))
    assert shown in r.config_toml_text
    assert r.config["plugins"]["vault"] == tomllib.loads(shown)["plugins"]["vault"]


def test_granted_audience_of_a_disabled_route_is_not_checked(render):
    r = render(
        ("plugin.yaml",),
        ("config.plugins.vault.capabilities.service_account_audiences={vault}", "config.plugins.vault.enabled=false"),
    )
    assert r.config["plugins"]["vault"]["enabled"] is False


def test_granted_audience_with_an_external_driver(render):
    """The chart cannot see an external driver's tokenRequests: no failure
    (the notes name the audiences instead)."""
    r = render(
        ("plugin.yaml",),
        ("config.plugins.vault.capabilities.service_account_audiences={vault}", "secrets-store-csi-driver.install=false"),
    )
    assert r.config["plugins"]["vault"]["capabilities"] == {"service_account_audiences": ["vault"]}
    assert not r.has("CSIDriver")


# === Upstream values files ===


def test_upstream_values_file_works_unchanged(render):
    r = scenario("upstream-0.6.0", render)
    pod, c = r.pod, r.container
    assert c["resources"]["limits"] == {"cpu": "100m", "memory": "500Mi"}
    assert pod["imagePullSecrets"] == [{"name": "acr-credentials"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "node-role.kubernetes.io/worker": ""}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "secrets", "effect": "NoSchedule"}]
    assert "priorityClassName" not in pod  # upstream's "" means none
    labels = r.daemonset["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "platform"
    assert r.daemonset["spec"]["template"]["metadata"]["annotations"]["example.com/owner"] == "platform"
    assert r.mount("kms-ca") == {"name": "kms-ca", "mountPath": "/etc/kms-ca", "readOnly": True}
    assert r.volume("kms-ca") == {"name": "kms-ca", "configMap": {"name": "kms-instance-ca"}}
    assert "-v=2" in c["args"]
    assert r.config["cloud"]["region"] == "cn-hangzhou"
    assert secret_env(r, "ALICLOUD_ROLE_SESSION_EXPIRATION") == {
        "name": "alibaba-credentials",
        "key": "rolesessionexpiration",
    }
    assert secret_env(r, "ALICLOUD_OIDC_TOKEN_FILE")["key"] == "oidctokenfile"
    driver = r.driver_values
    assert driver["linux"]["image"]["repository"] == "registry.cn-hangzhou.aliyuncs.com/acs/csi-secrets-store-driver"
    assert driver["linux"]["metricsAddr"] == ":8080"


def test_image_pull_secrets_as_names(render):
    r = render(sets=("imagePullSecrets={one,two}",))
    assert r.pod["imagePullSecrets"] == [{"name": "one"}, {"name": "two"}]


def test_linux_disabled(render):
    r = render(sets=("linux.enabled=false",))
    assert not r.has("DaemonSet")
    assert not any(cm["metadata"]["name"].startswith("csi-secrets") for cm in r.all("ConfigMap"))


# === Bad values fail, with a message that says what to fix ===

# case -> (--set, path of the bad value, words of which one explains the
# problem). Helm 4 writes paths as /a/b, Helm 3 as a.b; both are accepted.
SCHEMA_ERRORS = {
    "allowed endpoint with a partial-label wildcard": (
        ("config.cloud.allowed_endpoints={kms*.aliyuncs.com}",),
        "config.cloud.allowed_endpoints",
        ("pattern",),
    ),
    "allowed endpoint wildcard above a top-level domain": (
        ("config.cloud.allowed_endpoints={kms.*.com}",),
        "config.cloud.allowed_endpoints",
        ("pattern",),
    ),
    "allowed endpoint wildcard alone": (
        ("config.cloud.allowed_endpoints={*}",),
        "config.cloud.allowed_endpoints",
        ("pattern",),
    ),
    "allowed endpoint with a scheme": (
        ("config.cloud.allowed_endpoints={https://kms.internal}",),
        "config.cloud.allowed_endpoints",
        ("pattern",),
    ),
    "port out of range": (("linux.healthzPort=70000",), "linux.healthzPort", ("maximum", "less than or equal")),
    "health timeout without unit": (("linux.healthzTimeout=5",), "linux.healthzTimeout", ("string",)),
    "health timeout not a duration": (("linux.healthzTimeout=fast",), "linux.healthzTimeout", ("pattern",)),
    "negative health timeout": (("linux.healthzTimeout=-5s",), "linux.healthzTimeout", ("pattern",)),
    "unknown policy": (("config.identity.policy=lenient",), "config.identity.policy", ("strict",)),
    "verbosity": (("logVerbosity=11",), "logVerbosity", ("maximum", "less than or equal")),
    "typo at top level": (("linx.enabled=true",), "", ("linx",)),
    "typo in linux": (("linux.hostNetwrok=true",), "linux", ("hostNetwrok",)),
    "typo in config": (("config.limits.mount_timout=10s",), "config.limits", ("mount_timout",)),
    "rotation interval without unit": (
        ("secrets-store-csi-driver.rotationPollInterval=120",),
        "secrets-store-csi-driver.rotationPollInterval",
        ("string",),
    ),
    "bad duration": (("config.limits.mount_timeout=thirty",), "config.limits.mount_timeout", ("pattern",)),
    "bad network": (("config.cloud.network=internal",), "config.cloud.network", ("vpc",)),
    "env entry without key": (
        ("envVarsFromSecret.ACCESS_KEY_ID.secretKeyRef=alibaba-credentials",),
        "envVarsFromSecret.ACCESS_KEY_ID",
        ("key",),
    ),
    "not a wasm file": (
        ("pluginFiles.binaryData.vault\\.wasm=aGVsbG8=",),
        "pluginFiles.binaryData",
        ("AGFzbQ",),
    ),
    "unknown builtin": (("config.plugins.vault.builtin=vault",), "config.plugins.vault", ("kms",)),
    "plugin origin with a path": (
        ("config.plugins.vault.capabilities.http={https://vault.internal:8200/v1}",),
        "config.plugins.vault.capabilities.http",
        ("pattern",),
    ),
    "plugin origin without scheme": (
        ("config.plugins.vault.capabilities.http={vault.internal:8200}",),
        "config.plugins.vault.capabilities.http",
        ("pattern",),
    ),
    "plugin origin with credentials": (
        ("config.plugins.vault.capabilities.http={https://user:pw@vault.internal}",),
        "config.plugins.vault.capabilities.http",
        ("pattern",),
    ),
    "plugin origin with a query": (
        ("config.plugins.vault.capabilities.http={https://vault.internal?ns=a}",),
        "config.plugins.vault.capabilities.http",
        ("pattern",),
    ),
    "plugin origin not HTTP": (
        ("config.plugins.vault.capabilities.http={ftp://vault.internal}",),
        "config.plugins.vault.capabilities.http",
        ("pattern",),
    ),
    "plugin origin port out of range": (
        ("config.plugins.vault.capabilities.http={https://vault.internal:65536}",),
        "config.plugins.vault.capabilities.http",
        ("pattern",),
    ),
    "plugin origins as one string": (
        ("config.plugins.vault.capabilities.http=https://vault.internal",),
        "config.plugins.vault.capabilities.http",
        ("array",),
    ),
    "unknown capability": (
        ("config.plugins.vault.capabilities.filesystem=true",),
        "config.plugins.vault.capabilities",
        ("filesystem",),
    ),
    "capability typo": (
        ("config.plugins.vault.capabilities.service_account_audience={vault}",),
        "config.plugins.vault.capabilities",
        ("service_account_audience",),
    ),
    "pod_info not a boolean": (
        ("config.plugins.vault.capabilities.pod_info=yes",),
        "config.plugins.vault.capabilities.pod_info",
        ("boolean",),
    ),
    "alibaba_cloud not a boolean": (
        ("config.plugins.vault.capabilities.alibaba_cloud=1",),
        "config.plugins.vault.capabilities.alibaba_cloud",
        ("boolean",),
    ),
    "allow_internal_addresses not a boolean": (
        ("config.plugins.vault.capabilities.allow_internal_addresses=no",),
        "config.plugins.vault.capabilities.allow_internal_addresses",
        ("boolean",),
    ),
    "audiences as one string": (
        ("config.plugins.vault.capabilities.service_account_audiences=vault",),
        "config.plugins.vault.capabilities.service_account_audiences",
        ("array",),
    ),
    "empty audience": (
        ("config.plugins.vault.capabilities.service_account_audiences={}",),
        "config.plugins.vault.capabilities.service_account_audiences",
        ("minLength", "greater than or equal"),
    ),
    "secret key not a string": (
        ("config.plugins.vault.capabilities.node_publish_secret_keys[0]=1",),
        "config.plugins.vault.capabilities.node_publish_secret_keys",
        ("string",),
    ),
    "capabilities as a list": (
        ("config.plugins.vault.capabilities={http}",),
        "config.plugins.vault.capabilities",
        ("object",),
    ),
    "no host calls": (
        ("config.plugins.vault.max_host_calls=0",),
        "config.plugins.vault.max_host_calls",
        ("minimum", "greater than or equal"),
    ),
    "host calls beyond u32": (
        ("config.plugins.vault.max_host_calls=4294967296",),
        "config.plugins.vault.max_host_calls",
        ("maximum", "less than or equal"),
    ),
    "host calls as a string": (
        ("config.plugins.vault.max_host_calls=many",),
        "config.plugins.vault.max_host_calls",
        ("integer",),
    ),
    "plugin http timeout without unit": (
        ("config.plugins.vault.http_timeout=5",),
        "config.plugins.vault.http_timeout",
        ("string",),
    ),
    "plugin http timeout in words": (
        ("config.plugins.vault.http_timeout=five seconds",),
        "config.plugins.vault.http_timeout",
        ("pattern",),
    ),
    "no plugin http answer": (
        ("config.plugins.vault.http_max_response_bytes=0",),
        "config.plugins.vault.http_max_response_bytes",
        ("minimum", "greater than or equal"),
    ),
    "fractional plugin http answer": (
        ("config.plugins.vault.http_max_response_bytes=1.5",),
        "config.plugins.vault.http_max_response_bytes",
        ("integer",),
    ),
    "plugin memory too large": (
        ("config.plugins.kms.memory_limit_mib=8192",),
        "config.plugins.kms",
        ("4096", "4,096"),
    ),
    "bad pull policy": (("linux.image.pullPolicy=Sometimes",), "linux.image.pullPolicy", ("IfNotPresent",)),
    "negative uid": (("linux.runAsUser=-1",), "linux.runAsUser", ("minimum", "greater than or equal")),
    "OIDC provider ARN of a role": (
        ("config.identity.oidc_provider_arn=acs:ram::1234567890123456:role/ack-rrsa-c1",),
        "config.identity.oidc_provider_arn",
        ("oidc-provider",),
    ),
    "OIDC provider ARN without account": (
        ("config.identity.oidc_provider_arn=acs:ram:::oidc-provider/ack-rrsa-c1",),
        "config.identity.oidc_provider_arn",
        ("pattern",),
    ),
    "session duration without unit": (
        ("config.identity.session_duration=3600",),
        "config.identity.session_duration",
        ("string",),
    ),
    "session duration in words": (
        ("config.identity.session_duration=one hour",),
        "config.identity.session_duration",
        ("pattern",),
    ),
    "bad refresh margin": (("config.identity.refresh_margin=3 min",), "config.identity.refresh_margin", ("pattern",)),
    "bad cache idle ttl": (("config.identity.cache_idle_ttl=1d",), "config.identity.cache_idle_ttl", ("pattern",)),
    "bad service account ttl": (
        ("config.identity.service_account_cache_ttl=-1s",),
        "config.identity.service_account_cache_ttl",
        ("pattern",),
    ),
    "empty credential cache": (
        ("config.identity.cache_max_entries=0",),
        "config.identity.cache_max_entries",
        ("minimum", "greater than or equal"),
    ),
    "external id as a number": (
        ("config.identity.cross_account_external_id=12345",),
        "config.identity.cross_account_external_id",
        ("string",),
    ),
    "metadata url with a path": (
        ("config.identity.metadata_url=http://100.100.100.200/latest/meta-data",),
        "config.identity.metadata_url",
        ("pattern",),
    ),
    "metadata url without scheme": (
        ("config.identity.metadata_url=100.100.100.200",),
        "config.identity.metadata_url",
        ("https?://",),
    ),
    "metadata url with credentials": (
        ("config.identity.metadata_url=http://user:pw@100.100.100.200",),
        "config.identity.metadata_url",
        ("pattern",),
    ),
    "empty metadata url": (("config.identity.metadata_url=",), "config.identity.metadata_url", ("pattern",)),
    "Kubernetes API key": (("config.identity.kubernetes_url=https://k8s:6443",), "config.identity", ("kubernetes_url",)),
}


@pytest.mark.parametrize("case", SCHEMA_ERRORS)
def test_schema_rejects_bad_values(render_error, case):
    sets, path, reasons = SCHEMA_ERRORS[case]
    err = render_error(sets=sets)
    assert "values don't meet the specifications of the schema" in err, err
    if path:
        named = (f"/{path.replace('.', '/')}", f"{path}:", f"{path}.")
        assert any(n in err for n in named), f"{path} not named in:\n{err}"
    assert any(r in err for r in reasons), f"none of {reasons} in:\n{err}"


TEMPLATE_ERRORS = {
    "the old allowed_endpoints default": (
        ((), ("config.cloud.allowed_endpoints={*.aliyuncs.com}",)),
        'config.cloud.allowed_endpoints has "*.aliyuncs.com": a * matches exactly one DNS label',
    ),
    "a wildcard directly above a two-label domain": (
        ((), ("config.cloud.allowed_endpoints={kms.internal:8443,*.example.com}",)),
        "List the endpoints instead, e.g. the chart's default (remove allowed_endpoints from your values): "
        "kms.*.aliyuncs.com, kms-vpc.*.aliyuncs.com, *.cryptoservice.kms.aliyuncs.com",
    ),
    "ACK region placeholder": (
        ((), ("regionId=__ACK_REGION_ID__",)),
        "regionId is the ACK placeholder __ACK_REGION_ID__: set it to your region",
    ),
    "bad region": (((), ("regionId=Hangzhou",)), 'regionId "Hangzhou" is not a region id'),
    "ACK image placeholder": (
        ((), ("linux.image.repository=registry-__ACK_REGION_ID__.aliyuncs.com/acs/x",)),
        "linux.image.repository contains the ACK placeholder",
    ),
    "ACK driver image placeholder": (
        ((), ("secrets-store-csi-driver.linux.image.repository=registry.__ACK_REGION_ID__.aliyuncs.com/acs/d",)),
        "secrets-store-csi-driver.linux.image.repository contains the ACK placeholder",
    ),
    "upstream Go image": (
        (
            (),
            (
                "linux.image.repository=registry.cn-hangzhou.aliyuncs.com/acs/secrets-store-csi-driver-provider-alibaba-cloud",
                "linux.image.tag=v0.6.0",
            ),
        ),
        "the upstream Go provider, which this chart cannot run",
    ),
    "RRSA without any OIDC provider": (((), ("rrsa.enable=true",)), "rrsa.enable needs the cluster's OIDC provider"),
    "RRSA without OIDC provider": (
        (
            (),
            (
                "rrsa.enable=true",
                "envVarsFromSecret.ALICLOUD_ROLE_ARN.secretKeyRef=alibaba-credentials",
                "envVarsFromSecret.ALICLOUD_ROLE_ARN.key=rolearn",
            ),
        ),
        "or config.identity.oidc_provider_arn",
    ),
    "half of the RRSA ids": (((), ("rrsa.accountId=123",)), "rrsa.accountId and rrsa.clusterId go together"),
    "duplicate env": (
        (("aksk-seed.yaml",), ("linux.env[0].name=ACCESS_KEY_ID", "linux.env[0].value=x")),
        "linux.env sets ACCESS_KEY_ID, which envVarsFromSecret sets too",
    ),
    "providers dir mismatch": (
        ((), ("linux.providersDir=/etc/kubernetes/secrets-store-csi-providers",)),
        "linux.providersDir (/etc/kubernetes/secrets-store-csi-providers) and secrets-store-csi-driver.linux.providersDir",
    ),
    "plugin path without files": (
        ((), ("config.plugins.vault.path=vault.wasm",)),
        "config.plugins.vault.path is /etc/csi-secrets-store-provider-alibabacloud/plugins/vault.wasm, but no plugin files are mounted",
    ),
    "plugin file missing": (
        (("plugin.yaml",), ("config.plugins.other.path=other.wasm",)),
        "pluginFiles.binaryData has no other.wasm (it has: vault.wasm)",
    ),
    "plugin CA file that is not PEM": (
        (("plugin.yaml",), ("pluginFiles.binaryData.vault-ca\\.pem=AGFzbQ0AAQA=",)),
        "/pluginFiles/binaryData/vault-ca.pem",
    ),
    "plugin CA file missing": (
        (("plugin.yaml",), ("config.plugins.vault.http_ca_file=vault-ca.pem",)),
        "config.plugins.vault.http_ca_file is /etc/csi-secrets-store-provider-alibabacloud/plugins/vault-ca.pem, "
        "but pluginFiles.binaryData has no vault-ca.pem (it has: vault.wasm)",
    ),
    "granted audience the driver does not issue": (
        (("plugin.yaml",), ("config.plugins.vault.capabilities.service_account_audiences={vault}",)),
        'config.plugins.vault.capabilities.service_account_audiences grants the audience "vault", '
        "but secrets-store-csi-driver.tokenRequests has no {audience: vault}",
    ),
    "granted audience without any tokenRequests": (
        (
            ("plugin-capabilities.yaml",),
            ("secrets-store-csi-driver.tokenRequests=null",),
        ),
        "keep {audience: sts.aliyuncs.com} in it), or remove the grant",
    ),
    "second audience missing": (
        (
            ("plugin-capabilities.yaml",),
            ("secrets-store-csi-driver.tokenRequests[2].audience=vault-old",),
        ),
        'grants the audience "https://vault.example.com", but secrets-store-csi-driver.tokenRequests has no',
    ),
    "built-in plugin denied Alibaba Cloud": (
        ((), ("config.plugins.kms.capabilities.alibaba_cloud=false",)),
        "config.plugins.kms.capabilities.alibaba_cloud is false, but the built-in kms plugin makes signed Alibaba Cloud calls",
    ),
    "route with builtin and path": (
        (("plugin.yaml",), ("config.plugins.vault.builtin=kms",)),
        "config.plugins.vault sets both builtin and path",
    ),
    "volume and configmaps": (
        (("plugin-volume.yaml",), ("pluginFiles.configMaps={a}",)),
        "pluginFiles.volume cannot be combined",
    ),
    "session shorter than STS allows": (
        ((), ("config.identity.session_duration=10m",)),
        "config.identity.session_duration is 10m: STS issues credentials for 15m to 12h",
    ),
    "session just under 15 minutes": (
        ((), ("config.identity.session_duration=899s999ms", "config.identity.refresh_margin=1m")),
        "config.identity.session_duration is 899s999ms: STS issues credentials for 15m to 12h",
    ),
    "session longer than STS allows": (
        ((), ("config.identity.session_duration=12h1s",)),
        "config.identity.session_duration is 12h1s: STS issues credentials for 15m to 12h",
    ),
    "session of a huge number": (
        ((), ("config.identity.session_duration=99999999999999999999s",)),
        "config.identity.session_duration is 99999999999999999999s",
    ),
    "refresh margin as long as the session": (
        ((), ("config.identity.session_duration=15m", "config.identity.refresh_margin=900s")),
        "config.identity.refresh_margin (900s) must be shorter than config.identity.session_duration (15m)",
    ),
    "OIDC provider ARN twice (environment)": (
        (("rrsa-seed.yaml",), ("config.identity.oidc_provider_arn=acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1",)),
        "config.identity.oidc_provider_arn is ignored when ALICLOUD_OIDC_PROVIDER_ARN",
    ),
    "OIDC provider ARN twice (ids)": (
        (("rrsa-ids.yaml",), ("config.identity.oidc_provider_arn=acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1",)),
        "config.identity.oidc_provider_arn is ignored when ALICLOUD_OIDC_PROVIDER_ARN",
    ),
    "OIDC provider ARN twice (linux.env)": (
        (
            (),
            (
                "config.identity.oidc_provider_arn=acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1",
                "linux.env[0].name=ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                "linux.env[0].value=acs:ram::1234567890123456:oidc-provider/ack-rrsa-c2",
            ),
        ),
        "config.identity.oidc_provider_arn is ignored when ALICLOUD_OIDC_PROVIDER_ARN",
    ),
}


@pytest.mark.parametrize("case", TEMPLATE_ERRORS)
def test_inconsistent_values_fail_clearly(render_error, case):
    (files, sets), message = TEMPLATE_ERRORS[case]
    err = render_error(files, sets)
    assert message in err, f"{message!r} not in:\n{err}"


# === Documentation of the values ===


def leaf_paths(value, prefix=""):
    """Dotted paths of values.yaml; maps that hold user-chosen keys count as one value."""
    opaque = {
        "linux.nodeSelector", "linux.affinity", "linux.podLabels", "linux.podAnnotations",
        "linux.updateStrategy", "linux.resources", "linux.providersDirSetup.resources",
        "envVarsFromSecret", "config.cloud.endpoints", "config.plugins", "pluginFiles.binaryData",
        "pluginFiles.volume",
    }
    if isinstance(value, dict) and value and prefix not in opaque:
        for key, sub in value.items():
            yield from leaf_paths(sub, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_every_value_is_documented_and_in_the_schema():
    values = chart_values()
    readme = (CHART_SRC / "README.md").read_text()
    schema = json.loads((CHART_SRC / "values.schema.json").read_text())
    missing_doc, missing_schema = [], []
    for path in leaf_paths(values):
        if f"`{path}`" not in readme:
            missing_doc.append(path)
        node = schema
        for part in path.split("."):
            props = node.get("properties", {})
            if part not in props:
                missing_schema.append(path)
                break
            node = props[part]
    assert not missing_doc, f"values missing from the chart README: {missing_doc}"
    assert not missing_schema, f"values missing from values.schema.json: {missing_schema}"


def key_lines(lines):
    """Dotted path -> index of the line that defines it, for the mapping keys
    of a YAML file written in block style (as values.yaml is)."""
    stack: list[tuple[int, str]] = []
    found = {}
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z][\w.-]*):(\s|$)", line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        found.setdefault(".".join(k for _, k in stack), i)
    return found


def test_every_value_is_commented():
    """Each value (as README.md lists them) has a `# --` comment just above it."""
    lines = (CHART_SRC / "values.yaml").read_text().splitlines()
    where = key_lines(lines)
    uncommented = []
    for path in leaf_paths(chart_values()):
        j = where[path] - 1
        block = []
        while j >= 0 and lines[j].strip().startswith("#"):
            block.insert(0, lines[j].strip())
            j -= 1
        if not block or not block[0].startswith("# --"):
            uncommented.append(path)
    assert not uncommented, f"values without a comment: {uncommented}"


def test_values_sets_are_valid_yaml():
    for f in VALUES.glob("*.yaml"):
        assert isinstance(yaml.safe_load(f.read_text()), dict), f


# === NOTES.txt ===


def notes(helm, chart, value_files=(), sets=()):
    proc = run_helm(
        helm, "install", RELEASE, str(chart), "--namespace", NAMESPACE,
        "--dry-run=client", *helm_args(value_files, sets),
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("NOTES:", 1)[1]



def test_notes_default(helm, chart):
    text = notes(helm, chart)
    assert "/var/run/secrets-store-csi-providers/alibabacloud.sock" in text
    assert "as uid 65532, gid 65532" in text
    assert "Identity policy: upstream" in text
    assert "config.identity.policy=strict" in text
    assert "WARNING" not in text


def test_notes_warn_about_what_will_not_work(helm, chart):
    text = notes(
        helm, chart, ("rrsa-seed.yaml", "strict.yaml"),
        ("secrets-store-csi-driver.tokenRequests=null",),
    )
    assert "Identity policy: strict" in text
    # The provider's own role is named; the OIDC provider ARN is not (pod
    # identity uses it), and it is configured.
    assert "NOTE: rrsa.enable, ALICLOUD_ROLE_ARN give the provider credentials" in text
    assert "which the strict policy never uses" in text
    assert "no OIDC provider ARN is configured" not in text
    assert "tokenRequests has no audience sts.aliyuncs.com" in text
    assert "system:serviceaccount:kube-system:csi-secrets-store-provider-alibabacloud" in text


def test_notes_strict_names_unused_access_keys(helm, chart):
    text = notes(helm, chart, ("aksk-seed.yaml",), ("config.identity.policy=strict",))
    assert "NOTE: ACCESS_KEY_ID, SECRET_ACCESS_KEY, ALICLOUD_ROLE_ARN give the provider credentials" in text
    # Nothing names the cluster's OIDC provider: pod-level RRSA cannot work.
    assert "no OIDC provider ARN is configured" in text
    assert "config.identity.oidc_provider_arn" in text


def test_notes_strict_with_oidc_provider_from_config(helm, chart):
    text = notes(
        helm, chart, ("strict.yaml",),
        ("config.identity.oidc_provider_arn=acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1",),
    )
    assert "Identity policy: strict" in text
    assert "NOTE" not in text


def test_notes_name_plugin_audiences_for_an_external_driver(helm, chart):
    text = notes(
        helm, chart, ("plugin-capabilities.yaml",), ("secrets-store-csi-driver.install=false",),
    )
    assert "Plugin routes are granted ServiceAccount tokens for the audiences https://vault.example.com, vault:" in text
    assert "kubectl get csidriver secrets-store.csi.k8s.io -o jsonpath='{.spec.tokenRequests}'" in text
    # Disabled routes grant nothing; with the driver installed here the
    # chart checks tokenRequests itself and says nothing.
    off = notes(
        helm, chart, ("plugin-capabilities.yaml",),
        ("secrets-store-csi-driver.install=false", "config.plugins.vault.enabled=false"),
    )
    assert "Plugin routes are granted" not in off
    assert "Plugin routes are granted" not in notes(helm, chart, ("plugin-capabilities.yaml",))
    assert "WARNING" not in notes(helm, chart, ("plugin-capabilities.yaml",))


def test_notes_without_service_account_lookup_ask_for_pod_role_arn(helm, chart):
    text = notes(helm, chart, ("strict.yaml",))
    assert "rbac.readServiceAccounts is false" in text
    assert 'usePodServiceAccountToken: "true"' in text
    assert "podRoleArn: acs:ram::<account-id>:role/<role-name>" in text
    assert "podRoleArn" not in notes(helm, chart)
