"""Environment of each workload: exact variable sets, values, secret
handling, least privilege of the management runtime, audit partitions."""

from __future__ import annotations

import re

import pytest
from conftest import MANAGEMENT_ON, MINIMAL, SCENARIOS, values, walk

P = "BIOMETRIC_PASSKEY_"

COMMON = [
    "DB_HOST",
    "DB_PORT",
    "DB_USER",
    "DB_PASSWORD",
    "DB_NAME",
    "DB_SSLMODE",
    f"{P}LOG_LEVEL",
]
RUNTIME = COMMON + [
    "DB_MAX_OPEN_CONNS",
    "DB_MAX_IDLE_CONNS",
    "DB_CONN_MAX_LIFETIME",
    "DB_CONN_MAX_IDLE_TIME",
    "PORT",
    f"{P}METRICS_PORT",
]
AUDIT = [f"{P}AUDIT_PARTITION_MAINTENANCE_ENABLED", f"{P}AUDIT_PARTITION_RETENTION_MONTHS"]
CORE_BASE = RUNTIME + [
    f"{P}DATA_ENCRYPTION_KEY",
    f"{P}DATA_ENCRYPTION_KEY_ID",
    f"{P}IDV_PROVIDER_MODE",
    f"{P}IDV_REGISTRATION_WORKFLOW_ID",
    f"{P}IDV_STEP_UP_WORKFLOW_ID",
    f"{P}IDV_RECOVERY_VERIFY_WORKFLOW_ID",
    f"{P}IDV_ONFIDO_REGION",
    f"{P}IDV_ONFIDO_WEBHOOK_MAX_AGE",
    f"{P}CORE_API_KEYS",
] + AUDIT
ONFIDO_SECRETS = [f"{P}IDV_ONFIDO_API_TOKEN", f"{P}IDV_ONFIDO_WEBHOOK_SECRET"]
MANAGEMENT = RUNTIME + [
    f"{P}MANAGEMENT_AUTH_ISSUER",
    f"{P}MANAGEMENT_AUTH_AUDIENCE",
    f"{P}MANAGEMENT_AUTH_JWKS_URL",
    f"{P}MANAGEMENT_AUTH_SCOPE_CLAIM",
    f"{P}MANAGEMENT_AUTH_SCOPE_PREFIX",
    f"{P}MANAGEMENT_AUTH_CLOCK_SKEW",
    f"{P}MANAGEMENT_UI_CLIENT_ID",
    f"{P}MANAGEMENT_UI_SCOPES",
] + AUDIT
MIGRATE = COMMON

# Env names that carry secret material and must come from a Secret.
SECRET_ENV = {
    "DB_PASSWORD": ("fake-secret-db", "fake-key-db-password"),
    f"{P}DATA_ENCRYPTION_KEY": ("fake-secret-dek", "fake-key-dek"),
    f"{P}IDV_ONFIDO_API_TOKEN": ("fake-secret-onfido", "fake-key-onfido-token"),
    f"{P}IDV_ONFIDO_WEBHOOK_SECRET": ("fake-secret-onfido", "fake-key-onfido-webhook"),
    f"{P}CORE_API_KEYS": ("fake-secret-core-api", "fake-key-core-api-keys"),
}
SECRET_LIKE_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEYS?)$")
# An unpadded base64url 32-byte key is exactly 43 characters of this alphabet.
KEY_LIKE_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def names(out, component):
    return list(out.env(component))


# --- exact sets -----------------------------------------------------------------


def test_core_env_set_onfido(render):
    out = render(values())
    assert sorted(names(out, "core")) == sorted(CORE_BASE + ONFIDO_SECRETS)


def test_core_env_set_with_base_url(render):
    out = render(values({"idv": {"onfido": {"baseUrl": "https://api.ca.onfido.test"}}}))
    assert sorted(names(out, "core")) == sorted(
        CORE_BASE + ONFIDO_SECRETS + [f"{P}IDV_ONFIDO_BASE_URL"]
    )
    assert out.env_value("core", f"{P}IDV_ONFIDO_BASE_URL") == "https://api.ca.onfido.test"


def test_core_env_set_synthetic_has_no_onfido_secrets(render):
    out = render(values({"idv": {"mode": "synthetic"}}))
    assert sorted(names(out, "core")) == sorted(CORE_BASE)
    assert out.env_value("core", f"{P}IDV_PROVIDER_MODE") == "synthetic"


ROTATING = {"secrets": {"onfido": {"webhookPreviousSecretKey": "fake-key-onfido-webhook-previous"}}}


