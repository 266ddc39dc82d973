"""Compile a scikit-learn model to ONNX, serve it with onnxruntime, and prove the two agree.

The ONNX form is an optimisation, never a different model: :func:`prove_equivalence` compares
both runtimes row by row, and only a model whose every check passes (:func:`equivalent`) may
be served by onnxruntime (DESIGN.md section 6, infra validation).

Inputs. A model that starts with a ``ColumnTransformer`` gets **one ONNX input per column**,
named after the column (float32, int64 or string): skl2onnx selects the transformer's columns
by input name, and text cannot share a float tensor with numbers. Any other model (a plain
estimator, or a Pipeline of numeric steps) gets **one float32 tensor** ``X`` of shape
``(rows, columns)`` in the model's column order: one conversion and one input per call, the
cheapest path for single-row serving. Either way :class:`OnnxModel` takes a DataFrame and
builds the inputs itself, selecting columns by name; the layout and the columns are stored in
the ONNX file's metadata. A missing text value is fed as the string ``"nan"``, which is how
skl2onnx writes a ``nan`` category of a OneHotEncoder.

skl2onnx and onnxruntime are the optional extra ``onnx`` (``pip install 'conveyor-ml[onnx]'``)
and are imported only when a function here needs them.

The three parts are modules of their own, and their public names are importable from here:
:mod:`~conveyor.registry.onnx_compile` (:func:`compile_onnx`),
:mod:`~conveyor.registry.onnx_model` (:class:`OnnxModel`) and
:mod:`~conveyor.registry.onnx_equivalence` (:func:`prove_equivalence`, :func:`equivalent`).
"""

from conveyor.registry.onnx_compile import (
    CONVERT_ERRORS,
    PROTOBUF_BOOL,
    OnnxUnsupported,
    compile_onnx,
)
from conveyor.registry.onnx_equivalence import (
    DEFAULT_TOLERANCE,
    PROBE_ROWS,
    WORST_ROWS,
    Predict,
    equivalent,
    prove_equivalence,
)
from conveyor.registry.onnx_model import INSTALL_HINT, META, ORT_ERRORS, Kind, OnnxModel

__all__ = [
    "CONVERT_ERRORS",
    "DEFAULT_TOLERANCE",
    "INSTALL_HINT",
    "META",
    "ORT_ERRORS",
    "PROBE_ROWS",
    "PROTOBUF_BOOL",
    "WORST_ROWS",
    "Kind",
    "OnnxModel",
    "OnnxUnsupported",
    "Predict",
    "compile_onnx",
    "equivalent",
    "prove_equivalence",
]
