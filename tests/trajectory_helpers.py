"""Shared pieces of the trajectory tests: a small synthetic model and jiggled trajectories."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.io import write

from ase_mlnmr.nmr_model import NMRModel

from conftest import random_structure
from synthetic_data import synthetic_dataset

MODEL_CONFIG = {
    "descriptor": {"r_cut": 4.5, "n_max": 4, "l_max": 3, "sigma": 0.4},
    "ms_iso": {"n_inducing": 150},
    "ood": {"n_inducing": 100},
    "calibration": {"Si": {"slope": 1.0, "sigma_ref": 320.0}},
}


def small_model() -> NMRModel:
    return NMRModel.train(synthetic_dataset(n_structures=6, n_atoms=24, seed=10), MODEL_CONFIG, progress=False)


def jiggled_frames(n_frames: int, n_atoms: int = 24, amplitude: float = 0.08, tau_frames: float = 3.0, seed: int = 4):
    """Frames of a random Si/O packing whose atoms move as independent OU processes about
    their sites (correlation time ``tau_frames`` frames, rms ``amplitude`` Å per axis)."""
    base = random_structure(n_atoms, symbols=("Si", "O", "O"), seed=seed, min_distance=1.6)
    rng = np.random.default_rng(seed)
    a = np.exp(-1.0 / tau_frames)
    displacement = rng.normal(size=(n_atoms, 3)) * amplitude
    frames = []
    for _ in range(n_frames):
        atoms = base.copy()
        atoms.positions += displacement
        frames.append(atoms)
        displacement = a * displacement + np.sqrt(1 - a * a) * amplitude * rng.normal(size=(n_atoms, 3))
    return frames


def write_dump(path: Path, frames, steps, type_of: dict[str, int], columns: dict[str, np.ndarray] | None = None) -> Path:
    """LAMMPS ``dump custom`` text (orthogonal or tilted box), positions with 17 digits,
    optional extra per-atom columns ``columns[name]`` of shape (n_frames, n_atoms)."""
    lines = []
    for k, (atoms, step) in enumerate(zip(frames, steps)):
        cell = atoms.cell.array
        xy, xz, yz = cell[1, 0], cell[2, 0], cell[2, 1]
        lo = np.zeros(3)
        hi = np.array([cell[0, 0], cell[1, 1], cell[2, 2]])
        bounds = [(lo[0] + min(0, xy, xz, xy + xz), hi[0] + max(0, xy, xz, xy + xz)),
                  (lo[1] + min(0, yz), hi[1] + max(0, yz)), (lo[2], hi[2])]
        lines += ["ITEM: TIMESTEP", str(step), "ITEM: NUMBER OF ATOMS", str(len(atoms)),
                  "ITEM: BOX BOUNDS xy xz yz pp pp pp"]
        lines += [f"{float(b[0])!r} {float(b[1])!r} {float(t)!r}" for b, t in zip(bounds, (xy, xz, yz))]
        names = list(columns or {})
        lines.append("ITEM: ATOMS id type x y z" + "".join(f" {n}" for n in names))
        for i in range(len(atoms))[::-1]:
            extra = "".join(f" {float(columns[n][k, i])!r}" for n in names)
            x, y, z = (float(v) for v in atoms.positions[i])
            lines.append(f"{i + 1} {type_of[atoms[i].symbol]} {x!r} {y!r} {z!r}{extra}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_extxyz(path: Path, frames) -> Path:
    write(path, frames, format="extxyz")
    return path
