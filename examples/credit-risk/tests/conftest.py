"""Make the example project importable as it is when Conveyor runs it: ``import credit_risk``."""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_DIR = str(Path(__file__).resolve().parents[1])
if PROJECT_DIR not in sys.path:
    sys.path.insert(0, PROJECT_DIR)