def test_core_env_has_the_previous_webhook_secret_only_while_rotating(render):
    name = f"{P}IDV_ONFIDO_WEBHOOK_PREVIOUS_SECRET"
    assert name not in names(render(values()), "core")
    out = render(values(ROTATING))
    assert sorted(names(out, "core")) == sorted(CORE_BASE + ONFIDO_SECRETS + [name])
    assert out.env("core")[name]["valueFrom"] == {
        "secretKeyRef": {"name": "fake-secret-onfido", "key": "fake-key-onfido-webhook-previous"}
    }
    synthetic = render(values(ROTATING, {"idv": {"mode": "synthetic"}}))
    assert sorted(names(synthetic, "core")) == sorted(CORE_BASE)


def test_the_previous_webhook_secret_must_be_another_key(fails):
    same = {"secrets": {"onfido": {"webhookPreviousSecretKey": "fake-key-onfido-webhook"}}}
    assert "webhookPreviousSecretKey must name another key" in fails(values(same))


def test_core_env_has_earlier_data_keys_only_after_a_rotation(render):
    name = f"{P}DATA_ENCRYPTION_PREVIOUS_KEYS"
    assert name not in names(render(values()), "core")
    rotated = {"secrets": {"dataEncryption": {"previousKeysKey": "earlier-keys"}}}
    out = render(values(rotated))
    assert sorted(names(out, "core")) == sorted(CORE_BASE + ONFIDO_SECRETS + [name])
    assert out.env("core")[name]["valueFrom"]["secretKeyRef"]["key"] == "earlier-keys"
    assert name not in names(out, "migrate")


def test_earlier_data_keys_must_be_another_key(fails):
    same = {"secrets": {"dataEncryption": {"previousKeysKey": "fake-key-dek"}}}
    assert "previousKeysKey must name another key" in fails(values(same))


def test_management_env_set(render):
    out = render(values(MANAGEMENT_ON))
    assert sorted(names(out, "management")) == sorted(MANAGEMENT)


def test_migrate_env_set(render):
    out = render(values())
    assert sorted(names(out, "migrate")) == sorted(MIGRATE)


def test_management_gets_no_encryption_key_and_no_provider_secrets(render):
    out = render(values(MANAGEMENT_ON, {"idv": {"onfido": {"baseUrl": "https://x.test"}}}))
    env = out.env("management")
    assert not [n for n in env if "DATA_ENCRYPTION" in n or "IDV" in n]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in env.values() if "valueFrom" in e}
    assert refs == {"fake-secret-db"}
    assert out.container("management").get("envFrom") is None


def test_env_order_is_chart_first_then_extra(render):
    out = render(SCENARIOS["kitchen-sink"])
    for component, expected in (("core", None), ("management", MANAGEMENT), ("migrate", MIGRATE)):
        env_names = names(out, component)
        assert env_names[-2:] == ["HTTPS_PROXY", "NO_PROXY"]
        if expected is not None:
            assert sorted(env_names[:-2]) == sorted(expected)
        assert out.container(component)["envFrom"] == [{"configMapRef": {"name": "bp-extra-config"}}]


def test_extra_env_only_reaches_its_own_workload(render):
    out = render(values(MANAGEMENT_ON, {"migrations": {"extraEnv": [{"name": "ONLY_MIGRATE", "value": "1"}]}}))
    assert "ONLY_MIGRATE" in out.env("migrate")
    assert "ONLY_MIGRATE" not in out.env("core")
    assert "ONLY_MIGRATE" not in out.env("management")


@pytest.mark.parametrize(
    ("workload", "name", "value"),
    [
        ("management", f"{P}AUDIT_PARTITION_MAINTENANCE_ENABLED", "auditPartition.maintenanceEnabled"),
        ("core", "DB_PASSWORD", "secrets.database.name and secrets.database.passwordKey"),
        ("migrations", "DB_HOST", "database.host"),
        ("core", "PORT", "core.containerPort"),
        ("core", f"{P}IDV_STEP_UP_WORKFLOW_ID", "idv.stepUpWorkflowId"),
        ("management", f"{P}MANAGEMENT_UI_SCOPES", "management.ui.scopes"),
    ],
)
def test_extra_env_cannot_redefine_chart_variables_and_names_the_value(fails, workload, name, value):
    vals = values(MANAGEMENT_ON, {workload: {"extraEnv": [{"name": name, "value": "true"}]}})
    message = fails(vals)
    assert f"{workload}.extraEnv must not redefine {name}" in message
    assert f"the chart sets it from {value}" in message


