"""Where the benchmarks find the shared data and references."""
from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    """``$ASE_MLNMR_SHARED``, or ``shared/`` beside the repository."""
    return Path(os.environ.get("ASE_MLNMR_SHARED", Path(__file__).resolve().parents[2] / "shared"))
