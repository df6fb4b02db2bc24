"""The 27Al sign and reference check of the demo: δiso per Al–O coordination, and how far
AlO4 sites lie above the AlO6 reference on the calibrated δiso axis.

Aluminosilicates measure AlO4 50–70 ppm above AlO6 (:data:`ALO4_ABOVE_ALO6_PPM`). On the
calibrated axis δiso = −(σiso − σref) (slope 1, σref on the Al(H2O)6³⁺ of the set's
AlCl3·6H2O, docs/conventions.md) the AlO6 reference site sits at δ = 0 by construction, so
"AlO4 − AlO6 reference" is the mean AlO4 δiso minus the δiso given to that site by the
same source (0 for DFT; the model's own prediction for a held-out reference crystal).
Nothing here fits a slope: the check reports what the data and the model give.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from ase.neighborlist import neighbor_list

__all__ = ["AL_O_BOND_A", "ALO4_ABOVE_ALO6_PPM", "AlSites", "aluminium_coordination", "al_sites",
           "coordination_rows", "coordination_check", "format_checks"]

#: Al–O bond length cut-off (Å) for counting the coordination (AlO4/AlO5/AlO6).
AL_O_BOND_A = 2.3
#: 27Al δiso(AlO4) − δiso(AlO6) measured in aluminosilicates (ppm), the window of issue 14.
ALO4_ABOVE_ALO6_PPM = (50.0, 70.0)


def aluminium_coordination(atoms) -> np.ndarray:
    """Number of O within :data:`AL_O_BOND_A` of each Al (periodic), in Al order."""
    i, j = neighbor_list("ij", atoms, AL_O_BOND_A)
    al = np.flatnonzero(atoms.numbers == 13)
    return np.array([np.sum(atoms.numbers[j[i == k]] == 8) for k in al], dtype=int)


@dataclass
class AlSites:
    """Al sites of one source: structure name, Al–O coordination and δiso (ppm) per site."""

    source: str
    structure: np.ndarray
    coordination: np.ndarray
    delta_iso_ppm: np.ndarray


def al_sites(source: str, structures: Sequence, al_delta_iso_ppm: Sequence[np.ndarray],
             names: Sequence[str] | None = None) -> AlSites:
    """Collect the Al sites of ``structures``; ``al_delta_iso_ppm[k]``: δiso of the Al of
    structure k in Al order."""
    names = names or [atoms.get_chemical_formula() for atoms in structures]
    cn = [aluminium_coordination(atoms) for atoms in structures]
    return AlSites(source, np.concatenate([[name] * len(c) for name, c in zip(names, cn)]).astype(str),
                   np.concatenate(cn), np.concatenate([np.asarray(d, dtype=float) for d in al_delta_iso_ppm]))


def _stats(delta: np.ndarray) -> dict:
    return {"n_sites": int(delta.size), "delta_iso_mean_ppm": float(np.mean(delta)),
            "delta_iso_min_ppm": float(np.min(delta)), "delta_iso_max_ppm": float(np.max(delta))}


def coordination_rows(sites: AlSites) -> list[dict]:
    """Per structure and coordination, then per coordination over all structures
    (structure "all"): n_sites and mean/min/max δiso (ppm)."""
    rows = []
    for name in dict.fromkeys(sites.structure):
        for cn in np.unique(sites.coordination[sites.structure == name]):
            pick = (sites.structure == name) & (sites.coordination == cn)
            rows.append({"source": sites.source, "structure": name, "coordination": f"AlO{cn}",
                         **_stats(sites.delta_iso_ppm[pick])})
    for cn in np.unique(sites.coordination):
        rows.append({"source": sites.source, "structure": "all", "coordination": f"AlO{cn}",
                     **_stats(sites.delta_iso_ppm[sites.coordination == cn])})
    return rows


def coordination_check(sites: AlSites, reference_ppm: float, note: str) -> dict:
    """AlO4 − AlO6 reference (ppm): mean AlO4 δiso minus ``reference_ppm`` (the δiso this
    source gives the Al(H2O)6³⁺ reference site), whether it lies in
    :data:`ALO4_ABOVE_ALO6_PPM`, and how many AlO4 sites do; counts and means of AlO4,
    AlO5 and AlO6. ``note`` says what the numbers are (DFT or model, the model's error)."""
    low, high = ALO4_ABOVE_ALO6_PPM
    check: dict = {"source": sites.source}
    for cn in (4, 5, 6):
        delta = sites.delta_iso_ppm[sites.coordination == cn]
        check[f"AlO{cn}_sites"] = int(delta.size)
        check[f"AlO{cn}_mean_ppm"] = float(np.mean(delta)) if delta.size else None
    al4 = sites.delta_iso_ppm[sites.coordination == 4] - reference_ppm
    check["AlO6_reference_ppm"] = float(reference_ppm)
    if al4.size:
        gap = float(np.mean(al4))
        check.update(AlO4_minus_AlO6_reference_ppm=gap, AlO4_minus_reference_min_ppm=float(al4.min()),
                     AlO4_minus_reference_max_ppm=float(al4.max()),
                     AlO4_sites_within_window=int(np.sum((al4 >= low) & (al4 <= high))),
                     within_window=bool(low <= gap <= high))
    else:
        check.update(AlO4_minus_AlO6_reference_ppm=None, within_window=None)
    check["note"] = note
    return check


def format_checks(checks: Sequence[dict]) -> str:
    """Printed table of :func:`coordination_check` results, one line per source."""
    low, high = ALO4_ABOVE_ALO6_PPM
    head = (f"  27Al δiso by Al–O coordination (O within {AL_O_BOND_A} Å); AlO4 − AlO6 reference against the "
            f"{low:g}–{high:g} ppm measured in aluminosilicates:")
    lines = [head, f"  {'source':<52} {'AlO4 n':>6} {'AlO5 n':>6} {'AlO6 n':>6} {'AlO4−ref':>9} "
                   f"{'range':>13} {'in window':>9}"]
    for c in checks:
        gap = c["AlO4_minus_AlO6_reference_ppm"]
        span = (f"{c['AlO4_minus_reference_min_ppm']:.0f}…{c['AlO4_minus_reference_max_ppm']:.0f}"
                if gap is not None else "-")
        inside = (f"{'yes' if c['within_window'] else 'no'} {c['AlO4_sites_within_window']}/{c['AlO4_sites']}"
                  if gap is not None else "-")
        lines.append(f"  {c['source']:<52} {c['AlO4_sites']:>6} {c['AlO5_sites']:>6} {c['AlO6_sites']:>6} "
                     f"{(f'{gap:.1f}' if gap is not None else '-'):>9} {span:>13} {inside:>9}")
        lines.append(f"      {c['note']}")
    return "\n".join(lines)
