"""skops imported without its list of every scikit-learn estimator (``skops_io``): models still
load and predict the same, untrusted types are still refused, and a package's manifest lists
the same types whichever way skops was imported first.

Each check runs in a fresh interpreter, since how skops was imported lasts for the process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from conveyor.store.materializers import MaterializeContext, SkopsEstimator
from estimators import Clip

# Imported by sklearn.utils.all_estimators() (so by a plain ``import skops.io``), and by
# nothing that loading a linear or gradient-boosted model needs.
ALL_ESTIMATORS_ONLY = (
    "sklearn.gaussian_process",
    "sklearn.mixture",
    "sklearn.neural_network",
    "sklearn.semi_supervised",
)
TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


def run_python(code: str, *args: str) -> Any:
    """Run ``code`` in a fresh interpreter with ``args``; the JSON it prints last."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def save_model(model: Any, path: Path) -> Path:
    SkopsEstimator().save(model, path, MaterializeContext())
    return path


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y = (X["a"] + 0.5 * X["b"] - X["c"] > 0).astype(int).to_numpy()
    return X, y


def test_skops_io_skips_all_estimators_and_models_still_load(
    tmp_path: Path, frame: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = frame
    models = {
        "linear": LogisticRegression().fit(X, y),
        "boosted": HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(X, y),
    }
    for name, model in models.items():
        save_model(model, tmp_path / f"{name}.skops")
    X.to_parquet(tmp_path / "X.parquet")

    out = run_python(
        """
        import json, sys
        from pathlib import Path

        import pandas as pd
        import sklearn.utils
        import sklearn.utils.discovery

        from conveyor.store.materializers import MaterializeContext, SkopsEstimator, skops_io

        sio = skops_io()
        modules = sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)
        restored = sklearn.utils.all_estimators is sklearn.utils.discovery.all_estimators
        root = Path(sys.argv[1])
        X = pd.read_parquet(root / "X.parquet")
        predictions = {}
        for name in ("linear", "boosted"):
            model = SkopsEstimator().load(root / f"{name}.skops", {}, MaterializeContext())
            predictions[name] = model.predict_proba(X).tolist()
        modules_after = sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)
        print(json.dumps({
            "skops": sio.__name__,
            "modules": modules,
            "modules_after_load": modules_after,
            "restored": restored,
            "predictions": predictions,
        }))
        """,
        str(tmp_path),
        json.dumps(ALL_ESTIMATORS_ONLY),
    )
    assert out["skops"] == "skops.io"
    assert out["modules"] == []
    assert out["modules_after_load"] == []
    assert out["restored"] is True
    for name, model in models.items():
        np.testing.assert_array_equal(np.array(out["predictions"][name]), model.predict_proba(X))


def test_a_plain_skops_import_does_import_every_estimator() -> None:
    """The premise of the test above: without ``skops_io`` those modules are imported."""
    out = run_python(
        """
        import json, sys
        import skops.io
        print(json.dumps(sorted(m for m in json.loads(sys.argv[1]) if m in sys.modules)))
        """,
        json.dumps(ALL_ESTIMATORS_ONLY),
    )
    assert out == sorted(ALL_ESTIMATORS_ONLY)


MANIFEST_TYPES = """
    import json, sys
    from pathlib import Path

    {import_skops}
    from conveyor.registry.package import _untrusted_types

    import skops.io._trusted_types as defaults

    data = Path(sys.argv[1]).read_bytes()
    print(json.dumps({{
        "defaults": len(defaults.SKLEARN_ESTIMATOR_TYPE_NAMES),
        "types": _untrusted_types(data),
    }}))
"""


def test_manifest_types_do_not_depend_on_how_skops_was_imported(
    tmp_path: Path, frame: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = frame
    model = make_pipeline(
        StandardScaler(), HistGradientBoostingClassifier(max_iter=5, random_state=0)
    ).fit(X, y)
    path = save_model(model, tmp_path / "model.skops")

    plain = run_python(MANIFEST_TYPES.format(import_skops="import skops.io"), str(path))
    lean = run_python(
        MANIFEST_TYPES.format(
            import_skops="from conveyor.store.materializers import skops_io; skops_io()"
        ),
        str(path),
    )
    assert plain["defaults"] > 0
    assert lean["defaults"] == 0  # skops really was imported without its estimator list
    assert lean["types"] == plain["types"]
    assert TREE_PREDICTOR in plain["types"]  # one type skops does not trust by default
    assert "sklearn.pipeline.Pipeline" not in plain["types"]


def test_untrusted_types_are_still_refused_after_skops_io(tmp_path: Path) -> None:
    X = np.ones((4, 2))
    save_model(FunctionTransformer(func=eval).fit(X), tmp_path / "eval.skops")
    save_model(make_pipeline(Clip(limit=0.5), LogisticRegression()), tmp_path / "clip.skops")

    out = run_python(
        """
        import json, sys
        from pathlib import Path

        from conveyor.errors import TrustError
        from conveyor.store.materializers import MaterializeContext, SkopsEstimator, skops_io

        skops_io()
        refused = {}
        for name in ("eval", "clip"):
            try:
                SkopsEstimator().load(Path(sys.argv[1]) / f"{name}.skops", {}, MaterializeContext())
            except TrustError as exc:
                refused[name] = exc.message
        print(json.dumps(refused))
        """,
        str(tmp_path),
    )
    assert "builtins.eval" in out["eval"]
    assert f"{Clip.__module__}.Clip" in out["clip"]
