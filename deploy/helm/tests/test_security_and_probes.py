"""Pod hardening, /tmp, probes and the ServiceAccount."""

from __future__ import annotations

import pytest
from conftest import MANAGEMENT_ON, SCENARIOS, values

COMPONENTS = ("core", "management", "migrate")


@pytest.fixture
def out(render):
    return render(values(MANAGEMENT_ON))


@pytest.mark.parametrize("component", COMPONENTS)
def test_pod_security_context(out, component):
    psc = out.pod_spec(component)["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == 65532
    assert psc["runAsGroup"] == 65532
    assert psc["fsGroup"] == 65532
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("component", COMPONENTS)
def test_container_security_context(out, component):
    csc = out.container(component)["securityContext"]
    assert csc["runAsNonRoot"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert csc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in csc


@pytest.mark.parametrize("component", COMPONENTS)
def test_no_service_account_token_and_no_service_links(out, component):
    spec = out.pod_spec(component)
    assert spec["automountServiceAccountToken"] is False
    # Service links would inject BIOMETRIC_PASSKEY_CORE_* style variables
    # into the runtime's own configuration namespace.
    assert spec["enableServiceLinks"] is False


@pytest.mark.parametrize("component", COMPONENTS)
def test_entrypoint_is_left_to_the_image(out, component):
    container = out.container(component)
    assert "command" not in container
    assert "args" not in container


@pytest.mark.parametrize("component", COMPONENTS)
def test_writable_tmp(out, component):
    spec = out.pod_spec(component)
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    assert out.container(component)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


def test_writable_tmp_size_and_switch(render):
    out = render(values(MANAGEMENT_ON, {"writableTmp": {"sizeLimit": "128Mi"}}))
    for component in COMPONENTS:
        assert out.pod_spec(component)["volumes"][0]["emptyDir"] == {"sizeLimit": "128Mi"}
    out = render(values(MANAGEMENT_ON, {"writableTmp": {"enabled": False}}))
    for component in COMPONENTS:
        assert "volumes" not in out.pod_spec(component)
        assert "volumeMounts" not in out.container(component)


@pytest.mark.parametrize("component", ["core", "management"])
def test_probes_hit_api_health_on_named_port(out, component):
    container = out.container(component)
    assert {"name": "http", "containerPort": 3000, "protocol": "TCP"} in container["ports"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/api/health", "port": "http"}
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/api/health", "port": "http"},
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


def test_probe_timings_are_configurable(render):
    out = render(
        values(
            MANAGEMENT_ON,
            {"probes": {"management": {"liveness": {"periodSeconds": 30, "failureThreshold": 6}}}},
        )
    )
    live = out.container("management")["livenessProbe"]
    assert live["periodSeconds"] == 30 and live["failureThreshold"] == 6
    assert live["httpGet"] == {"path": "/api/health", "port": "http"}
    assert out.container("core")["livenessProbe"]["periodSeconds"] == 10


@pytest.mark.parametrize("component", ["core", "management"])
def test_termination_grace_outlasts_the_drain_and_a_long_poll(out, component):
    # BIOMETRIC_PASSKEY_SHUTDOWN_DRAIN (5 s) plus a long-poll (30 s) must end
    # before Kubernetes kills the pod; its own default (30 s) would cut them.
    assert out.pod_spec(component)["terminationGracePeriodSeconds"] == 45


def test_termination_grace_is_configurable(render):
    out = render(values(MANAGEMENT_ON, {"core": {"terminationGracePeriodSeconds": 90}}))
    assert out.pod_spec("core")["terminationGracePeriodSeconds"] == 90
    assert out.pod_spec("management")["terminationGracePeriodSeconds"] == 45


def test_migration_job_has_no_probes(out):
    container = out.container("migrate")
    assert "livenessProbe" not in container and "readinessProbe" not in container
    assert "ports" not in container


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_hardening_holds_in_every_scenario(render, scenario):
    out = render(SCENARIOS[scenario])
    pods = [d for d in out.docs if d["kind"] in ("Deployment", "Job")]
    assert pods
    for doc in pods:
        spec = doc["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_service_account(out):
    sa = out.one("ServiceAccount")
    assert sa["metadata"]["name"] == "biometric-passkey"
    assert sa["automountServiceAccountToken"] is False
    assert out.pod_spec("core")["serviceAccountName"] == "biometric-passkey"
    assert out.pod_spec("management")["serviceAccountName"] == "biometric-passkey"


def test_service_account_name_and_annotations(render):
    out = render(
        values(MANAGEMENT_ON, {"serviceAccount": {"name": "bp-sa", "annotations": {"x.test/r": "1"}}})
    )
    sa = out.one("ServiceAccount")
    assert sa["metadata"]["name"] == "bp-sa"
    assert sa["metadata"]["annotations"] == {"x.test/r": "1"}
    assert out.pod_spec("core")["serviceAccountName"] == "bp-sa"


def test_existing_service_account(render):
    out = render(values({"serviceAccount": {"create": False, "name": "pre-made"}}))
    assert out.all("ServiceAccount") == []
    assert out.pod_spec("core")["serviceAccountName"] == "pre-made"
    out = render(values({"serviceAccount": {"create": False}}))
    assert out.pod_spec("core")["serviceAccountName"] == "default"


def test_token_automount_can_be_enabled_for_runtime_pods_only(render):
    out = render(values(MANAGEMENT_ON, {"serviceAccount": {"automountServiceAccountToken": True}}))
    assert out.one("ServiceAccount")["automountServiceAccountToken"] is True
    assert out.pod_spec("core")["automountServiceAccountToken"] is True
    assert out.pod_spec("management")["automountServiceAccountToken"] is True
    assert out.pod_spec("migrate")["automountServiceAccountToken"] is False


def test_resources_per_workload(render):
    res = {
        "core": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
        "management": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "migrate": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
    }
    out = render(values(MANAGEMENT_ON, {"resources": res}))
    for component in COMPONENTS:
        got = out.container(component)["resources"]
        # Helm merges over the chart defaults; every requested figure must land.
        for section, figures in res[component].items():
            assert figures.items() <= got[section].items(), (component, section)
