"""The migration Job."""

from __future__ import annotations

from conftest import values

HOOK_ANNOTATIONS = {
    "helm.sh/hook": "pre-install,pre-upgrade",
    "helm.sh/hook-delete-policy": "before-hook-creation",
}


def test_job_is_a_pre_install_pre_upgrade_hook(render):
    job = render(values()).one("Job", "migrate")
    annotations = job["metadata"]["annotations"]
    assert {k: annotations[k] for k in HOOK_ANNOTATIONS} == HOOK_ANNOTATIONS
    # hook-weight is a quoted integer; it must sort before any other hook.
    assert int(annotations["helm.sh/hook-weight"]) < 0
    assert set(annotations) == set(HOOK_ANNOTATIONS) | {"helm.sh/hook-weight"}
    assert job["metadata"]["name"] == "biometric-passkey-migrate"


def test_job_pod_spec(render):
    out = render(values({"migrations": {"backoffLimit": 5}}))
    job = out.one("Job", "migrate")
    assert job["spec"]["backoffLimit"] == 5
    spec = out.pod_spec("migrate")
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    # The chart's ServiceAccount does not exist yet when a pre-install hook
    # runs, so by default the Job uses the namespace's default account.
    assert "serviceAccountName" not in spec
    assert out.container("migrate")["image"] == "registry.test/bp-migrate:1.2.3"


def test_job_uses_the_configured_service_account(render):
    out = render(values({"migrations": {"serviceAccountName": "biometric-passkey-migrations"}}))
    assert out.pod_spec("migrate")["serviceAccountName"] == "biometric-passkey-migrations"


def test_job_without_helm_hooks(render):
    out = render(values({"migrations": {"useHelmHooks": False}}), revision=7)
    job = out.one("Job", "migrate")
    assert not any(k.startswith("helm.sh/") for k in job["metadata"].get("annotations", {}))
    # Job templates are immutable: a fresh name per revision lets upgrades
    # replace the previous Job instead of failing to patch it.
    assert job["metadata"]["name"] == "biometric-passkey-migrate-7"


def test_migrations_disabled(render):
    out = render(values({"migrations": {"enabled": False}}))
    assert out.all("Job") == []
    assert "Not managed by this release" in out.notes


def test_migration_job_has_its_own_resources(render):
    out = render(values({"resources": {"migrate": {"requests": {"cpu": "20m"}}}}))
    assert out.container("migrate")["resources"]["requests"]["cpu"] == "20m"
    assert out.container("core")["resources"]["requests"]["cpu"] == "100m"


def test_the_last_job_is_kept_after_success_unless_told_otherwise(render):
    kept = render(values()).one("Job", "migrate")
    assert kept["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation"
    deleted = render(values({"migrations": {"keepLastJob": False}})).one("Job", "migrate")
    assert (
        deleted["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
        == "before-hook-creation,hook-succeeded"
    )
