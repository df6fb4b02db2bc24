"""Embedded example data (MIT-licensed ``mp_al27``) for the demo and integration tests."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from .training.dataset import TensorDataset, read_tensor_dataset

__all__ = ["mp_al27_path", "load_mp_al27"]


def mp_al27_path() -> Path:
    """Path of the embedded ``mp_al27.extxyz`` (ms in ppm, efg in V/Å²)."""
    return Path(str(resources.files("ase_mlnmr") / "data" / "mp_al27" / "mp_al27.extxyz"))


def load_mp_al27(oxides_only: bool = True) -> TensorDataset:
    """The 20 Al-bearing crystals; with ``oxides_only`` the 13 that contain oxygen.

    The others are intermetallics whose VASP shieldings (|σ| up to 1e4 ppm, Knight shifts
    not included) are not meaningful for training.
    """
    data = read_tensor_dataset(mp_al27_path(), ms_units="ppm", efg_units="V/A^2")
    if not oxides_only:
        return data
    keep = [i for i, atoms in enumerate(data.structures) if "O" in atoms.get_chemical_symbols()]
    return data.subset(np.array(keep))
