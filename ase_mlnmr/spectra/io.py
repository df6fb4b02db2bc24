"""Reading sites (structures with tensors, per-atom CSV), vibrational CQ scaling factors
(JSON) and measured spectra (CSV).

Shift referencing of a shielding σ (ppm): calibrated ``δ = −a(σ − σref)`` (a model's
calibration, :func:`ase_mlnmr.nmr.calibrated_shift`; a = 1 gives ``δ = σref − σ``). The
CSA follows: ζδ = −a·ζσ, η unchanged (Haeberlen, :func:`ase_mlnmr.nmr.haeberlen`).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ..nmr.efg import quadrupolar_parameters
from ..nmr.isotopes import IsotopeLike, get_isotope
from ..nmr.orientation import canonical_euler_angles, euler_from_rotation, principal_frame
from ..nmr.shielding import calibrated_shift, haeberlen
from .sites import SiteError, Sites

__all__ = ["sites_from_structures", "sites_from_csv", "read_cq_scale", "read_measured_spectrum",
           "model_calibration"]

_DELTA_COLUMNS = ("delta_iso_ppm", "delta_iso", "diso_ppm")
_CQ_COLUMNS = {"cq_MHz": 1.0, "cq_mhz": 1.0, "Cq_MHz": 1.0, "cq_Hz": 1e-6, "Cq_Hz": 1e-6, "cq_hz": 1e-6}
_ETA_COLUMNS = ("eta", "eta_q", "eta_Q")


def _tensors(atoms, name: str) -> np.ndarray | None:
    if name in atoms.arrays:
        values = np.asarray(atoms.arrays[name], dtype=float)
        return values.reshape(len(atoms), 3, 3)
    return None


def sites_from_structures(structures: Iterable, isotope: IsotopeLike, sigma_ref: float | None = None,
                          slope: float = 1.0, efg_units: str = "au") -> Sites:
    """Sites of one isotope's element from ASE ``Atoms`` carrying ``arrays['ms']`` (ppm)
    and/or ``arrays['efg']`` (``efg_units``, a.u. as in magres files).

    δiso = −slope·(σiso − sigma_ref) and ζδ = −slope·ζσ need ``sigma_ref`` when shielding
    tensors are present; without ``ms`` δiso is 0. CQ and η come from the EFG with the
    isotope's Q; the Euler angles are those of the CSA frame in the EFG frame.
    """
    iso = get_isotope(isotope)
    delta, cq, eta, zeta, csa_eta, euler = [], [], [], [], [], []
    found = False
    for atoms in structures:
        mask = np.array([s == iso.element for s in atoms.get_chemical_symbols()])
        if not mask.any():
            continue
        found = True
        ms, efg = _tensors(atoms, "ms"), _tensors(atoms, "efg")
        n = int(mask.sum())
        if ms is not None:
            if sigma_ref is None:
                raise SiteError("structures carry shielding tensors: give sigma_ref (and the slope a of the "
                                "calibration δ = −a(σ − σref)) to turn them into shifts")
            h = haeberlen(ms[mask])
            delta.append(np.atleast_1d(calibrated_shift(h.iso, slope, sigma_ref)))
            zeta.append(np.atleast_1d(-slope * np.asarray(h.zeta)))
            csa_eta.append(np.atleast_1d(h.eta))
        else:
            delta.append(np.zeros(n)), zeta.append(np.zeros(n)), csa_eta.append(np.zeros(n))
        if efg is not None and iso.spin > 0.5:
            q = quadrupolar_parameters(efg[mask], iso, units=efg_units)
            cq.append(np.atleast_1d(q.cq)), eta.append(np.atleast_1d(q.eta))
        else:
            cq.append(np.zeros(n)), eta.append(np.zeros(n))
        angles = np.zeros((n, 3))
        if ms is not None and efg is not None and iso.spin > 0.5:
            _, r_csa = principal_frame(ms[mask], "haeberlen")
            _, r_efg = principal_frame(efg[mask], "efg")
            relative = np.swapaxes(r_efg, -1, -2) @ r_csa
            e = canonical_euler_angles(*euler_from_rotation(relative))
            angles = np.column_stack([np.atleast_1d(e.alpha), np.atleast_1d(e.beta), np.atleast_1d(e.gamma)])
        euler.append(angles)
    if not found:
        raise SiteError(f"no {iso.element} atom in the structures")
    return Sites(iso, np.concatenate(delta), np.concatenate(cq), np.concatenate(eta), np.concatenate(zeta),
                 np.concatenate(csa_eta), np.concatenate(euler))


def sites_from_csv(path: str | Path, isotope: IsotopeLike, element: str | None = None) -> Sites:
    """Sites from a per-atom CSV: δiso (``delta_iso_ppm``), CQ (``cq_MHz`` or ``Cq_Hz``),
    η (``eta``/``eta_q``); an ``element`` column, when present, is filtered to the
    isotope's element (or ``element``). Empty cells in the CQ/η columns of a spin-½ isotope
    are read as 0; elsewhere they are an error."""
    iso = get_isotope(isotope)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"per-site CSV not found: {path}")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise SiteError(f"{path}: no rows (empty ensemble)")
    header = rows[0].keys()
    want = element or iso.element
    if "element" in header:
        rows = [r for r in rows if r["element"].strip() == want]
        if not rows:
            raise SiteError(f"{path}: no row with element {want}")
    d_col = next((c for c in _DELTA_COLUMNS if c in header), None)
    cq_col = next((c for c in _CQ_COLUMNS if c in header), None)
    eta_col = next((c for c in _ETA_COLUMNS if c in header), None)
    if d_col is None:
        raise SiteError(f"{path}: no isotropic-shift column (one of {_DELTA_COLUMNS})")

    def numbers(col: str | None, scale: float = 1.0, default_empty: float | None = None) -> np.ndarray | None:
        if col is None:
            return None
        out = []
        for k, r in enumerate(rows):
            text = (r[col] or "").strip()
            if text == "" and default_empty is not None:
                out.append(default_empty)
                continue
            try:
                out.append(float(text) * scale)
            except ValueError as error:
                raise SiteError(f"{path}: row {k + 1} column {col} is {text!r}, not a number") from error
        return np.array(out)

    quadrupolar = iso.spin > 0.5
    if quadrupolar and (cq_col is None or eta_col is None):
        raise SiteError(f"{path}: a quadrupolar isotope ({iso.name}) needs CQ (cq_MHz or Cq_Hz) and eta columns")
    empty = None if quadrupolar else 0.0
    return Sites(iso, numbers(d_col), numbers(cq_col, _CQ_COLUMNS.get(cq_col, 1.0), empty) if quadrupolar else None,
                 numbers(eta_col, 1.0, empty) if quadrupolar else None)


def read_cq_scale(source: float | str | Path | Mapping, element: str) -> float:
    """Vibrational CQ scaling factor: a number, or a JSON file / mapping with ``cq_scale``
    per element (``{"cq_scale": {"Na": 0.85}}`` or ``{"Na": {"cq_scale": 0.85}}``)."""
    if isinstance(source, (int, float)):
        value = float(source)
    else:
        if isinstance(source, Mapping):
            data = source
            name = "mapping"
        else:
            name = str(source)
            try:
                data = json.loads(Path(source).read_text())
            except FileNotFoundError as error:
                raise FileNotFoundError(f"cq_scale file not found: {source}") from error
            except json.JSONDecodeError as error:
                raise SiteError(f"cq_scale file {source} is not valid JSON: {error}") from error
        if isinstance(data.get("cq_scale"), Mapping) and element in data["cq_scale"]:
            value = data["cq_scale"][element]
        elif isinstance(data.get(element), Mapping) and "cq_scale" in data[element]:
            value = data[element]["cq_scale"]
        else:
            raise SiteError(f"{name} has no cq_scale for element {element}")
        value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise SiteError(f"cq_scale must be a positive number, got {value!r}")
    return value


def read_measured_spectrum(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(ppm, intensity) of a measured spectrum CSV (two numeric columns; one header line
    allowed), sorted by ppm."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"measured spectrum not found: {path}")
    try:
        data = np.genfromtxt(path, delimiter=",", skip_header=0, dtype=float)
    except ValueError as error:
        raise ValueError(f"{path}: expected two numeric columns ppm,intensity ({error})") from error
    data = np.atleast_2d(data)
    data = data[np.all(np.isfinite(data[:, :2]), axis=1)] if data.shape[1] >= 2 else data
    if data.ndim != 2 or data.shape[1] < 2 or len(data) < 2:
        raise ValueError(f"{path}: expected two numeric columns ppm,intensity")
    order = np.argsort(data[:, 0])
    return data[order, 0], data[order, 1]


def model_calibration(model_path: str | Path, element: str) -> tuple[float, float]:
    """(slope a, σref ppm) of a model file's shift calibration for ``element``
    (δ = −a(σ − σref), :class:`ase_mlnmr.NMRModel`)."""
    from ..nmr_model import NMRModel

    model = NMRModel.load(model_path)
    if element not in model.calibration:
        raise SiteError(f"model {model_path} has no shift calibration for {element} "
                        f"(calibrated: {sorted(model.calibration) or 'none'}); give --sigma-ref instead")
    entry = model.calibration[element]
    return float(entry["slope"]), float(entry["sigma_ref"])
