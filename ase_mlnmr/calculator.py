"""ASE property provider: :class:`NMRCalculator` and :func:`attach_nmr_tensors`.

Per-atom properties, in ASE's magres conventions:

==============  ===========  ===============================================
name            shape        meaning
==============  ===========  ===============================================
``ms``          (N, 3, 3)    magnetic shielding tensor σ, ppm
``ms_iso``      (N,)         σiso = tr(σ)/3, ppm
``delta_iso``   (N,)         δiso = −a(σiso − σref), ppm (calibrated elements)
``efg``         (N, 3, 3)    electric field gradient V, atomic units
``cq``          (N,)         CQ = eQVzz/h, MHz, for the element's quadrupolar isotope
``eta_q``       (N,)         EFG asymmetry η = (Vxx − Vyy)/Vzz
``ms_zeta``     (N,)         Haeberlen reduced anisotropy ζ of σ(2), ppm
``ms_eta``      (N,)         Haeberlen asymmetry η of σ(2)
``ood``         (N,)         out-of-domain score in [0, 1]: percentile of the Nyström
                             residual among held-out training residuals (docs/models.md)
``ood_residual`` (N,)        the Nyström residual itself, in [0, 1]
``ms_iso_std``  (N,)         committee uncertainty of σiso, ppm (docs/uncertainty.md)
``ms_aniso_std`` (N, 5)      committee uncertainty of the σ(2) spherical components, ppm
``ms_antisym_std`` (N, 3)    committee uncertainty of σ(1), components (v_y, v_z, v_x) as
                             ``antisymmetric_to_vector``, ppm
``efg_std``     (N, 5)       committee uncertainty of the V spherical components, a.u.
``cq_std``      (N,)         committee uncertainty of |CQ|, MHz
``pq_std``      (N,)         committee uncertainty of PQ = |CQ|(1 + η²/3)^½, MHz
``vzz_axis_flag`` (N,)       1.0 where the committee members disagree on the Vzz axis
                             (> 45°: η and the sign of CQ unstable), else 0.0
==============  ===========  ===============================================

The ``*_std`` entries (the committee members' standard deviation through the calibration
fitted at training: α × std, or sqrt((a s^(b−1) std)² + c²) for ``"power"``) exist only for
models trained with a committee.

A model with σ(2) but no σiso gives ``ms_zeta`` and ``ms_eta`` without ``ms``.

Atoms the model does not predict (elements it has no model for, with
``unknown_species='skip'``; or CQ of a nucleus without quadrupole moment) carry NaN in
these arrays. :func:`attach_nmr_tensors` never stores NaN: it leaves such atoms out of
``atoms.arrays`` the way ASE's own magres reader does (``None`` entries), so that
``ase.io.write('x.magres', atoms)`` omits them from the magres blocks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, CalculatorSetupError, all_changes

from .nmr_model import NMRModel, NMRPrediction

__all__ = ["NMRCalculator", "attach_nmr_tensors", "store_magres_tensors", "prediction_table", "write_extxyz_arrays"]

MAGRES_UNITS = {"ms": "ppm", "efg": "au"}


class NMRCalculator(Calculator):
    """Machine-learned NMR tensors as an ASE calculator.

    Parameters
    ----------
    model : an :class:`NMRModel` or the path of a model file
    unknown_species : ``'raise'`` (default) for atoms of elements without a model, or
        ``'skip'`` to leave them unpredicted (NaN in the results)
    isotopes : per element, the isotope CQ refers to (default: the model's, then the
        usual quadrupolar isotope, e.g. 27Al, 17O, 23Na)

    Results are cached by ASE: positions, cell, pbc or numbers changing trigger a new
    prediction (``check_state``); tensors stored on ``atoms.arrays`` do not. The compiled
    evaluator is built on the first call and kept (``model.evaluator``).
    """

    implemented_properties = ["ms", "ms_iso", "delta_iso", "efg", "cq", "eta_q", "ms_zeta", "ms_eta", "ood",
                              "ood_residual", "ms_iso_std", "ms_aniso_std", "ms_antisym_std", "efg_std", "cq_std",
                              "pq_std", "vzz_axis_flag"]
    default_parameters: dict[str, Any] = {"unknown_species": "raise", "isotopes": None}
    nolabel = True

    def __init__(self, model: NMRModel | str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(model, (str, Path)):
            model = NMRModel.load(model)
        if not isinstance(model, NMRModel):
            raise CalculatorSetupError(f"model must be an NMRModel or a model file path, got {type(model).__name__}")
        if self.parameters.unknown_species not in ("raise", "skip"):
            raise CalculatorSetupError(
                f"unknown_species must be 'raise' or 'skip', got {self.parameters.unknown_species!r}")
        self.model = model
        self.last_prediction: NMRPrediction | None = None

    def calculate(self, atoms: Atoms | None = None, properties=("ms",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        prediction = self.model.predict(self.atoms, unknown_species=self.parameters.unknown_species,
                                        isotopes=self.parameters.isotopes)
        self.last_prediction = prediction
        if prediction.ms_mask.any():
            self.results["ms"] = prediction.ms
            self.results["ms_iso"] = prediction.ms_iso
        if prediction.delta_mask.any():
            self.results["delta_iso"] = prediction.delta_iso
        if prediction.efg_mask.any():
            self.results["efg"] = prediction.efg
            self.results["cq"], self.results["eta_q"] = prediction.cq, prediction.eta_q
        if prediction.aniso_mask.any():
            self.results["ms_zeta"], self.results["ms_eta"] = prediction.ms_zeta, prediction.ms_eta
        if prediction.ood_mask.any():
            self.results["ood"] = prediction.ood
            self.results["ood_residual"] = prediction.ood_residual
        for name in ("ms_iso_std", "ms_aniso_std", "ms_antisym_std"):
            if np.isfinite(getattr(prediction, name)).any():
                self.results[name] = getattr(prediction, name)
        if np.isfinite(prediction.efg_std).any():
            self.results["efg_std"] = prediction.efg_std
            self.results["cq_std"], self.results["pq_std"] = prediction.cq_std, prediction.pq_std
            self.results["vzz_axis_flag"] = prediction.vzz_axis_flag


def store_magres_tensors(atoms: Atoms, tensors: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Store per-atom 3×3 tensors as ``atoms.arrays[name]`` with ``info['magres_units']``.

    ``tensors`` maps ``"ms"`` (ppm) and/or ``"efg"`` (a.u.) to ``(values (N, 3, 3), mask (N,))``.
    Atoms outside the mask get ``None`` entries (ASE's convention for magres files with
    missing atoms) and are left out of magres blocks; a tensor with an empty mask is not stored.
    """
    units = dict(atoms.info.get("magres_units", {}))
    for name, (values, mask) in tensors.items():
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            continue
        if name in atoms.arrays:
            del atoms.arrays[name]
        if mask.all():
            atoms.new_array(name, np.array(values, dtype=float))
        else:
            entries = np.empty(len(atoms), dtype=object)
            for i in range(len(atoms)):
                entries[i] = np.array(values[i]) if mask[i] else None
            atoms.new_array(name, entries)
        units[name] = MAGRES_UNITS[name]
    atoms.info["magres_units"] = units


