"""The kubernetes target's manifests, validated against the real schemas.

Deployments and Services are checked against the Kubernetes JSON schemas that the
``kubernetes-validate`` package bundles (strict: unknown fields are errors, as with
``kubectl apply --validate=strict``). The InferenceService is checked against
tests/fixtures/kserve/inferenceservice-v1beta1.schema.json: KServe's v1beta1 types as
published in the ``kserve`` package's model classes, with every Kubernetes type (Container,
Probe, ResourceRequirements, ObjectMeta, ...) a reference into those same bundled schemas.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from conveyor.config_delivery import EnvironmentConfig
from conveyor.deploy.kubernetes import (
    DRAIN_SECONDS,
    dns_label,
    render_manifests,
    stores_secret_name,
)
from conveyor.errors import UsageError

DIGEST = "ab" * 32
OTHER_DIGEST = "cd" * 32
FIXTURE = (
    Path(__file__).parent.parent / "fixtures" / "kserve" / "inferenceservice-v1beta1.schema.json"
)
LATEST = kv_utils.latest_version()
# the oldest release whose schema has the preStop `sleep` action, and the newest bundled
K8S_VERSIONS = ("1.30", LATEST)
DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def environment(**overrides: Any) -> EnvironmentConfig:
    doc: dict[str, Any] = {
        "name": "production",
        "promote": "manual",
        "approvers": ["role:approver"],
        "target": {"kind": "kubernetes", "image": "registry.example.com/serve:1.0"},
    }
    for key, value in overrides.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    return EnvironmentConfig.model_validate(doc)


def render(
    tmp_path: Path,
    env: EnvironmentConfig | None = None,
    *,
    model: str = "credit-risk",
    version: int = 3,
    digest: str = DIGEST,
    out: str = "k8s",
    canary_percent: int | None = None,
) -> list[Path]:
    return render_manifests(
        env or environment(),
        project="credit-risk",
        model=model,
        version=version,
        package_digest=digest,
        out_dir=tmp_path / out,
        canary_percent=canary_percent,
    )


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def by_kind(paths: list[Path]) -> dict[str, dict[str, Any]]:
    docs = [load(p) for p in paths]
    return {d["kind"]: d for d in docs}


def k8s_validate(doc: dict[str, Any], version: str = LATEST) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def _kserve_schema() -> tuple[dict[str, Any], Registry]:
    """The fixture, and a registry where its references to Kubernetes types resolve to the
    definitions kubernetes-validate bundles for the newest Kubernetes it knows."""
    root = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    defs_file = root.joinpath(f"v{LATEST}-local-strict", "_definitions.json")
    definitions = Resource.from_contents(json.loads(defs_file.read_text(encoding="utf-8")))
    schema = json.loads(FIXTURE.read_text(encoding="utf-8"))
    registry: Registry = Registry().with_resources(
        [(definitions.id() or "", definitions), (schema["$id"], Resource.from_contents(schema))]
    )
    return schema, registry


KSERVE_SCHEMA, KSERVE_REGISTRY = _kserve_schema()
KSERVE = jsonschema.Draft202012Validator(KSERVE_SCHEMA, registry=KSERVE_REGISTRY)


# -- schema validity -------------------------------------------------------------------------

ENVIRONMENTS = {
    "default": {},
    "resources": {
        "target": {
            "replicas": 3,
            "workers": 2,
            "namespace": "ml-serving",
            "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"cpu": 2, "memory": "2Gi", "nvidia.com/gpu": 1},
            },
        }
    },
}
MODELS = ("credit-risk", "Credit_Risk.v2", "7-day-churn", "m" * 100)


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
@pytest.mark.parametrize("overrides", ENVIRONMENTS.values(), ids=ENVIRONMENTS.keys())
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m[:20])
def test_deployment_and_service_match_the_kubernetes_schemas(
    tmp_path: Path, k8s_version: str, overrides: dict[str, Any], model: str
) -> None:
    paths = render(tmp_path, environment(**overrides), model=model)
    docs = by_kind(paths)
    assert sorted(docs) == ["Deployment", "Service"]
    for doc in docs.values():
        k8s_validate(doc, k8s_version)


@pytest.mark.parametrize("strategy", ["replace", "canary", "shadow"])
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m[:20])
def test_inference_service_matches_the_kserve_schema(
    tmp_path: Path, strategy: str, model: str
) -> None:
    env = environment(
        rollout={"strategy": strategy},
        target={"kserve": True, **ENVIRONMENTS["resources"]["target"]},
    )
    [path] = render(tmp_path, env, model=model)
    doc = load(path)
    KSERVE.validate(doc)
    # the objects embedded in it, against the Kubernetes schemas themselves
    container = doc["spec"]["predictor"]["containers"][0]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}
    k8s_validate({**pod, "spec": {"containers": [container]}})


def test_every_kubernetes_reference_of_the_kserve_fixture_resolves() -> None:
    """The fixture is only as good as its references: each one names a real definition."""
    text = FIXTURE.read_text(encoding="utf-8")
    refs = sorted(set(re.findall(r'"\$ref": "([^"]+)"', text)))
    assert any(r.endswith("io.k8s.api.core.v1.Container") for r in refs)
    resolver = KSERVE_REGISTRY.resolver(base_uri=KSERVE_SCHEMA["$id"])
    for ref in refs:
        assert resolver.lookup(ref).contents, ref


# -- the validators are real ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "corrupt"),
    [
        ("Deployment", lambda d: d["spec"].__setitem__("replicas", "three")),
        ("Deployment", lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name")),
        ("Deployment", lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imag="x")),
        ("Deployment", lambda d: d["spec"].pop("selector")),
        ("Service", lambda d: d["spec"]["ports"][0].__setitem__("port", "eighty")),
        ("Service", lambda d: d["spec"].update(selectr={})),
    ],
)
def test_the_kubernetes_validator_rejects_a_corrupted_manifest(
    tmp_path: Path, kind: str, corrupt: Any
) -> None:
    doc = by_kind(render(tmp_path))[kind]
    k8s_validate(doc)
    corrupt(doc)
    with pytest.raises(kubernetes_validate.ValidationError):
        k8s_validate(doc)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda d: d["spec"]["predictor"].__setitem__("canaryTrafficPercent", "ten"),
        lambda d: d["spec"]["predictor"].update(canaryPercent=10),
        lambda d: d["spec"].pop("predictor"),
        lambda d: d["spec"]["predictor"]["containers"][0]["readinessProbe"]["httpGet"].pop("port"),
        lambda d: d["spec"]["predictor"]["containers"][0]["resources"].update(request={}),
        lambda d: d.__setitem__("apiVersion", "serving.kserve.io/v1alpha1"),
    ],
)
def test_the_kserve_validator_rejects_a_corrupted_inference_service(
    tmp_path: Path, corrupt: Any
) -> None:
    env = environment(
        rollout={"strategy": "canary"},
        target={"kserve": True, "resources": {"limits": {"memory": "1Gi"}}},
    )
    doc = load(render(tmp_path, env)[0])
    KSERVE.validate(doc)
    corrupt(doc)
    with pytest.raises(jsonschema.ValidationError):
        KSERVE.validate(doc)


# -- contents --------------------------------------------------------------------------------


def test_the_deployment_runs_conveyor_serve_with_probes_secret_and_draining(
    tmp_path: Path,
) -> None:
    docs = by_kind(render(tmp_path, environment(target={"replicas": 2})))
    deployment, service = docs["Deployment"], docs["Service"]
    labels = deployment["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "credit-risk"
    assert labels["app.kubernetes.io/part-of"] == "conveyor"
    assert labels["conveyor.dev/environment"] == "production"
    assert labels["conveyor.dev/model"] == "credit-risk"
    assert labels["conveyor.dev/version"] == "3"
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    # the selector outlives versions: a Deployment's selector cannot change
    assert "conveyor.dev/version" not in spec["selector"]["matchLabels"]
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    template = spec["template"]
    assert template["metadata"]["annotations"]["conveyor.dev/package-digest"] == DIGEST
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert template["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    [container] = template["spec"]["containers"]
    assert container["image"] == "registry.example.com/serve:1.0"
    argv = container["command"] + container["args"]
    assert argv[:7] == ["conveyor", "serve", "credit-risk:3", "--host", "0.0.0.0", "--port", "8080"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    secret = stores_secret_name("credit-risk")
    assert secret == "conveyor-credit-risk-stores"
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert refs == {
        "CONVEYOR_METADATA_URL": {"name": secret, "key": "CONVEYOR_METADATA_URL"},
        "CONVEYOR_ARTIFACTS_URL": {"name": secret, "key": "CONVEYOR_ARTIFACTS_URL"},
    }
    # SIGTERM comes after the preStop pause; the drain must finish before SIGKILL
    drain = int(argv[argv.index("--drain-timeout") + 1])
    assert drain == DRAIN_SECONDS
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert template["spec"]["terminationGracePeriodSeconds"] > pause + drain


def test_only_a_new_package_changes_the_pod_template(tmp_path: Path) -> None:
    a = by_kind(render(tmp_path, out="a"))["Deployment"]["spec"]["template"]
    again = by_kind(render(tmp_path, out="again"))["Deployment"]["spec"]["template"]
    b = by_kind(render(tmp_path, digest=OTHER_DIGEST, out="b"))["Deployment"]["spec"]["template"]
    assert a == again
    assert a != b
    b["metadata"]["annotations"]["conveyor.dev/package-digest"] = DIGEST
    assert a == b


def test_rendering_is_deterministic_and_atomic(tmp_path: Path) -> None:
    env = environment(target={"resources": {"limits": {"memory": "2Gi", "cpu": 1}}})
    first = render(tmp_path, env, out="one")
    second = render(tmp_path, env, out="two")
    assert [p.name for p in first] == [p.name for p in second]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    again = render(tmp_path, env, out="one")  # over its own files
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in second]
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == sorted(p.name for p in first)


def test_names_are_sanitized_dns_labels_with_a_hash(tmp_path: Path) -> None:
    assert dns_label("credit-risk-production") == "credit-risk-production"
    names = set()
    for model in ("Credit_Risk.v2", "credit_risk.v2", "credit-risk-v2", "7-day", "m" * 100):
        deployment = by_kind(render(tmp_path, model=model, out=model[:30]))["Deployment"]
        name = deployment["metadata"]["name"]
        assert DNS_1035.fullmatch(name) and len(name) <= 63, name
        assert len(deployment["metadata"]["labels"]["conveyor.dev/model"]) <= 63
        assert deployment["metadata"]["annotations"]["conveyor.dev/model-version"] == f"{model}:3"
        names.add(name)
    assert len(names) == 5  # names that differ only in case or punctuation do not collide
    assert dns_label("Credit_Risk.v2-production").startswith("credit-risk-v2-production-")
    kserve = environment(target={"kserve": True})
    [path] = render(tmp_path, kserve, model="m" * 100, out="kserve")
    assert len(load(path)["metadata"]["name"]) <= 45


def test_a_missing_image_says_where_to_set_it(tmp_path: Path) -> None:
    env = environment(target={"image": None})
    with pytest.raises(UsageError) as info:
        render(tmp_path, env)
    assert "production" in str(info.value)
    assert "environments[i].target.image" in str(info.value)
    assert not (tmp_path / "k8s").exists()


def test_bad_resources_and_digest_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="quantity"):
        render(tmp_path, environment(target={"resources": {"limits": {"memory": "lots"}}}))
    with pytest.raises(UsageError, match="unknown key"):
        render(tmp_path, environment(target={"resources": {"limit": {"memory": "1Gi"}}}))
    with pytest.raises(UsageError, match="package digest"):
        render(tmp_path, digest="abc")


# -- KServe canary ---------------------------------------------------------------------------


def predictor(tmp_path: Path, env: EnvironmentConfig, **kw: Any) -> dict[str, Any]:
    [path] = render(tmp_path, env, **kw)
    doc = load(path)
    assert doc["kind"] == "InferenceService"
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1"
    KSERVE.validate(doc)
    result: dict[str, Any] = doc["spec"]["predictor"]
    return result


def test_canary_traffic_is_the_first_canary_step(tmp_path: Path) -> None:
    env = environment(
        rollout={"strategy": "canary", "steps": [5, 25, 100]}, target={"kserve": True}
    )
    pred = predictor(tmp_path, env, out="first")
    assert pred["canaryTrafficPercent"] == 5
    assert pred["containers"][0]["args"][:2] == ["serve", "credit-risk:3"]
    assert pred["annotations"]["conveyor.dev/package-digest"] == DIGEST
    assert predictor(tmp_path, env, canary_percent=25, out="next")["canaryTrafficPercent"] == 25


@pytest.mark.parametrize("strategy", ["replace", "shadow"])
def test_no_canary_traffic_without_a_canary_rollout(tmp_path: Path, strategy: str) -> None:
    env = environment(rollout={"strategy": strategy}, target={"kserve": True})
    assert "canaryTrafficPercent" not in predictor(tmp_path, env)
    with pytest.raises(UsageError, match="not canary"):
        render(tmp_path, env, canary_percent=10, out="again")


def test_a_canary_split_needs_kserve(tmp_path: Path) -> None:
    env = environment(rollout={"strategy": "canary"})
    assert "Deployment" in by_kind(render(tmp_path, env))
    with pytest.raises(UsageError, match="KServe"):
        render(tmp_path, env, canary_percent=10)
    kserve = environment(rollout={"strategy": "canary"}, target={"kserve": True})
    with pytest.raises(UsageError, match="between 1 and 100"):
        render(tmp_path, kserve, canary_percent=0)


# -- the output directory --------------------------------------------------------------------


def test_a_foreign_file_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    out.mkdir()
    mine = out / "credit-risk-production.deployment.yaml"
    mine.write_text("apiVersion: apps/v1\nkind: Deployment  # hand-written\n")
    with pytest.raises(UsageError, match="not rendered by Conveyor"):
        render(tmp_path)
    assert mine.read_text() == "apiVersion: apps/v1\nkind: Deployment  # hand-written\n"
    assert sorted(p.name for p in out.iterdir()) == [mine.name]  # nothing else was written


def test_switching_to_kserve_removes_only_this_environments_old_files(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    out.mkdir()
    (out / "notes.yaml").write_text("kind: ConfigMap\n")
    old = render(tmp_path)
    staging = render(tmp_path, environment(name="staging", promote="auto", approvers=[]))
    new = render(tmp_path, environment(target={"kserve": True}))
    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in [*staging, *new])
    assert (out / "notes.yaml").read_text() == "kind: ConfigMap\n"
    assert len(list(out.iterdir())) == 1 + len(staging) + len(new)
