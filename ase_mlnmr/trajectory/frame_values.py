"""Per-frame, per-atom NMR values: from the model (``NMRModel.predict``) or from the per-atom
columns a dump of the LAMMPS fix carries.

Units: shielding σ, σiso, δiso in ppm; EFG V and its λ = 2 components in atomic units;
CQ in MHz (for the element's quadrupolar isotope); η dimensionless. Committee models
(docs/uncertainty.md) add the calibrated spreads of σiso (ppm) and |CQ| (MHz) and the
Vzz-axis flag; NaN where the element's model has no committee.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..core.spherical_tensors import l2_to_symmetric_traceless, symmetric_traceless_to_l2
from ..nmr.efg import quadrupolar_parameters
from .readers import Frame

__all__ = ["FrameValues", "predict_frame", "quadrupolar_values", "values_from_columns"]


@dataclass
class FrameValues:
    """NMR values of one frame's atoms (id order); NaN where an atom has no such value."""

    index: int
    ids: np.ndarray
    symbols: list[str]
    efg: np.ndarray        # (N, 3, 3) a.u.
    ms: np.ndarray         # (N, 3, 3) ppm (σiso·1 only when read from fix columns)
    ms_iso: np.ndarray     # (N,) ppm
    delta_iso: np.ndarray  # (N,) ppm
    ood: np.ndarray        # (N,)
    cq: np.ndarray         # (N,) MHz
    eta: np.ndarray        # (N,)
    vzz: np.ndarray        # (N,) a.u.
    ms_iso_std: np.ndarray  # (N,) ppm, committee spread of σiso
    cq_std: np.ndarray     # (N,) MHz, committee spread of |CQ|
    vzz_axis_flag: np.ndarray  # (N,) 1.0 where the members disagree on the Vzz axis

    @property
    def efg_l2(self) -> np.ndarray:
        """(N, 5) λ = 2 spherical components of V (a.u.); Σ_m V_m V'_m = V:V'."""
        return symmetric_traceless_to_l2(self.efg)

    @property
    def ms_l2(self) -> np.ndarray:
        """(N, 5) σ(2) components of the symmetric traceless shielding part (ppm)."""
        return symmetric_traceless_to_l2(0.5 * (self.ms + np.swapaxes(self.ms, 1, 2)))


def quadrupolar_values(efg: np.ndarray, symbols: list[str], isotopes: Mapping[str, str] | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CQ (MHz), η, Vzz (a.u.) where V is finite and the element has a quadrupolar isotope."""
    n = len(symbols)
    cq, eta, vzz = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    have = np.flatnonzero(np.all(np.isfinite(efg.reshape(n, 9)), axis=1))
    if len(have):
        values = quadrupolar_parameters(efg[have], [symbols[i] for i in have], units="au",
                                        isotopes=dict(isotopes or {}) or None, missing="nan")
        cq[have], eta[have], vzz[have] = values.cq, values.eta, values.vzz
    return cq, eta, vzz


def predict_frame(model, frame: Frame, unknown_species: str = "raise") -> FrameValues:
    """Values of one frame through the model's public ``NMRModel.predict``."""
    prediction = model.predict(frame.atoms, unknown_species=unknown_species)
    symbols = frame.atoms.get_chemical_symbols()
    efg = np.where(prediction.efg_mask[:, None, None], prediction.efg, np.nan)
    cq, eta, vzz = quadrupolar_values(efg, symbols, model.isotopes)
    nan = np.full(len(symbols), np.nan)
    committee = {name: nan if getattr(prediction, name) is None else getattr(prediction, name)
                 for name in ("ms_iso_std", "cq_std", "vzz_axis_flag")}
    return FrameValues(
        index=frame.index, ids=frame.ids, symbols=symbols, efg=efg,
        ms=np.where(prediction.ms_mask[:, None, None], prediction.ms, np.nan),
        ms_iso=np.where(prediction.ms_mask, prediction.ms_iso, np.nan),
        delta_iso=np.where(prediction.delta_mask, prediction.delta_iso, np.nan),
        ood=np.where(prediction.ood_mask, prediction.ood, np.nan), cq=cq, eta=eta, vzz=vzz, **committee)


def values_from_columns(frame: Frame, isotopes: Mapping[str, str] | None = None) -> FrameValues:
    """Values of one frame from the LAMMPS fix's per-atom columns (:data:`readers.NMR_COLUMNS`):
    V from its five λ = 2 components, σ as σiso·1 (the fix dumps no σ(2)); CQ and η are
    recomputed from V (the same conventions as the fix's own columns); the committee columns
    19–21 are taken as they are (NaN when the dump lacks them)."""
    if frame.nmr is None:
        raise ValueError(f"frame {frame.index} carries no NMR columns (read the dump with nmr_prefix)")
    n = len(frame.ids)
    nan = np.full(n, np.nan)
    components = np.column_stack([frame.nmr[f"efg_l2_m{m}"] for m in (-2, -1, 0, 1, 2)])
    efg = l2_to_symmetric_traceless(components)
    ms_iso = frame.nmr.get("ms_iso", nan)
    symbols = frame.atoms.get_chemical_symbols()
    cq, eta, vzz = quadrupolar_values(efg, symbols, isotopes)
    return FrameValues(index=frame.index, ids=frame.ids, symbols=symbols, efg=efg,
                       ms=ms_iso[:, None, None] * np.eye(3), ms_iso=ms_iso,
                       delta_iso=frame.nmr.get("delta_iso", nan), ood=frame.nmr.get("ood", nan),
                       cq=cq, eta=eta, vzz=vzz, ms_iso_std=frame.nmr.get("ms_iso_std", nan),
                       cq_std=frame.nmr.get("cq_std", nan), vzz_axis_flag=frame.nmr.get("vzz_axis_flag", nan))
