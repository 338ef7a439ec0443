"""Lint, rendering of the default / guide / management values, required
values, image references, and what the chart must never create."""

from __future__ import annotations

import helm_python as helm
import pytest
from conftest import (
    CHART_DIR,
    DIGEST,
    KUBE_VERSION,
    MANAGEMENT_ON,
    SCENARIOS,
    load_example,
    values,
)

ALLOWED_KINDS = {"Deployment", "Service", "ServiceAccount", "Job"}


# --- lint -------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["minimal", "guide", "management", "kitchen-sink"])
def test_lint_is_clean(scenario):
    report = helm.lint(
        CHART_DIR, SCENARIOS[scenario], strict=True, kube_version=f"v{KUBE_VERSION}"
    )
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


# Helm runs templates in "lint mode" during lint, where `fail` and
# `required` only log, so missing required values are tested through render
# below; schema violations do surface as lint errors.


def test_lint_reports_schema_violations():
    report = helm.lint(
        CHART_DIR, values({"logLevel": "verbose"}), kube_version=f"v{KUBE_VERSION}"
    )
    assert any("/logLevel" in e for e in report["errors"]), report


# --- default values ---------------------------------------------------------


def test_defaults_alone_stop_at_the_first_required_value(fails):
    # The chart ships no usable database or Secret names: a bare install
    # must stop with a message that tells the operator what to set.
    assert "database.host is required" in fails({})


def test_defaults_plus_minimal_values_render(render):
    out = render(values())
    assert out.kinds() == ["Deployment", "Job", "Service", "Service", "ServiceAccount"]
    core = out.workload("core")
    assert core["metadata"]["name"] == "biometric-passkey-core"
    assert core["spec"]["replicas"] == 1
    assert out.one("Service", "core")["metadata"]["name"] == "biometric-passkey-core"
    assert out.one("ServiceAccount")["metadata"]["name"] == "biometric-passkey"
    assert out.env_value("core", "DB_SSLMODE") == "require"
    assert out.env_value("core", "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID") == "default"
    assert out.env_value("core", "BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE") == "onfido"
    assert out.env_value("core", "BIOMETRIC_PASSKEY_LOG_LEVEL") == "info"
    # management runtime is opt-in
    assert not [d for d in out.docs if "management" in d["metadata"]["name"]]


def test_chart_metadata(chart):
    assert chart.metadata["name"] == "biometric-passkey"
    assert chart.metadata["version"] == "0.1.0"
    assert chart.metadata["appVersion"] == "0.1.0"


def test_chart_default_values_match_the_contract(chart):
    v = chart.values
    assert v["database"]["port"] == 5432
    assert v["database"]["sslmode"] == "require"
    assert v["database"]["pool"] == {
        "maxOpenConns": 4,
        "maxIdleConns": 4,
        "connMaxLifetime": "5m",
        "connMaxIdleTime": "1m",
    }
    assert v["dataEncryption"]["keyId"] == "default"
    assert v["idv"]["mode"] == "onfido"
    assert v["idv"]["registrationWorkflowId"] == ""
    assert v["idv"]["stepUpWorkflowId"] == ""
    assert v["idv"]["recoveryVerifyWorkflowId"] == ""
    assert v["idv"]["onfido"] == {"region": "eu", "baseUrl": "", "webhookMaxAge": "15m"}
    assert v["management"]["enabled"] is False
    assert v["management"]["auth"]["scopeClaim"] == "scope"
    assert v["management"]["auth"]["scopePrefix"] == ""
    assert v["management"]["auth"]["clockSkew"] == "30s"
    assert v["management"]["ui"]["scopes"] == [
        "openid",
        "profile",
        "email",
        "management.users.read",
        "management.users.delete",
    ]
    assert v["migrations"]["enabled"] is True
    assert v["migrations"]["useHelmHooks"] is True
    assert v["migrations"]["serviceAccountName"] == ""
    assert v["core"]["containerPort"] == 3000
    assert v["management"]["containerPort"] == 3000
    assert v["service"] == {
        "type": "ClusterIP",
        "core": {"port": 80, "annotations": {}},
        "management": {"port": 80, "annotations": {}},
    }
    assert v["serviceAccount"]["create"] is True
    assert v["serviceAccount"]["automountServiceAccountToken"] is False
    assert v["writableTmp"] == {"enabled": True, "sizeLimit": "64Mi"}
    assert v["auditPartition"] == {"maintenanceEnabled": True, "retentionMonths": 0}
    assert v["logLevel"] == "info"
    assert v["metrics"] == {
        "enabled": True,
        "port": 9464,
        "service": {"scrapeAnnotations": False, "annotations": {}},
        "serviceMonitor": {
            "enabled": False,
            "interval": "30s",
            "scrapeTimeout": "10s",
            "labels": {},
        },
        "prometheusRule": v["metrics"]["prometheusRule"],
        "grafanaDashboard": {
            "enabled": False,
            "labels": {"grafana_dashboard": "1"},
            "annotations": {},
        },
    }
    # Alerts and dashboard are opt-in (their values: test_alerts.py).
    assert v["metrics"]["prometheusRule"]["enabled"] is False
    assert v["metrics"]["prometheusRule"]["selector"] == 'namespace="{{ .Release.Namespace }}"'
    for workload in ("core", "management"):
        assert v["probes"][workload]["readiness"] == {
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        }
    assert v["podSecurityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert v["containerSecurityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


# --- required values ----------------------------------------------------------


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        ({"database": {"host": ""}}, "database.host is required"),
        ({"database": {"name": ""}}, "database.name is required"),
        ({"database": {"user": ""}}, "database.user is required"),
        ({"secrets": {"dataEncryption": {"name": ""}}}, "secrets.dataEncryption.name is required"),
        (
            {"secrets": {"onfido": {"name": ""}}},
            "secrets.onfido.name is required when idv.mode=onfido",
        ),
        ({"idv": {"stepUpWorkflowId": ""}}, "idv.stepUpWorkflowId is required"),
        (
            {"database": {"pool": {"maxOpenConns": 4, "maxIdleConns": 8}}},
            "database.pool.maxIdleConns (8) must not exceed database.pool.maxOpenConns (4)",
        ),
    ],
)
def test_missing_or_inconsistent_value_fails_with_its_message(fails, overlay, message):
    assert message in fails(values(overlay))


