"""Load a package in a fresh interpreter and predict its golden inputs; print one JSON object.

    python infra_worker.py PACKAGE_DIR [--trust TYPE ...]

A standalone script: it imports the standard library, numpy, pandas, skops and scikit-learn
only (not Conveyor), so it runs in any environment built from a package's requirements.txt.
The model is loaded with skops, trusting only the types that both the package's manifest
declares and Conveyor's allowlist accepts (scikit-learn classes, numpy's dtype, and the types
given with ``--trust``). The JSON says what failed: a missing distribution, an untrusted type,
or an exception; and on success carries the predictions, load time and peak memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

# Import names whose distribution is named otherwise.
DISTRIBUTIONS = {"sklearn": "scikit-learn", "skops": "skops", "yaml": "PyYAML"}


def requirement_versions(package: Path, manifest: dict[str, Any]) -> dict[str, str | None]:
    """The installed version of each distribution pinned in requirements.txt (None: missing)."""
    found: dict[str, str | None] = {}
    text = (package / manifest["requirements"]).read_text(encoding="utf-8")
    for line in text.splitlines():
        name = line.partition("==")[0].strip()
        if name and not name.startswith("#"):
            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                found[name] = None
    return found


def is_allowed(name: str, extra: list[str]) -> bool:
    sklearn_class = name.startswith("sklearn.") and name.rpartition(".")[2][:1].isupper()
    return sklearn_class or name == "numpy.dtype" or name in extra


def golden_frame(doc: dict[str, Any]) -> Any:
    import pandas as pd

    frame = pd.DataFrame(doc["data"], columns=doc["columns"])
    for column, dtype in (doc.get("dtypes") or {}).items():
        if str(dtype).startswith("datetime64"):
            frame[column] = pd.to_datetime(frame[column], format="ISO8601").astype(dtype)
        else:
            frame[column] = frame[column].astype(dtype)
    return frame


def peak_rss_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def run(package: Path, extra_trust: list[str], report: dict[str, Any]) -> None:
    manifest = json.loads((package / "conveyor.json").read_text(encoding="utf-8"))
    report["versions"] = requirement_versions(package, manifest)
    report["stage"] = "import"
    start = time.perf_counter()
    # skops is imported as usual, with its default trusted types: the manifest's
    # skops_trusted_types list exactly the types of the model that these leave out.
    try:
        import numpy as np
        import pandas  # noqa: F401 - a package's inputs are DataFrames
        import sklearn  # noqa: F401
        import skops.io as sio
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        report["error"] = {
            "kind": "missing",
            "module": top,
            "distribution": DISTRIBUTIONS.get(top, top),
            "message": str(exc),
        }
        return
    report["import_s"] = time.perf_counter() - start

    report["stage"] = "load"
    start = time.perf_counter()
    model_info = manifest["model"]
    data = (package / model_info["path"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != model_info["digest"]:
        report["error"] = {
            "kind": "integrity",
            "message": "the model file does not match its digest",
        }
        return
    declared = set(model_info.get("skops_trusted_types") or [])
    untrusted = list(sio.get_untrusted_types(data=data))
    refused = sorted(t for t in untrusted if t not in declared or not is_allowed(t, extra_trust))
    if refused:
        report["error"] = {
            "kind": "untrusted",
            "types": refused,
            "message": f"the model uses types that are not trusted: {', '.join(refused)}",
        }
        return
    model = sio.loads(data, trusted=untrusted)
    report["load_s"] = time.perf_counter() - start

    report["stage"] = "predict"
    golden = manifest["golden"]
    frame = golden_frame(json.loads((package / golden["inputs"]).read_text(encoding="utf-8")))
    names = [str(c) for c in getattr(model, "feature_names_in_", [])]
    report["feature_names"] = names
    start = time.perf_counter()
    output = getattr(model, model_info["predict"])(frame[names] if names else frame)
    report["predict_s"] = time.perf_counter() - start
    report["predictions"] = np.asarray(output).tolist()
    report["stage"] = "done"
    report["ok"] = True


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    package = Path(argv[0])
    extra = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--trust"]
    report: dict[str, Any] = {
        "ok": False,
        "stage": "start",
        "python": platform.python_version(),
        "executable": sys.executable,
        "pid": os.getpid(),
    }
    try:
        run(package, extra, report)
    except Exception as exc:  # noqa: BLE001 - every failure is reported as data, in JSON
        report["error"] = {"kind": "exception", "message": f"{type(exc).__name__}: {exc}"}
    report["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
