"""Synthetic tensor data from known, physically shaped generating functions.

σ_i = 300 − Σ_j 25 exp(−r²/2) − Σ_j h(r)(3 r̂r̂ᵀ − 1)/2 ppm and a point-charge-like EFG
V_i = Σ_j q_j fc(r)(3 r̂r̂ᵀ − 1)/r³ (a.u.-sized numbers): smooth, rotation-covariant
functions of the environment that the models must learn, not copies of our features.
"""
from __future__ import annotations

import numpy as np

from ase_mlnmr.training.dataset import TensorDataset
from ase_mlnmr.core.neighbours import neighbour_list_from_atoms

from conftest import random_structure

CHARGES = {"Si": 2.4, "O": -1.2, "Na": 0.6}


def generating_tensors(atoms, r_cut: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """(ms, efg) per atom, each (N, 3, 3)."""
    nl = neighbour_list_from_atoms(atoms, r_cut)
    n = len(atoms)
    ms = np.tile(300.0 * np.eye(3), (n, 1, 1))
    efg = np.zeros((n, 3, 3))
    symbols = atoms.get_chemical_symbols()
    for k, centre in enumerate(nl.centres):
        for p in range(nl.offsets[k], nl.offsets[k + 1]):
            vector = nl.vectors[p]
            r = np.linalg.norm(vector)
            unit = vector / r
            shape = 1.5 * np.outer(unit, unit) - 0.5 * np.eye(3)
            fc = 0.5 * (np.cos(np.pi * r / r_cut) + 1)
            ms[centre] -= 25.0 * np.exp(-r * r / 2.0) * np.eye(3) + 40.0 * np.exp(-((r - 1.7) ** 2)) * shape
            efg[centre] += CHARGES[symbols[nl.neighbours[p]]] * fc * 2.0 * shape / r**3
    return ms, efg


def synthetic_dataset(n_structures: int = 12, n_atoms: int = 30, seed: int = 0,
                      symbols=("Si", "O", "O"), mask_species: str | None = None) -> TensorDataset:
    structures, ms_list, efg_list, masks = [], [], [], []
    for s in range(n_structures):
        atoms = random_structure(n_atoms, symbols=symbols, seed=seed + s, min_distance=1.5)
        ms, efg = generating_tensors(atoms)
        structures.append(atoms)
        ms_list.append(ms)
        efg_list.append(efg)
        mask = np.ones(len(atoms), bool)
        if mask_species:
            mask &= np.array(atoms.get_chemical_symbols()) != mask_species
        masks.append(mask)
    return TensorDataset(
        structures=structures,
        tensors={"ms": ms_list, "efg": efg_list},
        masks={"ms": masks, "efg": [m.copy() for m in masks]},
        sources=[f"synthetic-{seed + s}" for s in range(n_structures)],
        frames=list(range(n_structures)),
    )


def antisymmetric_shielding(atoms, r_cut: float = 5.0) -> np.ndarray:
    """A pseudovector field v_i = Σ_{j∈Si, k∈O} f(r_j) f(r_k) r̂_j × r̂_k (ppm) as the
    antisymmetric shielding part A_i (v_x = A_yz, ...): unchanged by inversion."""
    nl = neighbour_list_from_atoms(atoms, r_cut)
    symbols = np.array(atoms.get_chemical_symbols())
    out = np.zeros((len(atoms), 3, 3))
    for k, centre in enumerate(nl.centres):
        rows = slice(nl.offsets[k], nl.offsets[k + 1])
        vectors, kinds = nl.vectors[rows], symbols[nl.neighbours[rows]]
        r = np.linalg.norm(vectors, axis=1)
        weight = 3.0 * np.exp(-((r - 2.0) ** 2)) * 0.5 * (np.cos(np.pi * r / r_cut) + 1)
        units = vectors / r[:, None]
        v = np.zeros(3)
        for a in np.flatnonzero(kinds == "Si"):
            for b in np.flatnonzero(kinds == "O"):
                v += weight[a] * weight[b] * np.cross(units[a], units[b])
        out[centre] = np.array([[0, v[2], -v[1]], [-v[2], 0, v[0]], [v[1], -v[0], 0]])
    return out


def with_antisymmetric_shielding(data: TensorDataset) -> TensorDataset:
    """``data`` with :func:`antisymmetric_shielding` added to every shielding tensor and
    marked as not symmetrised, so that ``ms_antisym`` (σ(1)) models can be trained."""
    data.symmetrised_shielding = False
    for index, atoms in enumerate(data.structures):
        data.tensors["ms"][index] = data.tensors["ms"][index] + antisymmetric_shielding(atoms)
    return data
