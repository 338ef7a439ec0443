"""Every rendered object against the Kubernetes OpenAPI schema, strict mode
(unknown fields rejected), for a pinned Kubernetes version."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
from conftest import KUBE_VERSION, SCENARIOS


def check(doc):
    try:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {where}")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rendered_objects_are_valid_kubernetes(render, scenario):
    out = render(SCENARIOS[scenario])
    assert out.docs
    for doc in out.docs:
        check(doc)


def test_validator_is_strict(render):
    # Guard against a silently permissive validator: a misspelt container
    # field and a non-string env value must both be refused.
    deployment = render(SCENARIOS["minimal"]).workload("core")
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, KUBE_VERSION, strict=True)
    number = copy.deepcopy(deployment)
    number["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = 5432
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(number, KUBE_VERSION, strict=True)
