"""The Grafana dashboard (dashboards/biometric-passkey.json in the chart): valid
JSON that Grafana imports, every query selecting only metrics the runtimes
export, every query parsed by promtool, and the optional ConfigMap that ships
it to Grafana's dashboard sidecar (metrics.grafanaDashboard)."""

from __future__ import annotations

import json

import kubernetes_validate
from conftest import CHART_DIR, KUBE_VERSION, MANAGEMENT_ON, values
from monitoring import (
    exported_metrics,
    exported_series_names,
    metric_names,
    run_promtool,
    write_rule_file,
)

DASHBOARD_FILE = CHART_DIR / "dashboards" / "biometric-passkey.json"
DASHBOARD_ON = {"metrics": {"grafanaDashboard": {"enabled": True}}}

# Grafana's variables, as a PromQL parser must see them.
GRAFANA_RANGES = {"$__rate_interval": "5m", "$__range": "6h", "$__interval": "1m"}


def dashboard() -> dict:
    return json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


def panels(dash: dict) -> list[dict]:
    return [p for p in dash["panels"] if p["type"] != "row"]


def queries(dash: dict) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels(dash) for t in p["targets"]]


def test_dashboard_is_a_grafana_dashboard():
    dash = dashboard()
    assert dash["uid"] == "biometric-passkey"
    assert dash["title"] == "Biometric Passkey"
    assert isinstance(dash["schemaVersion"], int)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(dash):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


def test_panels_do_not_overlap():
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        columns = range(g["x"], g["x"] + g["w"])
        rows = range(g["y"], g["y"] + g["h"])
        cells = {(x, y) for x in columns for y in rows}
        assert not cells & taken, panel["title"]
        taken |= cells


def test_dashboard_covers_what_operators_watch():
    rows = [p["title"] for p in dashboard()["panels"] if p["type"] == "row"]
    assert rows == ["Flows", "HTTP", "IDV provider", "Database", "Audit maintenance"]
    used = set()
    for _, expr in queries(dashboard()):
        used |= metric_names(expr)
    # Every metric the runtimes export shows somewhere (a histogram through
    # its buckets).
    for name, kind in exported_metrics().items():
        shown = f"{name}_bucket" if kind == "histogram" else name
        assert shown in used, name


def test_queries_select_only_exported_metrics_of_the_chosen_namespaces():
    exported = exported_series_names()
    for title, expr in queries(dashboard()):
        names = metric_names(expr)
        assert names, (title, expr)
        assert names <= exported, (title, names - exported)
        # Every selector carries the namespace variable.
        for selector in expr.split("{")[1:]:
            assert selector.startswith('namespace=~"$namespace"'), (title, expr)


def test_promtool_parses_every_query(tmp_path):
    rules = []
    for index, (_, expr) in enumerate(queries(dashboard())):
        for variable, value in GRAFANA_RANGES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = write_rule_file(tmp_path / "dashboard.yaml", [{"name": "dashboard", "rules": rules}])
    assert "SUCCESS" in run_promtool("check", "rules", path)


def test_no_config_map_unless_enabled(render):
    assert not render(values(MANAGEMENT_ON)).all("ConfigMap")
    assert not render(values(DASHBOARD_ON, {"metrics": {"enabled": False}})).all("ConfigMap")


def test_config_map_ships_the_dashboard_to_the_sidecar(render):
    out = render(
        values(
            DASHBOARD_ON,
            {"metrics": {"grafanaDashboard": {"annotations": {"grafana_folder": "Identity"}}}},
        )
    )
    cm = out.one("ConfigMap")
    assert cm["metadata"]["name"] == "biometric-passkey-dashboard"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Identity"}
    assert list(cm["data"]) == ["biometric-passkey.json"]
    assert json.loads(cm["data"]["biometric-passkey.json"]) == dashboard()
    shipped = DASHBOARD_FILE.read_text(encoding="utf-8").strip()
    assert cm["data"]["biometric-passkey.json"] == shipped
    kubernetes_validate.validate(cm, KUBE_VERSION, strict=True)


def test_sidecar_labels_are_values(render):
    def with_labels(labels):
        return values(DASHBOARD_ON, {"metrics": {"grafanaDashboard": {"labels": labels}}})

    out = render(with_labels({"dashboards": "bp"}))
    labels = out.one("ConfigMap")["metadata"]["labels"]
    # Helm merges maps: the default label stays unless set to null.
    assert labels["dashboards"] == "bp"
    out = render(with_labels({"grafana_dashboard": None, "x": "1"}))
    assert "grafana_dashboard" not in out.one("ConfigMap")["metadata"]["labels"]