@pytest.mark.parametrize(
    "workflow_id",
    ["biometric-passkey-step-up", "0c6b0e4a11114b5b9a1e000000000002", "{0c6b0e4a-1111-4b5b-9a1e-000000000002}"],
)
def test_onfido_mode_refuses_a_workflow_id_that_is_not_a_uuid(fails, workflow_id):
    message = fails(values({"idv": {"stepUpWorkflowId": workflow_id}}))
    assert "idv.stepUpWorkflowId must be your workflow's UUID" in message


def test_without_workflow_ids_the_chart_does_not_render(fails):
    vals = values()
    del vals["idv"]
    assert "idv.registrationWorkflowId is required" in fails(vals)


def test_synthetic_mode_takes_any_workflow_id(render):
    out = render(values({"idv": {"mode": "synthetic", "stepUpWorkflowId": "step-up"}}))
    assert out.env_value("core", "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID") == "step-up"


def test_onfido_secret_not_needed_in_synthetic_mode(render):
    out = render(values({"idv": {"mode": "synthetic"}, "secrets": {"onfido": {"name": ""}}}))
    assert out.env_value("core", "BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE") == "synthetic"




@pytest.mark.parametrize("key", ["issuer", "audience", "jwksUrl"])
def test_management_enabled_without_auth_value_fails(fails, key):
    vals = values(MANAGEMENT_ON, {"management": {"auth": {key: ""}}})
    assert f"management.auth.{key} is required when management.enabled=true" in fails(vals)


def test_management_enabled_without_client_id_fails(fails):
    vals = values(MANAGEMENT_ON, {"management": {"ui": {"clientId": ""}}})
    assert "management.ui.clientId is required when management.enabled=true" in fails(vals)


def test_management_disabled_needs_no_auth_values(render):
    out = render(values({"management": {"enabled": False, "auth": {"issuer": ""}}}))
    assert "Deployment" in out.kinds()


# --- images -------------------------------------------------------------------


def test_digest_beats_tag(render):
    out = render(
        values(
            MANAGEMENT_ON,
            {
                "images": {
                    "core": {"tag": "9.9.9", "digest": DIGEST},
                    "management": {"tag": "9.9.9", "digest": DIGEST},
                    "migrate": {"tag": "9.9.9", "digest": DIGEST},
                }
            },
        )
    )
    assert out.container("core")["image"] == f"registry.test/bp-core@{DIGEST}"
    assert out.container("management")["image"] == f"registry.test/bp-management@{DIGEST}"
    assert out.container("migrate")["image"] == f"registry.test/bp-migrate@{DIGEST}"


def test_tag_used_without_digest(render):
    out = render(values({"images": {"core": {"tag": "2.0.1", "pullPolicy": "Always"}}}))
    assert out.container("core")["image"] == "registry.test/bp-core:2.0.1"
    assert out.container("core")["imagePullPolicy"] == "Always"
    assert out.container("migrate")["imagePullPolicy"] == "IfNotPresent"


