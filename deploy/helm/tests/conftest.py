"""Shared fixtures and helpers for the biometric-passkey chart tests.

Rendering goes through helm-python-sdk, i.e. Helm's own Go library: the
same engine, value coalescing and values.schema.json validation that
`helm template` / `helm install` use. No cluster and no network are needed.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Iterator

import helm_python as helm
import pytest
import yaml

HELM_DIR = Path(__file__).resolve().parents[1]
# HELM_CHART_UNDER_TEST points the suite at another copy of the chart (used
# to check that the tests catch deliberately broken templates).
CHART_DIR = Path(os.environ.get("HELM_CHART_UNDER_TEST", HELM_DIR / "biometric-passkey"))
EXAMPLES_DIR = HELM_DIR / "examples"

RELEASE = "biometric-passkey"
NAMESPACE = "biometric-passkey"

# Kubernetes version the rendered objects are validated against (strict).
KUBE_VERSION = "1.33.0"

DIGEST = "sha256:" + "0123456789abcdef" * 4

# The smallest set of values a real install must provide on top of the
# chart defaults. Secret names are deliberately recognisable so tests can
# prove they only ever show up inside secretKeyRef.
MINIMAL: dict[str, Any] = {
    "images": {
        "core": {"repository": "registry.test/bp-core", "tag": "1.2.3"},
        "management": {"repository": "registry.test/bp-management", "tag": "1.2.3"},
        "migrate": {"repository": "registry.test/bp-migrate", "tag": "1.2.3"},
    },
    "database": {"host": "pg.test", "name": "bp_db", "user": "bp_user"},
    "idv": {
        "registrationWorkflowId": "0c6b0e4a-1111-4b5b-9a1e-000000000001",
        "stepUpWorkflowId": "0c6b0e4a-1111-4b5b-9a1e-000000000002",
        "recoveryVerifyWorkflowId": "0c6b0e4a-1111-4b5b-9a1e-000000000003",
    },
    "secrets": {
        "database": {"name": "fake-secret-db", "passwordKey": "fake-key-db-password"},
        "dataEncryption": {"name": "fake-secret-dek", "key": "fake-key-dek"},
        "onfido": {
            "name": "fake-secret-onfido",
            "apiTokenKey": "fake-key-onfido-token",
            "webhookSecretKey": "fake-key-onfido-webhook",
        },
        "coreApiKeys": {"name": "fake-secret-core-api", "key": "fake-key-core-api-keys"},
    },
}

MANAGEMENT_ON: dict[str, Any] = {
    "management": {
        "enabled": True,
        "auth": {
            "issuer": "https://idp.test/",
            "audience": "bp-management-api",
            "jwksUrl": "https://idp.test/jwks.json",
        },
        "ui": {"clientId": "bp-dashboard"},
    }
}


def deep_merge(base: dict[str, Any], *overlays: dict[str, Any]) -> dict[str, Any]:
    """Return base with overlays merged in (like repeated `-f` files)."""
    out = copy.deepcopy(base)
    for overlay in overlays:
        for key, value in overlay.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def values(*overlays: dict[str, Any]) -> dict[str, Any]:
    """MINIMAL plus overlays."""
    return deep_merge(MINIMAL, *overlays)


def load_example(name: str) -> dict[str, Any]:
    with open(EXAMPLES_DIR / name, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), name
    return data


class Rendered:
    """Parsed output of one render."""

    def __init__(self, manifests: dict[str, str]):
        self.manifests = manifests
        self.notes = ""
        self.docs: list[dict[str, Any]] = []
        for path, text in sorted(manifests.items()):
            if path.endswith("NOTES.txt"):
                self.notes = text
                continue
            for doc in yaml.safe_load_all(text):
                if doc is None:
                    continue
                assert isinstance(doc, dict), f"{path}: not a mapping"
                self.docs.append(doc)

    def kinds(self) -> list[str]:
        return sorted(d["kind"] for d in self.docs)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, component: str | None = None) -> dict[str, Any]:
        found = [
            d
            for d in self.all(kind)
            if component is None
            or d["metadata"]["labels"].get("app.kubernetes.io/component") == component
        ]
        assert len(found) == 1, f"expected one {kind} {component or ''}, got {len(found)}"
        return found[0]

    def workload(self, component: str) -> dict[str, Any]:
        """The Deployment (core, management) or Job (migrate) of a component."""
        kind = "Job" if component == "migrate" else "Deployment"
        return self.one(kind, component)

    def pod_spec(self, component: str) -> dict[str, Any]:
        return self.workload(component)["spec"]["template"]["spec"]

    def container(self, component: str) -> dict[str, Any]:
        containers = self.pod_spec(component)["containers"]
        assert len(containers) == 1
        return containers[0]

    def env(self, component: str) -> dict[str, dict[str, Any]]:
        """Env entries of a component keyed by name (duplicates rejected)."""
        entries = self.container(component).get("env", [])
        names = [e["name"] for e in entries]
        assert len(names) == len(set(names)), f"duplicate env names in {component}: {names}"
        return {e["name"]: e for e in entries}

    def env_value(self, component: str, name: str) -> str:
        entry = self.env(component)[name]
        assert "valueFrom" not in entry, f"{name} is not a plain value"
        return entry["value"]


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


def do_render(chart: helm.Chart, vals: dict[str, Any], **opts: Any) -> Rendered:
    opts.setdefault("name", RELEASE)
    opts.setdefault("namespace", NAMESPACE)
    return Rendered(chart.render(vals, **opts))


def render_error(chart: helm.Chart, vals: dict[str, Any]) -> str:
    """Render that must fail; returns Helm's error text."""
    with pytest.raises(helm.HelmError) as excinfo:
        chart.render(vals, name=RELEASE, namespace=NAMESPACE)
    return str(excinfo.value)


