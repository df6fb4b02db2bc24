"""Shared fixtures: random structures and the location of the shared data folder."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms


def shared_dir() -> Path:
    """``../shared`` beside the repository (or $ASE_MLNMR_SHARED)."""
    return Path(os.environ.get("ASE_MLNMR_SHARED", Path(__file__).resolve().parents[2] / "shared"))


@pytest.fixture
def shared_data() -> Path:
    path = shared_dir() / "data"
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent")
    return path


def random_structure(
    n_atoms: int,
    symbols: tuple[str, ...] = ("Si", "O", "Na"),
    cell: np.ndarray | None = None,
    pbc=True,
    min_distance: float = 1.4,
    seed: int = 0,
) -> Atoms:
    """Random packing with a minimum distance (Å) in a given (default triclinic) cell."""
    rng = np.random.default_rng(seed)
    if cell is None:
        cell = np.array([[9.0, 0.0, 0.0], [2.0, 8.5, 0.0], [1.0, -1.5, 9.5]])
    cell = np.asarray(cell, dtype=float)
    atoms = Atoms(cell=cell, pbc=pbc)
    positions: list[np.ndarray] = []
    attempts = 0
    while len(positions) < n_atoms:
        attempts += 1
        if attempts > 100000:
            raise RuntimeError("could not place atoms")
        candidate = rng.random(3) @ cell
        if positions:
            trial = Atoms(positions=np.vstack(positions + [candidate]), cell=cell, pbc=pbc)
            distances = trial.get_distances(len(positions), range(len(positions)), mic=bool(np.any(pbc)))
            if distances.min() < min_distance:
                continue
        positions.append(candidate)
    symbols_list = [symbols[i % len(symbols)] for i in range(n_atoms)]
    return Atoms(symbols_list, positions=np.array(positions), cell=cell, pbc=pbc)


def random_rotation(seed: int) -> np.ndarray:
    """Uniform random proper rotation matrix (det +1)."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