@pytest.mark.parametrize("component", ["core", "migrate"])
def test_image_without_tag_or_digest_fails(fails, component):
    msg = fails(values({"images": {component: {"tag": "", "digest": ""}}}))
    assert f"images.{component}: set images.{component}.tag" in msg


def test_management_image_required_only_when_enabled(render, fails):
    no_mgmt_image = {"images": {"management": {"tag": ""}}}
    render(values(no_mgmt_image))
    assert "images.management: set images.management.tag" in fails(
        values(MANAGEMENT_ON, no_mgmt_image)
    )


def test_migrate_image_not_required_without_migrations(render):
    out = render(values({"migrations": {"enabled": False}, "images": {"migrate": {"tag": ""}}}))
    assert out.all("Job") == []


def test_image_pull_secrets_on_every_pod(render):
    out = render(values(MANAGEMENT_ON, {"imagePullSecrets": [{"name": "registry-credentials"}]}))
    for component in ("core", "management", "migrate"):
        assert out.pod_spec(component)["imagePullSecrets"] == [{"name": "registry-credentials"}]


# --- example values files -----------------------------------------------------


def test_guide_values_render(render):
    out = render(load_example("guide-values.yaml"))
    assert out.kinds() == ["Deployment", "Job", "Service", "Service", "ServiceAccount"]
    core = out.workload("core")
    assert core["spec"]["replicas"] == 2
    assert out.container("core")["image"] == "registry.example.com/biometric-passkey-core:X.Y.Z"
    assert out.container("migrate")["image"] == (
        "registry.example.com/biometric-passkey-migrate:X.Y.Z"
    )
    assert out.container("core")["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    assert out.env_value("core", "DB_HOST") == "postgres.example.com"
    assert out.env_value("core", "DB_NAME") == "biometric_passkey"
    assert out.env_value("core", "DB_USER") == "biometric_passkey"
    assert out.env_value("core", "DB_PORT") == "5432"
    assert out.env("core")["DB_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "biometric-passkey-database", "key": "password"}
    }
    assert out.env("core")["BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "biometric-passkey-secrets", "key": "data-encryption-key"}
    }
    assert out.env("core")["BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "biometric-passkey-onfido", "key": "api-token"}
    }
    assert out.env("core")["BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET"]["valueFrom"] == {
        "secretKeyRef": {"name": "biometric-passkey-onfido", "key": "webhook-secret"}
    }
    # The guide's port-forward targets svc/biometric-passkey-core on port 80.
    svc = out.one("Service", "core")
    assert svc["metadata"]["name"] == "biometric-passkey-core"
    assert svc["spec"]["ports"][0]["port"] == 80
    assert "/api/public/v1/providers/onfido/webhooks" in out.notes


def test_management_values_render(render):
    out = render(load_example("management-values.yaml"))
    assert out.kinds() == [
        "Deployment", "Deployment", "Job", "Service", "Service", "Service", "Service",
        "ServiceAccount",
    ]
    mgmt = out.workload("management")
    assert mgmt["metadata"]["name"] == "biometric-passkey-management"
    assert mgmt["spec"]["replicas"] == 1
    assert out.one("Service", "management")["metadata"]["name"] == "biometric-passkey-management"
    assert out.env_value("management", "BIOMETRIC_PASSKEY_MANAGEMENT_UI_SCOPES") == (
        "openid profile email management.users.read management.users.delete "
        "management.credentials.read management.credentials.suspend "
        "management.credentials.activate management.credentials.revoke "
        "management.flows.read management.audit.read"
    )
    assert out.env_value("management", "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER") == (
        "https://issuer.example.com/"
    )
    assert out.env_value("management", "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL") == (
        "https://issuer.example.com/.well-known/jwks.json"
    )
    assert out.env_value("management", "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_AUDIENCE") == (
        "biometric-passkey-management-api"
    )
    assert out.env_value("management", "BIOMETRIC_PASSKEY_MANAGEMENT_UI_CLIENT_ID") == (
        "biometric-passkey-management-ui"
    )
    assert out.env_value("management", "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_SCOPE_PREFIX") == ""


def test_management_example_extends_the_guide_example():
    guide = load_example("guide-values.yaml")
    mgmt = load_example("management-values.yaml")
    assert {k: v for k, v in mgmt.items() if k != "management"} == guide
    assert mgmt["management"]["enabled"] is True


# --- objects the chart must not create ---------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_only_workloads_services_and_service_account(render, scenario):
    out = render(SCENARIOS[scenario])
    assert set(out.kinds()) <= ALLOWED_KINDS
    for forbidden in ("Ingress", "Secret", "ConfigMap", "StatefulSet", "HTTPRoute", "Gateway"):
        assert forbidden not in out.kinds()
    for doc in out.docs:
        assert "postgres" not in doc["metadata"]["name"]
        for container in _containers(doc):
            assert "postgres" not in container["image"]


def _containers(doc):
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


def test_names_follow_overrides(render):
    out = render(values(MANAGEMENT_ON, {"fullnameOverride": "passkeys"}))
    names = sorted(d["metadata"]["name"] for d in out.docs)
    assert names == [
        "passkeys",
        "passkeys-core",
        "passkeys-core",
        "passkeys-core-metrics",
        "passkeys-management",
        "passkeys-management",
        "passkeys-management-metrics",
        "passkeys-migrate",
    ]
    out = render(values(), name="prod")
    assert out.workload("core")["metadata"]["name"] == "prod-biometric-passkey-core"


def test_replicas_are_configurable(render):
    out = render(values(MANAGEMENT_ON, {"core": {"replicas": 3}, "management": {"replicas": 2}}))
    assert out.workload("core")["spec"]["replicas"] == 3
    assert out.workload("management")["spec"]["replicas"] == 2


def test_services_select_only_their_own_pods(render):
    out = render(values(MANAGEMENT_ON, {"service": {"management": {"port": 8443}}}))
    for component in ("core", "management"):
        svc = out.one("Service", component)
        pod_labels = out.workload(component)["spec"]["template"]["metadata"]["labels"]
        selector = svc["spec"]["selector"]
        assert selector.items() <= pod_labels.items()
        assert svc["spec"]["type"] == "ClusterIP"
        assert svc["spec"]["ports"] == [
            {"name": "http", "port": 80 if component == "core" else 8443, "targetPort": "http",
             "protocol": "TCP"}
        ]
        other = "management" if component == "core" else "core"
        other_labels = out.workload(other)["spec"]["template"]["metadata"]["labels"]
        assert not selector.items() <= other_labels.items()
        assert out.workload(component)["spec"]["selector"]["matchLabels"] == selector


def test_pod_labels_cannot_override_selector_labels(render):
    out = render(
        values({"core": {"podLabels": {"app.kubernetes.io/component": "evil", "team": "id"}}})
    )
    labels = out.workload("core")["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "core"
    assert labels["team"] == "id"


def test_service_annotations_and_type(render):
    out = render(
        values(
            MANAGEMENT_ON,
            {
                "service": {
                    "type": "NodePort",
                    "core": {"annotations": {"a.test/x": "1"}},
                    "management": {"annotations": {"a.test/y": "2"}},
                }
            },
        )
    )
    assert out.one("Service", "core")["metadata"]["annotations"] == {"a.test/x": "1"}
    assert out.one("Service", "management")["metadata"]["annotations"] == {"a.test/y": "2"}
    api = [s for s in out.all("Service") if s["spec"]["ports"][0]["name"] == "http"]
    assert {s["spec"]["type"] for s in api} == {"NodePort"}
    # The metrics Services stay inside the cluster whatever the API's type.
    metrics = [s for s in out.all("Service") if s["spec"]["ports"][0]["name"] == "metrics"]
    assert len(metrics) == 2
    assert {s["spec"]["type"] for s in metrics} == {"ClusterIP"}


def test_scheduling_keys_reach_each_pod(render):
    out = render(SCENARIOS["kitchen-sink"])
    for component, key in (("core", "core"), ("management", "management"), ("migrate", "migrations")):
        spec = out.pod_spec(component)
        expected = SCENARIOS["kitchen-sink"][key]
        for field in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints"):
            assert spec[field] == expected[field], (component, field)
        meta = out.workload(component)["spec"]["template"]["metadata"]
        assert meta["annotations"] == {"example.test/scrape": "true"}
        assert meta["labels"]["team"] == "identity"


def test_scheduling_keys_absent_by_default(render):
    out = render(values(MANAGEMENT_ON))
    for component in ("core", "management", "migrate"):
        spec = out.pod_spec(component)
        for field in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints"):
            assert field not in spec


def test_notes_render(render):
    out = render(values(MANAGEMENT_ON, {"idv": {"mode": "synthetic"}}))
    assert "svc/biometric-passkey-core" in out.notes
    assert "svc/biometric-passkey-management" in out.notes
    assert "synthetic" in out.notes
