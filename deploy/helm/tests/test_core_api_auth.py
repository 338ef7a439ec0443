"""Who may call the Core API: the chart renders only with the integration
API keys' Secret (`secrets.coreApiKeys`) or an explicit `core.apiAuth: none`,
never with neither, and never with both."""

from __future__ import annotations

import pytest
from conftest import MANAGEMENT_ON, MINIMAL, deep_merge, load_example, values

P = "BIOMETRIC_PASSKEY_"
NO_KEYS = {"secrets": {"coreApiKeys": {"name": ""}}}


def without_key_secret(*overlays):
    """MINIMAL without the API keys' Secret, plus overlays."""
    return deep_merge(values(NO_KEYS), *overlays)


@pytest.mark.parametrize("overlay", [{}, MANAGEMENT_ON, {"idv": {"mode": "synthetic"}}])
def test_render_fails_without_keys_or_opt_out(fails, overlay):
    message = fails(without_key_secret(overlay))
    assert "secrets.coreApiKeys.name is required" in message
    assert "core.apiAuth: none" in message


def test_render_fails_without_keys_even_with_api_key_stated(fails):
    message = fails(without_key_secret({"core": {"apiAuth": "api_key"}}))
    assert "secrets.coreApiKeys.name is required" in message


def test_the_guide_values_without_the_added_secret_do_not_render(fails):
    guide = load_example("guide-values.yaml")
    del guide["secrets"]["coreApiKeys"]
    assert "secrets.coreApiKeys.name is required" in fails(guide)


def test_keys_come_from_the_secret(render):
    out = render(values())
    env = out.env("core")
    assert env[f"{P}CORE_API_KEYS"] == {
        "name": f"{P}CORE_API_KEYS",
        "valueFrom": {
            "secretKeyRef": {"name": "fake-secret-core-api", "key": "fake-key-core-api-keys"}
        },
    }
    assert f"{P}CORE_API_AUTH" not in env


def test_the_default_key_name_in_the_secret(render):
    out = render(values({"secrets": {"coreApiKeys": {"name": "my-keys", "key": "core-api-keys"}}}))
    ref = out.env("core")[f"{P}CORE_API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "my-keys", "key": "core-api-keys"}


def test_auth_none_renders_without_keys(render):
    out = render(without_key_secret({"core": {"apiAuth": "none"}}))
    env = out.env("core")
    assert out.env_value("core", f"{P}CORE_API_AUTH") == "none"
    assert f"{P}CORE_API_KEYS" not in env


def test_auth_none_with_a_key_secret_is_refused(fails):
    message = fails(values({"core": {"apiAuth": "none"}}))
    assert "core.apiAuth is none, yet secrets.coreApiKeys.name is set" in message


def test_unknown_auth_mode_is_rejected_by_the_schema(fails):
    assert "/core/apiAuth" in fails(values({"core": {"apiAuth": "off"}}))


def test_other_workloads_get_neither_variable(render):
    for vals in (values(MANAGEMENT_ON), without_key_secret(MANAGEMENT_ON, {"core": {"apiAuth": "none"}})):
        out = render(vals)
        for component in ("management", "migrate"):
            assert not [n for n in out.env(component) if "CORE_API" in n], component


def test_the_keys_cannot_be_redefined_through_extra_env(fails):
    vals = values(
        {"core": {"extraEnv": [{"name": f"{P}CORE_API_KEYS", "value": "x" * 40}]}}
    )
    assert f"core.extraEnv must not redefine {P}CORE_API_KEYS" in fails(vals)


def test_minimal_values_carry_the_key_secret():
    # The other tests' baseline is an install with keys, the chart's default mode.
    assert MINIMAL["secrets"]["coreApiKeys"]["name"]
