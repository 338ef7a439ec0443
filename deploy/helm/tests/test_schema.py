"""values.schema.json: strictness, types, enums and patterns.

Values are checked twice: through Helm itself (what `helm install` does
with the chart's schema) and, for the schema document, with jsonschema.
"""

from __future__ import annotations

import json

import helm_python as helm
import jsonschema
import pytest
from conftest import CHART_DIR, MANAGEMENT_ON, values

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))


def schema_error(chart, vals) -> str:
    with pytest.raises(helm.HelmValuesError) as excinfo:
        chart.validate_schema(vals)
    # A render must refuse the same values.
    with pytest.raises(helm.HelmValuesError):
        chart.render(vals, name="biometric-passkey")
    return str(excinfo.value)


def test_schema_is_valid_draft7():
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def _object_nodes(node, path="#"):
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            yield path, node
        for key, value in node.items():
            yield from _object_nodes(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _object_nodes(value, f"{path}/{index}")


def test_every_defined_object_rejects_unknown_keys():
    nodes = list(_object_nodes(SCHEMA))
    assert len(nodes) > 30
    loose = [
        path
        for path, node in nodes
        if node.get("additionalProperties") is not False
        # extraEnv items are Kubernetes EnvVar objects: only `name` is pinned.
        and not path.endswith("/extraEnv/items")
    ]
    assert loose == []


def test_chart_defaults_satisfy_the_schema(chart):
    jsonschema.Draft7Validator(SCHEMA).validate(chart.values)
    chart.validate_schema({})


@pytest.mark.parametrize(
    ("overlay", "where"),
    [
        ({"databse": {"host": "x"}}, "'databse' not allowed"),
        ({"database": {"hots": "x"}}, "'hots' not allowed"),
        ({"images": {"core": {"digets": "x"}}}, "'digets' not allowed"),
        ({"management": {"auth": {"issuerUrl": "https://x"}}}, "'issuerUrl' not allowed"),
        ({"core": {"replica": 2}}, "'replica' not allowed"),
        ({"probes": {"core": {"readiness": {"periodSecond": 3}}}}, "'periodSecond' not allowed"),
        ({"writableTmp": {"size": "1Gi"}}, "'size' not allowed"),
    ],
)
def test_misspelt_keys_are_rejected(chart, overlay, where):
    assert where in schema_error(chart, values(overlay))


@pytest.mark.parametrize(
    ("overlay", "where"),
    [
        ({"core": {"replicas": "two"}}, "/core/replicas"),
        ({"database": {"port": "5432"}}, "/database/port"),
        ({"management": {"enabled": "yes"}}, "/management/enabled"),
        ({"management": {"ui": {"scopes": "openid profile"}}}, "/management/ui/scopes"),
        ({"auditPartition": {"retentionMonths": -1}}, "/auditPartition/retentionMonths"),
        ({"core": {"extraEnv": {"HTTPS_PROXY": "x"}}}, "/core/extraEnv"),
        ({"database": {"port": 70000}}, "/database/port"),
    ],
)
def test_wrong_types_are_rejected(chart, overlay, where):
    assert where in schema_error(chart, values(overlay))


@pytest.mark.parametrize(
    ("overlay", "where"),
    [
        ({"idv": {"mode": "fake"}}, "/idv/mode"),
        ({"idv": {"onfido": {"region": "uk"}}}, "/idv/onfido/region"),
        ({"service": {"type": "ExternalName"}}, "/service/type"),
        ({"logLevel": "verbose"}, "/logLevel"),
        ({"database": {"sslmode": "on"}}, "/database/sslmode"),
        ({"images": {"core": {"pullPolicy": "Sometimes"}}}, "/images/core/pullPolicy"),
    ],
)
def test_enums(chart, overlay, where):
    assert where in schema_error(chart, values(overlay))


@pytest.mark.parametrize(
    ("overlay", "where"),
    [
        ({"database": {"pool": {"connMaxLifetime": "5 minutes"}}}, "/database/pool/connMaxLifetime"),
        ({"database": {"pool": {"connMaxIdleTime": "60"}}}, "/database/pool/connMaxIdleTime"),
        ({"idv": {"onfido": {"webhookMaxAge": "15min"}}}, "/idv/onfido/webhookMaxAge"),
        ({"management": {"auth": {"clockSkew": "30"}}}, "/management/auth/clockSkew"),
        ({"dataEncryption": {"keyId": "has space"}}, "/dataEncryption/keyId"),
        ({"dataEncryption": {"keyId": "k" * 65}}, "/dataEncryption/keyId"),
        ({"dataEncryption": {"keyId": ""}}, "/dataEncryption/keyId"),
        ({"dataEncryption": {"keyId": "key/1"}}, "/dataEncryption/keyId"),
        ({"images": {"core": {"digest": "deadbeef"}}}, "/images/core/digest"),
        ({"management": {"auth": {"jwksUrl": "http://idp.test/jwks"}}}, "/management/auth/jwksUrl"),
        ({"writableTmp": {"sizeLimit": "lots"}}, "/writableTmp/sizeLimit"),
    ],
)
def test_patterns(chart, overlay, where):
    assert where in schema_error(chart, values(overlay))


@pytest.mark.parametrize("duration", ["30s", "5m", "1h30m", "1.5h", "250ms", "10us", "10µs", "2h45m30s"])
def test_go_durations_accepted(chart, duration):
    chart.validate_schema(
        values(
            MANAGEMENT_ON,
            {
                "database": {"pool": {"connMaxLifetime": duration, "connMaxIdleTime": duration}},
                "idv": {"onfido": {"webhookMaxAge": duration}},
                "management": {"auth": {"clockSkew": duration}},
            },
        )
    )


@pytest.mark.parametrize("duration", ["0", "0s"])
def test_a_zero_duration_is_accepted_where_it_means_no_limit(chart, duration):
    chart.validate_schema(
        values(
            MANAGEMENT_ON,
            {
                "database": {"pool": {"connMaxLifetime": duration, "connMaxIdleTime": duration}},
                "management": {"auth": {"clockSkew": duration}},
            },
        )
    )


@pytest.mark.parametrize("duration", ["0", "0s", "0m0s"])
def test_a_zero_webhook_max_age_is_refused(chart, duration):
    assert "webhookMaxAge" in schema_error(chart, values({"idv": {"onfido": {"webhookMaxAge": duration}}}))


def test_an_unbounded_pool_is_refused(chart):
    assert "maxOpenConns" in schema_error(chart, values({"database": {"pool": {"maxOpenConns": 0}}}))


@pytest.mark.parametrize("key_id", ["default", "k1", "prod.2025-01:a_B", "k" * 64])
def test_key_ids_accepted(chart, key_id):
    chart.validate_schema(values({"dataEncryption": {"keyId": key_id}}))


def test_free_form_kubernetes_objects_accept_anything(chart):
    chart.validate_schema(
        values(
            {
                "core": {"affinity": {"nodeAffinity": {"anything": [1, 2]}}},
                "podSecurityContext": {"supplementalGroups": [1000]},
                "resources": {"core": {"limits": {"nvidia.com/gpu": 1}}},
            }
        )
    )
