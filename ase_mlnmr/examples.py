"""Embedded example data (MIT-licensed ``mp_al27``) for the demo and integration tests.

The ``ms`` numbers of ``mp_al27`` come from VASP (Materials Project NMR workflow), whose
LCHIMAG output is a chemical-shift-like tensor δ_ij = ∂B^ind_i/∂B^ext_j = −σ_ij without
the core contribution (VASP wiki, LCHIMAG, https://vasp.at/wiki/LCHIMAG). The data show
it: Al isotropic values rise as coordination falls (AlO4 266–280, AlO5 236, AlO6
211–253), as measured 27Al shifts do. They are read with ``ms_convention='shift'``, so
the dataset holds σ − σ_core(Al) (ppm, negative numbers), never the raw −σ.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from .training.dataset import TensorDataset, read_tensor_dataset

__all__ = ["mp_al27_path", "load_mp_al27", "mp_al27_al_calibration"]

#: The 27Al primary shift reference is the Al(H2O)6^3+ ion (IUPAC 2001, Harris et al.,
#: https://doi.org/10.1351/pac200173111795); AlCl3·6H2O holds the same ion.
AL_REFERENCE_FORMULA = "H24Al2Cl6O12"


def mp_al27_path() -> Path:
    """Path of the embedded ``mp_al27.extxyz`` (ms: VASP's −σ in ppm, efg in V/Å²)."""
    return Path(str(resources.files("ase_mlnmr") / "data" / "mp_al27" / "mp_al27.extxyz"))


def load_mp_al27(oxides_only: bool = True) -> TensorDataset:
    """The 20 Al-bearing crystals; with ``oxides_only`` the 13 that contain oxygen.

    Shieldings are read as VASP's shift convention (``ms_convention='shift'``), so the
    tensors are σ − σ_core (ppm). The others are intermetallics whose VASP shieldings
    (|σ| up to 1e4 ppm, Knight shifts not included) are not meaningful for training.
    """
    data = read_tensor_dataset(mp_al27_path(), ms_units="ppm", efg_units="V/A^2", ms_convention="shift")
    if not oxides_only:
        return data
    keep = [i for i, atoms in enumerate(data.structures) if "O" in atoms.get_chemical_symbols()]
    return data.subset(np.array(keep))


def mp_al27_al_calibration(data: TensorDataset | None = None) -> dict[str, float]:
    """27Al shift calibration ``δiso = −a (σiso − σref)`` for models trained on ``mp_al27``.

    a = 1 (the slope of exact referencing; no fit, too few crystals with measured shifts),
    σref = the σiso of AlCl3·6H2O in this set (ppm, core excluded), whose Al(H2O)6^3+
    octahedron is the 27Al primary reference (δ = 0 ppm). With it the set's AlO4 sites lie
    at δiso ≈ 56–69 ppm, AlO5 at 25 ppm and AlO6 at 0–43 ppm.
    """
    data = load_mp_al27() if data is None else data
    for atoms, tensors, mask in zip(data.structures, data.tensors["ms"], data.masks["ms"]):
        if atoms.get_chemical_formula() == AL_REFERENCE_FORMULA:
            al = mask & (atoms.numbers == 13)
            sigma_ref = float(np.trace(tensors[al], axis1=1, axis2=2).mean() / 3)
            return {"slope": 1.0, "sigma_ref": sigma_ref}
    raise ValueError(f"the data hold no {AL_REFERENCE_FORMULA} (AlCl3·6H2O) to reference 27Al shifts on")
