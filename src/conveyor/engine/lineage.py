"""Lineage: what produced an artifact (down to source files, commit and params), and what used it.

References: an artifact digest prefix (4+ hex characters), a run (id, prefix, ``latest``,
``latest~N``), an output of a run, ``RUN:STEP`` / ``RUN:STEP.OUTPUT``, or a registered model
version ``NAME:VERSION`` / ``NAME:latest``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conveyor.core.records import StepRunRecord
from conveyor.errors import NotFoundError, UsageError
from conveyor.store import queries
from conveyor.store import tables as t
from conveyor.store.metadata import MetadataStore

MAX_DEPTH = 50


@dataclass(slots=True)
class Node:
    """One step run in a lineage graph with the artifacts it read and wrote."""

    run_id: str
    step: str
    step_run_id: int
    status: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    params: dict[str, Any]
    files: dict[str, str]
    commit: str | None
    dirty: bool
    upstream: list[Node] = field(default_factory=list)
    via: list[str] = field(default_factory=list)  # the inputs of the parent this node feeds

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "step": self.step,
            "status": self.status,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "params": self.params,
            "files": self.files,
            "commit": self.commit,
            "dirty": self.dirty,
            "via": self.via,
            "upstream": [u.to_json() for u in self.upstream],
        }


def resolve(store: MetadataStore, ref: str) -> tuple[str | None, str | None]:
    """(digest, run_id) that ``ref`` names; exactly one is set."""
    run_ref, sep, step_ref = ref.partition(":")
    if sep:
        registered = queries.model_version_digest(store, run_ref, step_ref)
        if registered is not None:
            return registered, None  # a model version, NAME:VERSION
        run = queries.get_run(store, run_ref)
        step_name, _, output = step_ref.partition(".")
        steps = {s.name: s for s in queries.step_runs(store, run.id)}
        if step_name not in steps:
            raise NotFoundError(
                f"run {run.id} has no step '{step_name}'", hint=f"steps: {sorted(steps)}"
            )
        outs = steps[step_name].outputs
        if not outs:
            raise NotFoundError(f"step '{step_name}' of run {run.id} has no stored output")
        if not output:
            if len(outs) > 1:
                raise UsageError(
                    f"step '{step_name}' has several outputs: {sorted(outs)}",
                    hint=f"name one: {run_ref}:{step_name}.{sorted(outs)[0]}",
                )
            output = next(iter(outs))
        if output not in outs:
            raise NotFoundError(
                f"step '{step_name}' has no output '{output}'", hint=f"outputs: {sorted(outs)}"
            )
        return outs[output], None
    is_hex = len(ref) >= 4 and all(c in "0123456789abcdef" for c in ref)
    if is_hex:
        try:
            return queries.find_artifact(store, ref).digest, None
        except NotFoundError:
            pass
    return None, queries.get_run(store, ref).id


def _node(store: MetadataStore, step: StepRunRecord, cache: dict[str, Any]) -> Node:
    run = cache.get(step.run_id)
    if run is None:
        run = cache[step.run_id] = queries.get_run(store, step.run_id)
    parts = step.key_parts or {}
    return Node(
        run_id=step.run_id,
        step=step.name,
        step_run_id=step.id,
        status=step.status,
        inputs=step.inputs,
        outputs=step.outputs,
        params=parts.get("params", {}),
        files=parts.get("files", {}),
        commit=run.git_commit,
        dirty=run.git_dirty,
    )


def producer(store: MetadataStore, digest: str) -> StepRunRecord | None:
    """The step run that first produced ``digest`` by executing (not by reusing a cache)."""
    edges = queries.artifact_edges(store, digest, t.step_outputs)
    for e in edges:
        if e["status"] == "succeeded":
            return next(s for s in queries.step_runs(store, e["run_id"]) if s.id == e["id"])
    if edges:
        e = edges[0]
        return next(s for s in queries.step_runs(store, e["run_id"]) if s.id == e["id"])
    return None


def upstream(store: MetadataStore, digest: str) -> Node | None:
    """The tree of step runs that produced ``digest``, down to its sources."""
    runs: dict[str, Any] = {}

    def build(d: str, depth: int) -> Node | None:
        step = producer(store, d)
        if step is None:
            return None
        node = _node(store, step, runs)
        if depth < MAX_DEPTH:
            children: dict[int, Node] = {}  # one node per producing step run
            for port, child_digest in step.inputs.items():
                child = build(child_digest, depth + 1)
                if child is None:
                    continue
                child = children.setdefault(child.step_run_id, child)
                child.via.append(port)
            node.upstream = list(children.values())
        return node

    return build(digest, 0)


def downstream(store: MetadataStore, digest: str) -> list[dict[str, Any]]:
    """Every step run that consumed ``digest``, then what consumed their outputs, and so on."""
    seen: set[int] = set()
    result: list[dict[str, Any]] = []
    frontier = [(digest, 0)]
    while frontier:
        d, depth = frontier.pop(0)
        for e in queries.artifact_edges(store, d, t.step_inputs):
            if e["id"] in seen:
                continue
            seen.add(e["id"])
            step = next(s for s in queries.step_runs(store, e["run_id"]) if s.id == e["id"])
            result.append(
                {
                    "run_id": e["run_id"],
                    "step": e["name"],
                    "input": e["port"],
                    "status": e["status"],
                    "depth": depth + 1,
                    "outputs": step.outputs,
                }
            )
            if depth < MAX_DEPTH:
                frontier += [(o, depth + 1) for o in step.outputs.values()]
    return result
