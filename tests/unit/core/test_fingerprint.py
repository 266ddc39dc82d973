"""Cache keys change exactly when a part changes, and `--explain` says which part."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from conveyor.core.fingerprint import CacheKeyParts, canonical_json, explain_change

D1, D2 = "1" * 64, "2" * 64

BASE = CacheKeyParts(
    code={"proj.steps.train": D1, "module:proj/features.py": D1},
    params={"n": 10, "lr": 0.1, "layers": [64, 32]},
    inputs={"data": D1},
    files={"data/raw.csv": D1},
    env={"python": "3.11.9", "conveyor": "0.1.0", "packages": {"numpy": "2.0.0"}},
    salt=None,
)

CHANGES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "code": (
        {"code": {**BASE.code, "proj.steps.train": D2}},
        ["code: 'proj.steps.train' changed"],
    ),
    "code added": (
        {"code": {**BASE.code, "proj.steps.helper": D1}},
        ["code: 'proj.steps.helper' added"],
    ),
    "param": (
        {"params": {**BASE.params, "n": 20}},
        ["params: 'n' changed (10 -> 20)"],
    ),
    "param list": (
        {"params": {**BASE.params, "layers": [64, 16]}},
        ["params: 'layers' changed ([64,32] -> [64,16])"],
    ),
    "param added": (
        {"params": {**BASE.params, "seed": 1}},
        ["params: 'seed' added (1)"],
    ),
    "param removed": (
        {"params": {"n": 10, "lr": 0.1}},
        ["params: 'layers' removed"],
    ),
    "input": (
        {"inputs": {"data": D2}},
        [f"inputs: 'data' changed ({D1[:12]} -> {D2[:12]})"],
    ),
    "file": (
        {"files": {"data/raw.csv": D2}},
        [f"files: 'data/raw.csv' changed ({D1[:12]} -> {D2[:12]})"],
    ),
    "python": (
        {"env": {**BASE.env, "python": "3.12.1"}},
        ["env: 'python' changed (3.11.9 -> 3.12.1)"],
    ),
    "package": (
        {"env": {**BASE.env, "packages": {"numpy": "2.1.0"}}},
        ["env: 'numpy' changed (2.0.0 -> 2.1.0)"],
    ),
    "package added": (
        {"env": {**BASE.env, "packages": {"numpy": "2.0.0", "pandas": "2.2.0"}}},
        ["env: 'pandas' added (2.2.0)"],
    ),
    "salt": ({"salt": "v2"}, ["salt: None -> 'v2'"]),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_each_part_changes_the_key_and_is_explained(change: str) -> None:
    fields, reasons = CHANGES[change]
    new = replace(BASE, **fields)
    assert new.key() != BASE.key()
    assert explain_change(BASE, new) == reasons


def test_equal_parts_give_equal_key_and_no_reason() -> None:
    same = CacheKeyParts(
        code=dict(reversed(list(BASE.code.items()))),
        params={"layers": [64, 32], "lr": 0.1, "n": 10},
        inputs=dict(BASE.inputs),
        files=dict(BASE.files),
        env={"packages": {"numpy": "2.0.0"}, "conveyor": "0.1.0", "python": "3.11.9"},
    )
    assert same.key() == BASE.key()
    assert explain_change(BASE, same) == []


def test_key_is_a_sha256_hex_digest() -> None:
    key = BASE.key()
    assert len(key) == 64
    int(key, 16)


def test_several_changes_are_all_reported() -> None:
    new = replace(BASE, params={**BASE.params, "n": 11}, inputs={"data": D2}, salt="x")
    reasons = explain_change(BASE, new)
    assert len(reasons) == 3
    assert {r.split(":")[0] for r in reasons} == {"params", "inputs", "salt"}


def test_first_run_is_explained() -> None:
    assert explain_change(None, BASE) == ["never ran before"]


def test_json_round_trip_keeps_the_key() -> None:
    data = BASE.to_json()
    assert canonical_json(data) == canonical_json(BASE.to_json())
    back = CacheKeyParts.from_json(data)
    assert back == BASE
    assert back.key() == BASE.key()


def test_canonical_json_is_order_independent() -> None:
    assert canonical_json({"b": 1, "a": [1, {"y": 2, "x": 1}]}) == '{"a":[1,{"x":1,"y":2}],"b":1}'


@pytest.mark.parametrize(("old", "new"), [(1, 1.0), (True, 1)], ids=["int-float", "bool-int"])
def test_every_key_change_has_a_reason(old: Any, new: Any) -> None:
    before = replace(BASE, params={**BASE.params, "extra": old})
    after = replace(BASE, params={**BASE.params, "extra": new})
    assert before.key() != after.key()
    assert explain_change(before, after) != []