def test_every_variable_the_chart_sets_names_its_value(render):
    """A refusal never falls back to the generic wording for a chart variable."""
    out = render(values(MANAGEMENT_ON))
    for component in ("core", "management"):
        for name in out.env(component):
            vals = values(MANAGEMENT_ON, {component: {"extraEnv": [{"name": name, "value": "x"}]}})
            with pytest.raises(Exception) as refused:
                render(vals)
            assert "its own values" not in str(refused.value), name


# --- values ---------------------------------------------------------------------


def test_env_values_follow_chart_values(render):
    out = render(
        values(
            MANAGEMENT_ON,
            {
                "database": {
                    "port": 6432,
                    "sslmode": "verify-full",
                    "pool": {
                        "maxOpenConns": 16,
                        "maxIdleConns": 8,
                        "connMaxLifetime": "1h30m",
                        "connMaxIdleTime": "90s",
                    },
                },
                "dataEncryption": {"keyId": "k1.2024:a_b-c"},
                "idv": {
                    "registrationWorkflowId": "a1b2c3d4-0000-4000-8000-00000000000a",
                    "stepUpWorkflowId": "a1b2c3d4-0000-4000-8000-00000000000b",
                    "recoveryVerifyWorkflowId": "a1b2c3d4-0000-4000-8000-00000000000c",
                    "onfido": {"region": "ca", "webhookMaxAge": "5m"},
                },
                "core": {"containerPort": 8080},
                "management": {
                    "containerPort": 8081,
                    "auth": {"scopeClaim": "scp", "scopePrefix": "api://bp/", "clockSkew": "10s"},
                    "ui": {"scopes": ["openid", "management.audit.read"]},
                },
                "auditPartition": {"retentionMonths": 13},
                "logLevel": "debug",
            },
        )
    )
    expect_runtime = {
        "DB_HOST": "pg.test",
        "DB_PORT": "6432",
        "DB_USER": "bp_user",
        "DB_NAME": "bp_db",
        "DB_SSLMODE": "verify-full",
        f"{P}LOG_LEVEL": "debug",
        "DB_MAX_OPEN_CONNS": "16",
        "DB_MAX_IDLE_CONNS": "8",
        "DB_CONN_MAX_LIFETIME": "1h30m",
        "DB_CONN_MAX_IDLE_TIME": "90s",
    }
    for component, port in (("core", "8080"), ("management", "8081")):
        for name, value in {**expect_runtime, "PORT": port}.items():
            assert out.env_value(component, name) == value, (component, name)
        assert out.container(component)["ports"] == [
            {"name": "http", "containerPort": int(port), "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9464, "protocol": "TCP"},
        ]
        assert out.env_value(component, f"{P}METRICS_PORT") == "9464"
    for name in COMMON:
        if name != "DB_PASSWORD":
            assert out.env_value("migrate", name) == expect_runtime[name]
    core = {
        f"{P}DATA_ENCRYPTION_KEY_ID": "k1.2024:a_b-c",
        f"{P}IDV_PROVIDER_MODE": "onfido",
        f"{P}IDV_REGISTRATION_WORKFLOW_ID": "a1b2c3d4-0000-4000-8000-00000000000a",
        f"{P}IDV_STEP_UP_WORKFLOW_ID": "a1b2c3d4-0000-4000-8000-00000000000b",
        f"{P}IDV_RECOVERY_VERIFY_WORKFLOW_ID": "a1b2c3d4-0000-4000-8000-00000000000c",
        f"{P}IDV_ONFIDO_REGION": "ca",
        f"{P}IDV_ONFIDO_WEBHOOK_MAX_AGE": "5m",
        f"{P}AUDIT_PARTITION_MAINTENANCE_ENABLED": "true",
        f"{P}AUDIT_PARTITION_RETENTION_MONTHS": "13",
    }
    for name, value in core.items():
        assert out.env_value("core", name) == value, name
    mgmt = {
        f"{P}MANAGEMENT_AUTH_ISSUER": "https://idp.test/",
        f"{P}MANAGEMENT_AUTH_AUDIENCE": "bp-management-api",
        f"{P}MANAGEMENT_AUTH_JWKS_URL": "https://idp.test/jwks.json",
        f"{P}MANAGEMENT_AUTH_SCOPE_CLAIM": "scp",
        f"{P}MANAGEMENT_AUTH_SCOPE_PREFIX": "api://bp/",
        f"{P}MANAGEMENT_AUTH_CLOCK_SKEW": "10s",
        f"{P}MANAGEMENT_UI_CLIENT_ID": "bp-dashboard",
        f"{P}MANAGEMENT_UI_SCOPES": "openid management.audit.read",
        f"{P}AUDIT_PARTITION_MAINTENANCE_ENABLED": "false",
        f"{P}AUDIT_PARTITION_RETENTION_MONTHS": "13",
    }
    for name, value in mgmt.items():
        assert out.env_value("management", name) == value, name


def test_default_management_scopes(render):
    out = render(values(MANAGEMENT_ON))
    assert out.env_value("management", f"{P}MANAGEMENT_UI_SCOPES") == (
        "openid profile email management.users.read management.users.delete"
    )
    assert out.env_value("management", f"{P}MANAGEMENT_AUTH_SCOPE_CLAIM") == "scope"
    assert out.env_value("management", f"{P}MANAGEMENT_AUTH_CLOCK_SKEW") == "30s"


# --- audit partition maintenance -------------------------------------------------


@pytest.mark.parametrize("enabled", [True, False])
def test_management_never_runs_partition_maintenance(render, enabled):
    out = render(values(MANAGEMENT_ON, {"auditPartition": {"maintenanceEnabled": enabled}}))
    name = f"{P}AUDIT_PARTITION_MAINTENANCE_ENABLED"
    assert out.env_value("management", name) == "false"
    assert out.env_value("core", name) == ("true" if enabled else "false")


# --- secrets ----------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_secret_like_env_only_from_secret_key_ref(render, scenario):
    out = render(SCENARIOS[scenario])
    for doc in out.docs:
        spec = doc.get("spec", {}).get("template", {}).get("spec")
        if not spec:
            continue
        for container in spec["containers"]:
            for entry in container.get("env", []):
                if SECRET_LIKE_NAME.search(entry["name"]):
                    assert "value" not in entry, entry["name"]
                    assert set(entry["valueFrom"]) == {"secretKeyRef"}, entry["name"]
                if "value" in entry:
                    assert isinstance(entry["value"], str)
                    assert not KEY_LIKE_VALUE.match(entry["value"]), entry["name"]


def test_secret_refs_point_at_the_configured_secrets(render):
    out = render(values(MANAGEMENT_ON))
    expected = {
        "core": set(SECRET_ENV),
        "management": {"DB_PASSWORD"},
        "migrate": {"DB_PASSWORD"},
    }
    for component, secret_names in expected.items():
        refs = {
            name: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for name, e in out.env(component).items()
            if "valueFrom" in e
        }
        assert refs == {name: SECRET_ENV[name] for name in secret_names}, component


@pytest.mark.parametrize("scenario", ["minimal", "kitchen-sink", "synthetic-no-hooks"])
def test_secret_names_appear_only_inside_secret_key_refs(render, scenario):
    # MINIMAL's Secret names and keys all start with "fake-": wherever such a
    # string lands in a manifest, it must be under a secretKeyRef.
    assert SCENARIOS[scenario]["secrets"] == MINIMAL["secrets"]
    out = render(SCENARIOS[scenario])
    seen = 0
    for doc in out.docs:
        for path, leaf in walk(doc):
            if isinstance(leaf, str) and "fake-" in leaf:
                assert "secretKeyRef" in path, (doc["kind"], path, leaf)
                seen += 1
    assert seen >= 2  # the walk did see the references


def test_no_config_map_or_secret_objects(render):
    for scenario in SCENARIOS.values():
        kinds = render(scenario).kinds()
        assert "ConfigMap" not in kinds and "Secret" not in kinds


def test_operator_secret_refs_in_extra_env_pass_through(render):
    extra = {"name": "HTTPS_PROXY", "valueFrom": {"secretKeyRef": {"name": "proxy", "key": "url"}}}
    out = render(values({"core": {"extraEnv": [extra]}}))
    assert out.env("core")["HTTPS_PROXY"] == extra


def test_the_database_password_is_optional(render):
    """Passwordless authentication (IAM, a client certificate) needs no Secret."""
    out = render(values(MANAGEMENT_ON, {"secrets": {"database": {"name": ""}}}))
    for component in ("core", "management", "migrate"):
        assert "DB_PASSWORD" not in out.env(component)
    out = render(values(MANAGEMENT_ON))
    for component in ("core", "management", "migrate"):
        assert out.env(component)["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "fake-secret-db"