@pytest.fixture
def render(chart: helm.Chart):
    def _render(vals: dict[str, Any], **opts: Any) -> Rendered:
        return do_render(chart, vals, **opts)

    return _render


@pytest.fixture
def fails(chart: helm.Chart):
    def _fails(vals: dict[str, Any]) -> str:
        return render_error(chart, vals)

    return _fails


def walk(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Yield (path, leaf) for every scalar in a parsed manifest."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, path + (index,))
    else:
        yield path, node


# Named value sets that together switch on every optional branch of the
# templates. Tests that must hold for any configuration run over all of them.
def _scheduling_and_env(workload: str, component: str) -> dict[str, Any]:
    """Every optional per-workload key, filled in."""
    selector = {"matchLabels": {"app.kubernetes.io/component": component}}
    return {
        workload: {
            "podLabels": {"team": "identity"},
            "podAnnotations": {"example.test/scrape": "true"},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "bp", "effect": "NoSchedule"}
            ],
            "affinity": {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": selector,
                            },
                        }
                    ]
                }
            },
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": selector,
                }
            ],
            "extraEnv": [
                {"name": "HTTPS_PROXY", "value": "http://proxy.test:8080"},
                {"name": "NO_PROXY", "value": ".svc,.cluster.local,127.0.0.1,localhost"},
            ],
            "extraEnvFrom": [{"configMapRef": {"name": "bp-extra-config"}}],
        }
    }


KITCHEN_SINK: dict[str, Any] = deep_merge(
    MANAGEMENT_ON,
    {
        "images": {"core": {"digest": DIGEST}},
        "imagePullSecrets": [{"name": "registry-credentials"}],
        "idv": {"onfido": {"baseUrl": "https://api.us.onfido.test", "region": "us"}},
        "service": {
            "type": "LoadBalancer",
            "core": {"annotations": {"example.test/lb": "internal"}},
            "management": {"port": 8080, "annotations": {"example.test/lb": "admin"}},
        },
        "serviceAccount": {"name": "bp-runtime", "annotations": {"iam.test/role": "bp"}},
        "migrations": {"useHelmHooks": False, "serviceAccountName": "bp-migrations"},
        "auditPartition": {"retentionMonths": 24},
        "logLevel": "warn",
        "resources": {"migrate": {"limits": {"cpu": "500m", "memory": "128Mi"}}},
    },
    _scheduling_and_env("core", "core"),
    _scheduling_and_env("management", "management"),
    _scheduling_and_env("migrations", "migrate"),
)

SCENARIOS: dict[str, dict[str, Any]] = {
    "minimal": values(),
    "guide": load_example("guide-values.yaml"),
    "management": load_example("management-values.yaml"),
    "synthetic-no-hooks": values(
        {"idv": {"mode": "synthetic"}, "migrations": {"useHelmHooks": False}}
    ),
    "kitchen-sink": values(KITCHEN_SINK),
    "no-sa-no-tmp-no-migrations": values(
        MANAGEMENT_ON,
        {
            "serviceAccount": {"create": False},
            "writableTmp": {"enabled": False},
            "migrations": {"enabled": False},
        },
    ),
}
