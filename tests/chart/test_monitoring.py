"""The chart's monitoring resources: the metrics Service and ServiceMonitor,
the PrometheusRule (checked and unit-tested by a real `promtool`), the
Grafana dashboard, and that every metric they name is one the provider
registers (host/src/metrics.rs)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from chart_helpers import HERE, NAMESPACE, RELEASE, REPO

METRICS_RS = REPO / "host" / "src" / "metrics.rs"
RULES_TEST = HERE / "prometheus" / "provider-rules.test.yaml"
MONITORING = "monitoring.coreos.com/v1"
ALL_ON = ("metrics.yaml",)


def provider_series() -> set[str]:
    """Every series name the provider can expose: each registered family
    (with `_seconds` when registered with a unit), as a counter
    (`_total`), a gauge, or a histogram (`_bucket`, `_sum`, `_count`)."""
    source = METRICS_RS.read_text()
    names = set()
    for m in re.finditer(r'r\.register(_with_unit)?\(\s*"(\w+)",', source):
        name = "alibabacloud_provider_" + m.group(2)
        if m.group(1):
            assert "Unit::Seconds" in source[m.end() : m.end() + 300], name
            name += "_seconds"
        names.add(name)
    assert len(names) > 15, names
    return {n + suffix for n in names for suffix in ("", "_total", "_bucket", "_sum", "_count")}


def named_metrics(text: str) -> set[str]:
    return set(re.findall(r"alibabacloud_provider_\w+", text))


def dashboards(rendered) -> list[dict]:
    return [d for d in rendered.all("ConfigMap") if "grafana_dashboard" in (d["metadata"].get("labels") or {})]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed: `apt-get install -y --no-install-recommends prometheus` (.ci/run does)")
    return path


def rule_spec(render, sets=()) -> dict:
    rule = render(sets=("metrics.prometheusRule.enabled=true", *sets)).one("PrometheusRule")
    return rule["spec"]


# === Off by default ===


def test_nothing_by_default(render):
    r = render()
    assert not any(d["apiVersion"] == MONITORING for d in r.docs)
    assert not r.has("Service")
    assert not dashboards(r)
    annotations = r.daemonset["spec"]["template"]["metadata"]["annotations"]
    assert not any(k.startswith("prometheus.io/") for k in annotations)


# === Scraping ===


def test_service_monitor_scrapes_every_provider_pod(render):
    r = render(ALL_ON)
    service = r.one("Service")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8989, "targetPort": "healthz", "protocol": "TCP"}]
    pod_labels = r.daemonset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = r.one("ServiceMonitor")
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("15s", "5s")
    # The health container port the Service targets.
    assert {"name": "healthz", "containerPort": 8989, "protocol": "TCP"} in r.container["ports"]


def test_service_alone_follows_the_health_port(render):
    r = render(sets=("metrics.service.enabled=true", "linux.healthzPort=9100"))
    assert r.one("Service")["spec"]["ports"][0]["port"] == 9100
    assert not any(d["apiVersion"] == MONITORING for d in r.docs)


def test_scrape_annotations(render):
    annotations = render(sets=("metrics.podAnnotations=true", "linux.healthzPort=9100")).daemonset["spec"][
        "template"
    ]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9100"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_no_service_monitor_without_the_daemonset(render):
    r = render(ALL_ON, ("linux.enabled=false",))
    assert not r.has("Service") and not r.has("ServiceMonitor")


# === Alerts ===


def test_rule_resource(render):
    rule = render(ALL_ON).one("PrometheusRule")
    assert rule["metadata"]["namespace"] == NAMESPACE
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (group,) = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert set(alerts) == {
        "AlibabaCloudProviderMountFailureRatioHigh",
        "AlibabaCloudProviderBackendThrottled",
        "AlibabaCloudProviderCredentialRefreshFailures",
        "AlibabaCloudProviderPluginTraps",
    }
    for alert in alerts.values():
        assert alert["labels"] == {"severity": "warning", "team": "platform"}
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_alert_thresholds_and_severity_from_values(render, tmp_path):
    values = tmp_path / "alerts.yaml"
    values.write_text(yaml.safe_dump({"metrics": {"prometheusRule": {
        "enabled": True, "mountFailureRatio": 0.25, "for": "30m", "alertLabels": {"severity": "critical"},
    }}}))
    spec = render((str(values),)).one("PrometheusRule")["spec"]
    mount = spec["groups"][0]["rules"][0]
    assert mount["expr"].rstrip().endswith("> 0.25")
    assert mount["for"] == "30m"
    assert mount["labels"] == {"severity": "critical"}
    assert "More than 25% of the Mounts" in mount["annotations"]["description"]


def test_promtool_checks_the_rules(render, tmp_path):
    tool = promtool()
    for sets in ((), ("metrics.prometheusRule.mountFailureRatio=1", "metrics.prometheusRule.for=1h")):
        rules = tmp_path / "rules.yaml"
        rules.write_text(yaml.safe_dump(rule_spec(render, sets)))
        proc = subprocess.run([tool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SUCCESS: 4 rules found" in proc.stdout


def test_promtool_unit_tests_of_the_alerts(render, tmp_path):
    tool = promtool()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_spec(render)))
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    proc = subprocess.run(
        [tool, "test", "rules", RULES_TEST.name], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


# === Dashboard ===


def test_grafana_dashboard(render):
    r = render(ALL_ON)
    (config_map,) = dashboards(r)
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Secrets"}
    (text,) = config_map["data"].values()
    dashboard = json.loads(text)
    assert dashboard["uid"] == RELEASE
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'instance=~"$instance"' in target["expr"], panel["title"]
    # Every family a panel should show.
    shown = named_metrics(text)
    for family in ("mounts_total", "mount_duration_seconds_bucket", "backend_calls_total",
                   "backend_throttled_total", "credential_cache_requests_total",
                   "credential_refreshes_total", "fetches_coalesced_total", "value_cache_requests_total",
                   "plugin_instantiation_seconds_bucket", "plugin_traps_total", "plugin_timeouts_total",
                   "object_fetches_total", "mounts_in_flight", "build_info"):
        assert "alibabacloud_provider_" + family in shown, family


def test_dashboard_in_the_release_namespace_by_default(render):
    r = render(sets=("metrics.grafanaDashboard.enabled=true",))
    (config_map,) = dashboards(r)
    assert config_map["metadata"]["namespace"] == NAMESPACE


# === The metrics named exist ===


def test_rules_and_dashboard_name_only_metrics_the_provider_exposes(render):
    r = render(ALL_ON)
    exposed = provider_series()
    rule_text = yaml.safe_dump(r.one("PrometheusRule")["spec"])
    (dashboard_text,) = dashboards(r)[0]["data"].values()
    test_text = RULES_TEST.read_text()
    for where, text in (("rules", rule_text), ("dashboard", dashboard_text), ("rule tests", test_text)):
        named = named_metrics(text)
        assert named, where
        unknown = named - exposed
        assert not unknown, f"{where} name metrics the provider does not expose: {sorted(unknown)}"


# === Bad values ===


@pytest.mark.parametrize(
    "sets, message",
    [
        (("metrics.prometheusRule.mountFailureRatio=2",), "mountFailureRatio"),
        (("metrics.prometheusRule.mountFailureRatio=0",), "mountFailureRatio"),
        (("metrics.serviceMonitor.interval=often",), "interval"),
        (("metrics.prometheusRule.for=10 minutes",), "for"),
        (("metrics.grafanaDashboard.namespace=Not_A_Namespace",), "namespace"),
        (("metrics.serviceMonitor.enable=true",), "enable"),
    ],
)
def test_schema_rejects_bad_metrics_values(render_error, sets, message):
    error = render_error(sets=sets)
    assert "metrics" in error and message in error, error
