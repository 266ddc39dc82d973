"""The cache key of one step in one run, from its code, params, inputs, files and environment."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.core.fingerprint import CacheKeyParts, canonical_json, sha256_text
from conveyor.core.pipeline import Invocation
from conveyor.core.records import ArtifactInfo
from conveyor.engine.closure import ClosureHasher, environment_lock
from conveyor.errors import DefinitionError
from conveyor.store.blobs import path_digest


def step_key_parts(
    hasher: ClosureHasher,
    root: Path,
    inv: Invocation,
    inputs: Mapping[str, ArtifactInfo],
    params: Mapping[str, Any],
) -> CacheKeyParts:
    sd = inv.step
    if sd.func is not None:
        code, externals = hasher.step_code(sd.func)
    else:
        code, externals = {"cmd": sha256_text(canonical_json(list(sd.cmd or ())))}, frozenset()
    if sd.contracts:
        code = {
            **code,
            "contracts": sha256_text(
                canonical_json({k: c.to_json() for k, c in sorted(sd.contracts.items())})
            ),
        }
    files: dict[str, str] = {}
    for dep in sd.deps:
        path = root / dep
        if not path.exists():
            raise DefinitionError(
                f"step '{inv.name}' declares it reads '{dep}', which does not exist",
                hint=f"create it, or remove it from the step's deps ({sd.location})",
            )
        files[dep] = path_digest(path)
    for name in sd.file_params:
        rel = params.get(name)
        if rel:
            path = root / str(rel)
            if not path.is_file():
                raise DefinitionError(
                    f"param '{inv.name}.{name}' names the file '{rel}', which does not exist",
                    hint="give a path relative to the project directory",
                )
            files[str(rel)] = path_digest(path)
    for contract in sd.contracts.values():
        if contract.schema:
            path = root / contract.schema
            if not path.is_file():
                raise DefinitionError(
                    f"the contract of output '{contract.output}' of step '{inv.name}' names "
                    f"the schema '{contract.schema}', which does not exist",
                    hint=f"infer one with 'conveyor data schema infer DATA -o {contract.schema}'",
                )
            files[contract.schema] = path_digest(path)
    return CacheKeyParts(
        code=code,
        params=dict(params),
        inputs={k: v.digest for k, v in inputs.items()},
        files=files,
        env=environment_lock(externals),
        salt=sd.salt,
    )