def attach_nmr_tensors(atoms: Atoms, model: NMRModel | str | Path, unknown_species: str = "raise") -> NMRPrediction:
    """Predict and store ``atoms.arrays['ms']``/``['efg']`` and ``info['magres_units']``.

    Shielding in ppm, EFG in atomic units, as magres files and Soprano expect, so
    ``ase.io.write('x.magres', atoms)`` writes a file ASE and Soprano read back. Atoms
    left unpredicted (``unknown_species='skip'``) get ``None`` entries (ASE's own
    convention for magres files with missing atoms) and are left out of magres blocks.
    Returns the full prediction (σiso, δiso, OOD score, masks).
    """
    if isinstance(model, (str, Path)):
        model = NMRModel.load(model)
    prediction = model.predict(atoms, unknown_species=unknown_species)
    store_magres_tensors(atoms, {"ms": (prediction.ms, prediction.ms_mask),
                                 "efg": (prediction.efg, prediction.efg_mask)})
    return prediction


def prediction_table(atoms: Atoms, prediction: NMRPrediction) -> list[dict]:
    """Rows (one per predicted atom) of index, element, σiso, δiso (ppm), CQ (MHz, the
    isotope the prediction used), η, OOD, and with a committee the uncertainties of σiso
    (ppm), |CQ| and PQ (MHz) and the Vzz-axis flag (None where absent)."""
    symbols = atoms.get_chemical_symbols()
    cq, eta = prediction.cq, prediction.eta_q
    rows = []
    for i, symbol in enumerate(symbols):
        if not (prediction.ms_mask[i] or prediction.efg_mask[i]):
            continue
        rows.append({
            "index": i,
            "element": symbol,
            "sigma_iso_ppm": prediction.ms_iso[i] if prediction.ms_mask[i] else None,
            "delta_iso_ppm": prediction.delta_iso[i] if prediction.delta_mask[i] else None,
            "cq_MHz": cq[i] if np.isfinite(cq[i]) else None,
            "eta_q": eta[i] if np.isfinite(eta[i]) else None,
            "ood": prediction.ood[i] if prediction.ood_mask[i] else None,
            **{column: (float(values[i]) if np.isfinite(values[i]) else None) for column, values in (
                ("sigma_iso_std_ppm", prediction.ms_iso_std), ("cq_std_MHz", prediction.cq_std),
                ("pq_std_MHz", prediction.pq_std), ("vzz_axis_flag", prediction.vzz_axis_flag))},
        })
    return rows


def write_extxyz_arrays(atoms: Atoms, prediction: NMRPrediction) -> Atoms:
    """Copy of ``atoms`` with tensors as 9 numbers per atom (row-major) plus masks, for extended XYZ.

    Unpredicted atoms get zeros and ``<name>_mask`` False (never NaN in the file).
    """
    out = atoms.copy()
    out.calc = None
    for name in ("ms", "efg"):
        if name in out.arrays:
            del out.arrays[name]
    for name, values, mask in (("ms", prediction.ms, prediction.ms_mask), ("efg", prediction.efg, prediction.efg_mask)):
        if mask.any():
            flat = np.where(mask[:, None], np.nan_to_num(values.reshape(len(atoms), 9)), 0.0)
            out.new_array(name, flat)
            out.new_array(f"{name}_mask", mask.copy())
    return out
