"""The PrometheusRule (metrics.prometheusRule): rendered only when asked for,
thresholds, durations, severities and the selector from values, metric names
the runtimes export, and Prometheus's own promtool on exactly the groups the
chart ships: `promtool check rules`, and `promtool test rules` with the unit
tests in promtool/alerts.test.yaml."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import helm_python as helm
import pytest
import yaml
from conftest import CHART_DIR, KUBE_VERSION, MANAGEMENT_ON, NAMESPACE, values
from monitoring import (
    KUBE_STATE_METRICS,
    REPO_ROOT,
    exported_metrics,
    exported_series_names,
    metric_names,
    run_promtool,
    write_rule_file,
)

UNIT_TESTS = Path(__file__).resolve().parent / "promtool" / "alerts.test.yaml"

RULE_ON = {"metrics": {"prometheusRule": {"enabled": True}}}

ALERTS = {
    "BiometricPasskeyCoreApi5xx": "coreApi5xx",
    "BiometricPasskeyManagement5xx": "management5xx",
    "BiometricPasskeyWebhookDeliveryFailures": "webhookDeliveryFailures",
    "BiometricPasskeyMigrationJobFailed": "migrationJobFailed",
    "BiometricPasskeyDatabasePoolSaturated": "databasePoolSaturated",
    "BiometricPasskeyAuditMaintenanceFailing": "auditMaintenanceFailing",
    "BiometricPasskeyProviderCleanupsDead": "providerCleanupsDead",
    "BiometricPasskeyCounterRegressions": "counterRegressions",
    "BiometricPasskeyOriginMismatches": "originMismatches",
}


def rule(out):
    return out.one("PrometheusRule")


def alerts(out) -> dict[str, dict]:
    groups = rule(out)["spec"]["groups"]
    found = {r["alert"]: r for g in groups for r in g["rules"]}
    assert len(found) == sum(len(g["rules"]) for g in groups), "duplicate alert names"
    return found


def alert_overlay(**per_alert) -> dict:
    return {"metrics": {"prometheusRule": {"enabled": True, "alerts": per_alert}}}


# --- rendering ----------------------------------------------------------------


def test_no_rule_unless_enabled(render):
    assert not render(values(MANAGEMENT_ON)).all("PrometheusRule")
    out = render(values(MANAGEMENT_ON, RULE_ON, {"metrics": {"enabled": False}}))
    assert not out.all("PrometheusRule")


def test_one_rule_with_every_alert(render):
    out = render(
        values(
            MANAGEMENT_ON, RULE_ON, {"metrics": {"prometheusRule": {"labels": {"release": "kps"}}}}
        )
    )
    doc = rule(out)
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["metadata"]["name"] == "biometric-passkey"
    assert doc["metadata"]["labels"]["release"] == "kps"
    assert doc["metadata"]["labels"]["app.kubernetes.io/component"] == "monitoring"
    assert [g["name"] for g in doc["spec"]["groups"]] == ["biometric-passkey"]
    found = alerts(out)
    assert sorted(found) == sorted(ALERTS)
    for name, alert in found.items():
        assert set(alert) == {"alert", "expr", "for", "labels", "annotations"}, name
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        assert set(alert["annotations"]) == {"summary", "description"}, name
        assert "Check first" in alert["annotations"]["description"], name
        assert "\n" not in alert["annotations"]["description"], name


def test_defaults(render):
    found = alerts(render(values(MANAGEMENT_ON, RULE_ON)))
    expected = {
        "BiometricPasskeyCoreApi5xx": ("5m", "critical", "> 0.05"),
        "BiometricPasskeyManagement5xx": ("5m", "warning", "> 0.05"),
        "BiometricPasskeyWebhookDeliveryFailures": ("0m", "warning", "> 0"),
        "BiometricPasskeyMigrationJobFailed": ("5m", "critical", "> 0"),
        "BiometricPasskeyDatabasePoolSaturated": ("5m", "warning", "> 0.1"),
        "BiometricPasskeyProviderCleanupsDead": ("0m", "warning", "> 0"),
        "BiometricPasskeyAuditMaintenanceFailing": ("5m", "warning", "> 1800"),
        "BiometricPasskeyCounterRegressions": ("0m", "warning", "> 0"),
        "BiometricPasskeyOriginMismatches": ("0m", "warning", "> 0"),
    }
    for name, (duration, severity, comparison) in expected.items():
        alert = found[name]
        assert alert["for"] == duration, name
        assert alert["labels"] == {"severity": severity}, name
        assert comparison in alert["expr"], name


def test_thresholds_durations_and_severities_come_from_values(render):
    out = render(
        values(
            MANAGEMENT_ON,
            alert_overlay(
                coreApi5xx={"ratio": 0.2, "for": "10m", "severity": "page"},
                management5xx={"ratio": 0.125},
                webhookDeliveryFailures={"threshold": 25, "for": "15m"},
                migrationJobFailed={"for": "1m", "severity": "warning"},
                databasePoolSaturated={"acquireSeconds": 0.5},
                providerCleanupsDead={"threshold": 2, "for": "30m"},
                auditMaintenanceFailing={"maxSecondsSinceSuccess": 7200},
                counterRegressions={"threshold": 3, "severity": "critical"},
                originMismatches={"threshold": 50, "for": "10m"},
            ),
            {"metrics": {"prometheusRule": {"alertLabels": {"team": "identity", "severity": "x"}}}},
        )
    )
    found = alerts(out)

    def described(name: str) -> str:
        return found[name]["annotations"]["description"]

    assert found["BiometricPasskeyCoreApi5xx"]["for"] == "10m"
    assert found["BiometricPasskeyCoreApi5xx"]["expr"].endswith("> 0.2")
    assert "More than 20% of the Core API's" in described("BiometricPasskeyCoreApi5xx")
    assert found["BiometricPasskeyManagement5xx"]["expr"].endswith("> 0.125")
    assert "More than 12.5% " in described("BiometricPasskeyManagement5xx")
    assert found["BiometricPasskeyWebhookDeliveryFailures"]["expr"].endswith("> 25")
    assert found["BiometricPasskeyWebhookDeliveryFailures"]["for"] == "15m"
    assert "More than 25 of" in described("BiometricPasskeyWebhookDeliveryFailures")
    assert found["BiometricPasskeyMigrationJobFailed"]["for"] == "1m"
    assert found["BiometricPasskeyDatabasePoolSaturated"]["expr"].endswith("> 0.5")
    assert "longer than 0.5 s" in described("BiometricPasskeyDatabasePoolSaturated")
    assert found["BiometricPasskeyProviderCleanupsDead"]["expr"].endswith("> 2")
    assert found["BiometricPasskeyProviderCleanupsDead"]["for"] == "30m"
    assert "More than 2 provider" in described("BiometricPasskeyProviderCleanupsDead")
    assert "> 7200\n" in found["BiometricPasskeyAuditMaintenanceFailing"]["expr"]
    assert found["BiometricPasskeyCounterRegressions"]["expr"].endswith("> 3")
    assert found["BiometricPasskeyOriginMismatches"]["expr"].endswith("> 50")
    assert found["BiometricPasskeyOriginMismatches"]["for"] == "10m"
    # alertLabels reach every alert; an alert's own severity wins.
    assert found["BiometricPasskeyCoreApi5xx"]["labels"] == {"severity": "page", "team": "identity"}
    assert found["BiometricPasskeyMigrationJobFailed"]["labels"] == {
        "severity": "warning",
        "team": "identity",
    }
    assert found["BiometricPasskeyCounterRegressions"]["labels"]["severity"] == "critical"


def test_rules_keep_to_the_prometheus_rule_resource(render):
    # What the PrometheusRule CRD requires beyond a rule file: `for` and every
    # label and annotation are strings, even "0" and numbers-looking labels.
    out = render(
        values(
            MANAGEMENT_ON,
            alert_overlay(coreApi5xx={"for": "0"}),
            {"metrics": {"prometheusRule": {"alertLabels": {"tier": "1"}}}},
        )
    )
    for name, alert in alerts(out).items():
        assert isinstance(alert["for"], str), name
        assert re.fullmatch(r"0|([0-9]+(y|w|d|h|m|s|ms))+", alert["for"]), name
        for value in [*alert["labels"].values(), *alert["annotations"].values()]:
            assert isinstance(value, str), name
    assert alerts(out)["BiometricPasskeyCoreApi5xx"]["for"] == "0"
    assert alerts(out)["BiometricPasskeyCoreApi5xx"]["labels"]["tier"] == "1"


@pytest.mark.parametrize("key", sorted(ALERTS.values()))
def test_each_alert_can_be_turned_off(render, key):
    out = render(values(MANAGEMENT_ON, alert_overlay(**{key: {"enabled": False}})))
    remaining = {name for name, k in ALERTS.items() if k != key}
    assert set(alerts(out)) == remaining


def test_runtime_and_job_alerts_follow_what_the_release_runs(render):
    found = alerts(render(values(RULE_ON)))
    assert "BiometricPasskeyManagement5xx" not in found
    assert "BiometricPasskeyCoreApi5xx" in found
    found = alerts(render(values(MANAGEMENT_ON, RULE_ON, {"migrations": {"enabled": False}})))
    assert "BiometricPasskeyMigrationJobFailed" not in found
    assert "BiometricPasskeyManagement5xx" in found


def test_selector_defaults_to_the_release_namespace(render):
    found = alerts(render(values(MANAGEMENT_ON, RULE_ON), namespace="payments"))
    for name, alert in found.items():
        if name == "BiometricPasskeyMigrationJobFailed":
            continue
        selectors = [s for s in alert["expr"].split("{")[1:]]
        assert selectors, name
        for selector in selectors:
            assert selector.startswith('namespace="payments"'), (name, selector)


def test_selector_is_a_template_and_can_be_widened(render):
    custom = values(
        MANAGEMENT_ON,
        RULE_ON,
        {"metrics": {"prometheusRule": {"selector": 'job=~"{{ .Release.Name }}-.*"'}}},
    )
    found = alerts(render(custom, name="prod"))
    expr = found["BiometricPasskeyCoreApi5xx"]["expr"]
    assert '{job=~"prod-.*",runtime="core",status="5xx"}' in expr
    found = alerts(render(VALUE_SETS["no-selector"]))
    assert '{runtime="core",status="5xx"}' in found["BiometricPasskeyCoreApi5xx"]["expr"]
    expr = found["BiometricPasskeyDatabasePoolSaturated"]["expr"]
    assert "biometric_passkey_db_pool_acquire_duration_seconds_bucket{}" in expr


def test_migration_alert_selects_this_release_s_job_in_either_form(render):
    expr = alerts(render(values(RULE_ON), name="prod.eu", namespace="bp"))[
        "BiometricPasskeyMigrationJobFailed"
    ]["expr"]
    job = 'job_name=~"prod\\\\.eu-biometric-passkey-migrate(-[0-9]+)?"'
    assert f'kube_job_status_failed{{namespace="bp",{job}}}' in expr
    assert f'kube_job_status_succeeded{{namespace="bp",{job}}}' in expr


def test_metric_names_are_the_runtimes_or_kube_state_metrics(render):
    exported = exported_series_names()
    found = alerts(render(values(MANAGEMENT_ON, RULE_ON)))
    used = set()
    for name, alert in found.items():
        names = metric_names(alert["expr"])
        assert names, name
        assert names <= exported | KUBE_STATE_METRICS, (name, names - exported)
        used |= names
    assert used & KUBE_STATE_METRICS == KUBE_STATE_METRICS


def test_metric_name_extraction():
    expr = (
        'sum by (namespace, le) (rate(a_total{x="b_total",y=~"$v"}[5m] offset 1h)) / '
        "ignoring (state) c_seconds{} > 1e+06 unless on (job) time() - d_count"
    )
    assert metric_names(expr) == {"a_total", "c_seconds", "d_count"}


# --- promtool -----------------------------------------------------------------


VALUE_SETS = {
    "defaults": values(MANAGEMENT_ON, RULE_ON),
    "core-only": values(RULE_ON),
    "no-selector": values(
        MANAGEMENT_ON, RULE_ON, {"metrics": {"prometheusRule": {"selector": ""}}}
    ),
    "tuned": values(
        MANAGEMENT_ON,
        alert_overlay(
            coreApi5xx={"ratio": 0.001, "for": "1h30m"},
            databasePoolSaturated={"acquireSeconds": 0.025, "for": "0"},
            auditMaintenanceFailing={"maxSecondsSinceSuccess": 86400},
            counterRegressions={"threshold": 1000000},
        ),
        {"metrics": {"prometheusRule": {"alertLabels": {"team": "identity"}}}},
    ),
}


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_promtool_checks_the_rules_the_chart_ships(render, tmp_path, name):
    out = render(VALUE_SETS[name], name="prod.eu")
    path = write_rule_file(tmp_path / "rules.yaml", rule(out)["spec"]["groups"])
    output = run_promtool("check", "rules", path)
    assert "SUCCESS" in output


def unit_tests_for(groups) -> dict:
    """alerts.test.yaml with each expected alert's description filled in from
    the rendered rule (descriptions are plain text, summaries are templates)."""
    descriptions = {r["alert"]: r["annotations"]["description"] for g in groups for r in g["rules"]}
    suite = yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))
    suite = copy.deepcopy(suite)
    for test in suite["tests"]:
        for case in test.get("alert_rule_test", []):
            for expected in case.get("exp_alerts", []):
                expected["exp_annotations"]["description"] = descriptions[case["alertname"]]
    return suite


def test_promtool_unit_tests_fire_each_alert_and_stay_quiet_below_it(render, tmp_path):
    out = render(values(MANAGEMENT_ON, RULE_ON))
    groups = rule(out)["spec"]["groups"]
    write_rule_file(tmp_path / "rules.yaml", groups)
    suite = tmp_path / "alerts.test.yaml"
    suite.write_text(yaml.safe_dump(unit_tests_for(groups), sort_keys=False), encoding="utf-8")
    output = run_promtool("test", "rules", suite.name, cwd=tmp_path)
    assert "SUCCESS" in output


def test_unit_tests_cover_every_alert_firing_and_quiet():
    suite = yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))
    assert suite["rule_files"] == ["rules.yaml"]
    fired, quiet = set(), set()
    for test in suite["tests"]:
        for case in test["alert_rule_test"]:
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert fired == set(ALERTS)
    assert quiet == set(ALERTS)


def test_unit_tests_use_the_release_namespace():
    # The unit tests run against a render in conftest.NAMESPACE.
    assert NAMESPACE == "biometric-passkey"
    assert 'namespace="biometric-passkey"' in UNIT_TESTS.read_text(encoding="utf-8")


# --- values ---------------------------------------------------------------------


def test_lint_is_clean_with_alerts_and_dashboard():
    everything = values(
        MANAGEMENT_ON,
        RULE_ON,
        {"metrics": {"serviceMonitor": {"enabled": True}, "grafanaDashboard": {"enabled": True}}},
    )
    report = helm.lint(CHART_DIR, everything, strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize(
    ("overlay", "where"),
    [
        (alert_overlay(coreApi5xx={"ratio": 5}), "ratio"),
        (alert_overlay(coreApi5xx={"ratio": 0}), "ratio"),
        (alert_overlay(coreApi5xx={"for": "5 minutes"}), "for"),
        (alert_overlay(coreApi5xx={"for": "30s5m"}), "for"),
        (alert_overlay(webhookDeliveryFailures={"threshold": -1}), "threshold"),
        (
            alert_overlay(auditMaintenanceFailing={"maxSecondsSinceSuccess": 30}),
            "maxSecondsSinceSuccess",
        ),
        (alert_overlay(originMismatch={"enabled": False}), "originMismatch"),
        (alert_overlay(counterRegressions={"severity": ""}), "severity"),
        ({"metrics": {"prometheusRule": {"rules": []}}}, "rules"),
        ({"metrics": {"grafanaDashboard": {"folder": "x"}}}, "folder"),
    ],
)
def test_schema_refuses_malformed_alert_values(chart, overlay, where):
    with pytest.raises(helm.HelmValuesError) as excinfo:
        chart.validate_schema(values(overlay))
    assert where in str(excinfo.value)


# --- documentation ----------------------------------------------------------------

OPERATIONS = REPO_ROOT / "docs" / "operations.md"
CHART_README = REPO_ROOT / "deploy" / "helm" / "README.md"


def test_operations_guide_documents_every_alert_and_its_values():
    guide = OPERATIONS.read_text(encoding="utf-8")
    readme = CHART_README.read_text(encoding="utf-8")
    for name, key in ALERTS.items():
        assert f"`{name}` (`{key}`)" in guide, name
        assert key in readme, key
    assert "kube_job_status_failed" in guide


def test_operations_guide_lists_exactly_the_exported_metrics():
    guide = OPERATIONS.read_text(encoding="utf-8")
    listed = dict(re.findall(r"^\| `([a-z_:]+)` \| (counter|gauge|histogram) \|", guide, re.M))
    assert listed == exported_metrics()
