"""The ``kubernetes`` target: manifests that serve an environment's model version.

Conveyor renders; ``kubectl apply`` (or a GitOps tool) applies. The default is a Deployment
and a Service; with ``target.kserve: true`` it is one KServe ``InferenceService`` whose
predictor runs the same container, with ``canaryTrafficPercent`` when the environment rolls
out by canary. The container runs ``conveyor serve NAME:VERSION`` and reads the store URLs
from the Secret ``conveyor-<project>-stores`` (see docs/kubernetes.md).

Rendering is deterministic (the same inputs give byte-identical files), each file is written
whole (temporary file, then rename), and a file that Conveyor did not render is never
overwritten.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from conveyor.config_delivery import EnvironmentConfig
from conveyor.errors import UsageError
from conveyor.store.blobs import is_digest

__all__ = [
    "DRAIN_SECONDS",
    "PORT",
    "dns_label",
    "render_manifests",
    "stores_secret_name",
]

PORT = 8080
DRAIN_SECONDS = 30  # `conveyor serve --drain-timeout`: requests in flight get this long
PRESTOP_SECONDS = 5  # time for endpoint removal to reach every proxy before SIGTERM
GRACE_SECONDS = PRESTOP_SECONDS + DRAIN_SECONDS + 5  # then the kubelet sends SIGKILL
KSERVE_NAME_MAX = 45  # KServe builds "<name>-predictor-<namespace>" host labels from it
HEADER = "# Rendered by Conveyor for environment '{env}' of project '{project}'."
NOTE = (
    "# Do not edit: render again with 'conveyor deploy {env} --target kubernetes --render DIR'.\n"
)
DIGEST_KEY = "conveyor.dev/package-digest"
_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_QUANTITY = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?")


def dns_label(text: str, max_len: int = 63) -> str:
    """``text`` as a DNS-1035 label (what Service names must be, and so stricter than
    DNS-1123): lower-case letters, digits and '-', starting with a letter, at most
    ``max_len`` characters. When anything had to change, a short hash of the original is
    appended, so two names that differ only in case or punctuation never collide."""
    if len(text) <= max_len and _LABEL.fullmatch(text):
        return text
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not base[:1].isalpha():
        base = f"m-{base}".rstrip("-")
    suffix = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{base[: max_len - len(suffix) - 1].rstrip('-')}-{suffix}"


def stores_secret_name(project: str) -> str:
    """The Secret the container reads its store URLs from: ``conveyor-<project>-stores``."""
    return dns_label(f"conveyor-{project}-stores")


def render_manifests(
    env: EnvironmentConfig,
    *,
    project: str,
    model: str,
    version: int,
    package_digest: str,
    out_dir: Path,
    canary_percent: int | None = None,
) -> list[Path]:
    """Write the manifests that serve ``model:version`` (whose package is
    ``package_digest``) in ``env`` to ``out_dir``, one YAML document per file, and return
    their paths.

    ``canary_percent`` is the share of traffic for the new version under a KServe canary
    rollout; by default the first of ``env.rollout.steps``. Files this environment rendered
    before but does not render now (after switching ``target.kserve``) are removed, so
    ``kubectl apply -f DIR`` applies exactly the current set.
    """
    if not is_digest(package_digest):
        raise UsageError(
            f"'{package_digest}' is not a package digest",
            hint=f"build the package first: 'conveyor model package {model}:{version}'",
        )
    target = env.target
    if not target.image:
        raise UsageError(
            f"environment '{env.name}' has no serving image for the kubernetes target",
            hint=f"set environments[i].target.image for the environment named '{env.name}' "
            "in conveyor.yaml: an image with Conveyor and the project installed, e.g. "
            "registry.example.com/credit-risk-serve:1.4",
        )
    if not _LABEL.fullmatch(target.namespace) or len(target.namespace) > 63:
        raise UsageError(
            f"environment '{env.name}': target.namespace '{target.namespace}' is not a "
            "Kubernetes namespace name",
            hint="use lower-case letters, digits and '-', at most 63 characters",
        )
    spec = _Spec(env, project, model, version, package_digest, target.image)
    if target.kserve:
        docs = {"inferenceservice": spec.inference_service(_canary(env, canary_percent))}
    else:
        if canary_percent is not None:
            raise UsageError(
                f"environment '{env.name}': a canary traffic split needs KServe",
                hint="set target.kserve: true, or roll out with the local target",
            )
        docs = {"deployment": spec.deployment(), "service": spec.service()}
    files = {
        f"{spec.name}.{kind}.yaml": _dump(doc, env.name, project) for kind, doc in docs.items()
    }
    return _write_all(out_dir, files, _header(env.name, project))


def _canary(env: EnvironmentConfig, canary_percent: int | None) -> int | None:
    if env.rollout.strategy != "canary":
        if canary_percent is not None:
            raise UsageError(
                f"environment '{env.name}' rolls out by {env.rollout.strategy}, not canary",
                hint="set rollout.strategy: canary to split traffic",
            )
        return None
    percent = env.rollout.steps[0] if canary_percent is None else canary_percent
    if isinstance(percent, bool) or not 0 < percent <= 100:
        raise UsageError(f"canary percent {percent} is not between 1 and 100")
    return percent


class _Spec:
    """The objects for one environment serving one model version."""

    def __init__(
        self,
        env: EnvironmentConfig,
        project: str,
        model: str,
        version: int,
        digest: str,
        image: str,
    ) -> None:
        self.env = env
        self.project = project
        self.ref = f"{model}:{version}"
        self.digest = digest
        self.image = image
        max_len = KSERVE_NAME_MAX if env.target.kserve else 63
        self.name = dns_label(f"{model}-{env.name}", max_len)
        self.selector = {
            "app.kubernetes.io/instance": self.name,
            "conveyor.dev/environment": env.name,
        }
        self.labels = {
            "app.kubernetes.io/name": _label_value(model),
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/part-of": "conveyor",
            "app.kubernetes.io/managed-by": "conveyor",
            "conveyor.dev/environment": env.name,
            "conveyor.dev/model": _label_value(model),
            "conveyor.dev/version": str(version),
        }
        self.annotations = {"conveyor.dev/model-version": self.ref, DIGEST_KEY: digest}

    def metadata(self, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.env.target.namespace,
            "labels": dict(self.labels),
            "annotations": {**self.annotations, **(annotations or {})},
        }

    def deployment(self) -> dict[str, Any]:
        scrape = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(PORT),
            "prometheus.io/path": "/metrics",
        }
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.metadata(),
            "spec": {
                "replicas": self.env.target.replicas,
                "selector": {"matchLabels": dict(self.selector)},
                # a new pod is ready before an old one stops: no capacity lost mid-rollout
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
                },
                "template": {
                    "metadata": {
                        "labels": dict(self.labels),
                        # the digest is here so that a pod restarts on a new package only
                        "annotations": {**self.annotations, **scrape},
                    },
                    "spec": {
                        "automountServiceAccountToken": False,
                        "terminationGracePeriodSeconds": GRACE_SECONDS,
                        "containers": [self.container("serve", serverless=False)],
                    },
                },
            },
        }

    def service(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.metadata(),
            "spec": {
                "type": "ClusterIP",
                "selector": dict(self.selector),
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        }

    def inference_service(self, canary_percent: int | None) -> dict[str, Any]:
        scrape = {
            # the container settings below are Knative's (one port "http1", no hooks), and
            # canaryTrafficPercent needs its revisions: say so rather than rely on a default
            "serving.kserve.io/deploymentMode": "Serverless",
            "serving.kserve.io/enable-prometheus-scraping": "true",
            "prometheus.kserve.io/port": str(PORT),
            "prometheus.kserve.io/path": "/metrics",
        }
        predictor: dict[str, Any] = {"minReplicas": self.env.target.replicas}
        if canary_percent is not None:
            predictor["canaryTrafficPercent"] = canary_percent
        predictor |= {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "containers": [self.container("kserve-container", serverless=True)],
        }
        return {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": self.metadata(scrape),
            "spec": {"predictor": predictor},
        }

    def container(self, name: str, *, serverless: bool) -> dict[str, Any]:
        """The serving container. Under KServe's serverless mode Knative's queue-proxy
        drains the pod and allows one port named ``http1``, no lifecycle hooks and no
        startup probe, so those are left to it there."""
        secret = stores_secret_name(self.project)
        port_name = "http1" if serverless else "http"
        args = ["serve", self.ref, "--host", "0.0.0.0", "--port", str(PORT)]  # noqa: S104
        args += ["--environment", self.env.name, "--drain-timeout", str(DRAIN_SECONDS)]
        if self.env.target.workers > 1:
            args += ["--workers", str(self.env.target.workers)]
        probe_port: int | str = PORT if serverless else port_name
        container: dict[str, Any] = {
            "name": name,
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["conveyor"],
            "args": args,
            "ports": [{"name": port_name, "containerPort": PORT, "protocol": "TCP"}],
            "env": [
                _secret_env("CONVEYOR_METADATA_URL", secret),
                _secret_env("CONVEYOR_ARTIFACTS_URL", secret),
            ],
            # the Secret's other keys (object store credentials) become variables as well
            "envFrom": [{"secretRef": {"name": secret}}],
            "readinessProbe": _probe("/v2/health/ready", probe_port, period=5, failures=3),
            "livenessProbe": _probe("/v2/health/live", probe_port, period=10, failures=3),
        }
        resources = _resources(self.env)
        if resources:
            container["resources"] = resources
        if not serverless:
            # loading a large model may take minutes: liveness waits for the first answer
            container["startupProbe"] = _probe("/v2/health/live", port_name, period=5, failures=60)
            # endpoints are removed asynchronously: keep answering until proxies have caught up
            container["lifecycle"] = {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}}
            container["securityContext"] = {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            }
        return container


def _secret_env(name: str, secret: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": name}}}


def _probe(path: str, port: int | str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _resources(env: EnvironmentConfig) -> dict[str, dict[str, str]]:
    """``target.resources`` as a container's resources: ``requests`` and ``limits``, each a
    map from a resource name to a quantity (``500m``, ``2Gi``, 1)."""
    where = f"environment '{env.name}': target.resources"
    hint = "write e.g. resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 2Gi}}"
    unknown = sorted(set(env.target.resources) - {"requests", "limits"})
    if unknown:
        raise UsageError(f"{where} has unknown key(s) {', '.join(unknown)}", hint=hint)
    out: dict[str, dict[str, str]] = {}
    for kind in ("requests", "limits"):
        amounts = env.target.resources.get(kind)
        if amounts is None:
            continue
        if not isinstance(amounts, Mapping):
            raise UsageError(f"{where}.{kind} is not a mapping", hint=hint)
        out[kind] = {}
        for resource, amount in sorted(amounts.items()):
            text = str(amount) if isinstance(amount, int | float | str) else ""
            if isinstance(amount, bool) or not _QUANTITY.fullmatch(text):
                raise UsageError(
                    f"{where}.{kind}.{resource}: '{amount}' is not a quantity", hint=hint
                )
            out[kind][str(resource)] = text
    return out


def _label_value(text: str) -> str:
    """A label value (at most 63 characters; '_' and '.' allowed inside)."""
    if len(text) <= 63 and _LABEL_VALUE.fullmatch(text):
        return text
    suffix = hashlib.sha256(text.encode()).hexdigest()[:6]
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:56].strip("-_.")
    return f"{base}-{suffix}" if base else suffix


# -- files -----------------------------------------------------------------------------------


def _header(env: str, project: str) -> str:
    return HEADER.format(env=env, project=project) + "\n"


def _dump(doc: dict[str, Any], env: str, project: str) -> str:
    body: str = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)
    return _header(env, project) + NOTE.format(env=env) + body


def _write_all(out_dir: Path, files: dict[str, str], header: str) -> list[Path]:
    """Check every file first, so nothing is written when one would clobber a foreign file;
    then write each atomically and remove what this environment rendered before but not now."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir} is not a directory", hint="give a directory to --render")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in sorted(files):
        path = out_dir / name
        if path.is_symlink() or (path.exists() and _owner(path) is None):
            raise UsageError(
                f"{path} exists and was not rendered by Conveyor; refusing to overwrite it",
                hint="move it away, or render into another directory",
            )
    written = []
    for name, text in sorted(files.items()):
        path = out_dir / name
        _atomic_write(path, text)
        written.append(path)
    for stale in sorted(out_dir.glob("*.yaml")):
        if stale.name not in files and not stale.is_symlink() and _owner(stale) == header:
            stale.unlink()
    return written


def _owner(path: Path) -> str | None:
    """The header line of a file Conveyor rendered, or None for any other file."""
    try:
        with path.open(encoding="utf-8") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError):
        return None
    return first if first.startswith("# Rendered by Conveyor for environment ") else None


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # manifests hold no secret: the Secret is separate
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
