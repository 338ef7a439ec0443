"""Prometheus metrics: the named container port, one ClusterIP Service per
runtime for it alone, scrape annotations and the optional ServiceMonitor."""

from __future__ import annotations

import kubernetes_validate
from conftest import KUBE_VERSION, MANAGEMENT_ON, values

P = "BIOMETRIC_PASSKEY_"


def metrics_services(out):
    return {
        s["metadata"]["labels"]["app.kubernetes.io/component"]: s
        for s in out.all("Service")
        if s["spec"]["ports"][0]["name"] == "metrics"
    }


def test_each_runtime_serves_metrics_on_a_named_port_behind_a_service_of_its_own(render):
    out = render(values(MANAGEMENT_ON))
    services = metrics_services(out)
    assert sorted(services) == ["core-metrics", "management-metrics"]
    for component in ("core", "management"):
        assert out.env_value(component, f"{P}METRICS_PORT") == "9464"
        assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in out.container(
            component
        )["ports"]
        svc = services[f"{component}-metrics"]
        assert svc["metadata"]["name"] == f"biometric-passkey-{component}-metrics"
        assert svc["spec"]["type"] == "ClusterIP"
        assert svc["spec"]["ports"] == [
            {"name": "metrics", "port": 9464, "targetPort": "metrics", "protocol": "TCP"}
        ]
        pod_labels = out.workload(component)["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= pod_labels.items()
        assert "annotations" not in svc["metadata"]
        # The API's Service never carries the metrics port.
        api_ports = out.one("Service", component)["spec"]["ports"]
        assert [p["name"] for p in api_ports] == ["http"]
        kubernetes_validate.validate(svc, KUBE_VERSION, strict=True)
    assert not out.all("ServiceMonitor")
    # The migration job serves nothing.
    assert f"{P}METRICS_PORT" not in out.env("migrate")


def test_management_metrics_service_only_with_the_management_runtime(render):
    out = render(values())
    assert sorted(metrics_services(out)) == ["core-metrics"]


def test_metrics_turned_off_serve_nothing(render):
    out = render(values(MANAGEMENT_ON, {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}}))
    assert metrics_services(out) == {}
    assert not out.all("ServiceMonitor")
    for component in ("core", "management"):
        assert out.env_value(component, f"{P}METRICS_PORT") == "0"
        assert [p["name"] for p in out.container(component)["ports"]] == ["http"]


def test_port_and_scrape_annotations(render):
    out = render(
        values(
            MANAGEMENT_ON,
            {
                "metrics": {
                    "port": 9100,
                    "service": {"scrapeAnnotations": True, "annotations": {"a.test/x": "1"}},
                }
            },
        )
    )
    for component, svc in metrics_services(out).items():
        assert svc["metadata"]["annotations"] == {
            "a.test/x": "1",
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "9100",
            "prometheus.io/path": "/metrics",
        }
        assert svc["spec"]["ports"][0]["port"] == 9100
        runtime = component.removesuffix("-metrics")
        assert out.env_value(runtime, f"{P}METRICS_PORT") == "9100"


def test_service_monitor_per_runtime_selects_its_metrics_service(render):
    out = render(
        values(
            MANAGEMENT_ON,
            {"metrics": {"serviceMonitor": {"enabled": True, "interval": "15s",
                                            "labels": {"release": "kube-prometheus"}}}},
        )
    )
    monitors = out.all("ServiceMonitor")
    assert len(monitors) == 2
    services = metrics_services(out)
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
        selector = monitor["spec"]["selector"]["matchLabels"]
        selected = [
            s for s in out.all("Service") if selector.items() <= s["metadata"]["labels"].items()
        ]
        assert len(selected) == 1
        assert selected[0] in services.values()
        assert monitor["metadata"]["name"] == selected[0]["metadata"]["name"]
        assert monitor["spec"]["endpoints"] == [
            {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
        ]


def test_metrics_port_must_differ_from_the_api_port(fails):
    message = fails(values({"metrics": {"port": 3000}}))
    assert "metrics.port (3000) must differ from core.containerPort" in message


def test_long_names_stay_within_kubernetes_limits(render):
    out = render(values(MANAGEMENT_ON, {"fullnameOverride": "p" * 52}))
    for svc in metrics_services(out).values():
        assert len(svc["metadata"]["name"]) <= 63
    names = [s["metadata"]["name"] for s in out.all("Service")]
    assert len(names) == len(set(names))
