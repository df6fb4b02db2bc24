"""Export of sites as mrsimulator spin systems (JSON that ``mrsimulator.Simulator``
loads with ``Simulator.parse_dict_with_units``), for taking sites further in a full
simulator.

Mapping (mrsimulator 1.0): one single-site spin system per site; ``isotropic_chemical_shift``
= δiso (ppm); ``quadrupolar`` = {Cq (Hz, signed), eta}; ``shielding_symmetric`` =
{zeta = −ζδ (mrsimulator's zeta is a SHIELDING anisotropy), eta}, with the site's Euler
angles (CSA frame in the EFG frame) converted to mrsimulator's convention on the shielding
tensor and zero angles on the EFG (:func:`_mrsimulator_angles`);
``abundance`` = weight / max(weight) × 100 %. The quadrupole moment is not exported
(mrsimulator takes Cq directly); note that its own isotope table carries older Q values.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .sites import SiteLike, as_sites

__all__ = ["to_mrsimulator_spin_systems", "write_mrsimulator_json"]


def _mrsimulator_angles(alpha: float, beta: float, gamma: float) -> tuple[float, float, float]:
    """Our angles (active ZYZ, CSA frame in the EFG frame with |Vxx| ≤ |Vyy|) → the angles
    mrsimulator puts on the shielding tensor with zero angles on the EFG: its EFG frame has
    x and y swapped (Haeberlen order |Vyy| ≤ |Vxx|, a 90° turn about z) and its angles are
    those of the inverse rotation: (−γ, −β, π/2 − α). Found and checked by simulating static
    CT + CSA lineshapes with mrsimulator (tests/test_spectra_mrsim.py)."""
    return -float(gamma), -float(beta), 0.5 * np.pi - float(alpha)


def to_mrsimulator_spin_systems(sites: SiteLike) -> list[dict]:
    """List of mrsimulator spin-system dicts (values with units as strings)."""
    sites = as_sites(sites)
    top = float(sites.weight.max())
    systems = []
    for i in range(len(sites)):
        site = {"isotope": sites.isotope.name, "isotropic_chemical_shift": f"{float(sites.delta_iso_ppm[i])!r} ppm"}
        if sites.cq_MHz[i] != 0.0:
            site["quadrupolar"] = {"Cq": f"{float(sites.cq_MHz[i]) * 1e6!r} Hz", "eta": float(sites.eta_q[i])}
        if sites.csa_zeta_ppm[i] != 0.0:
            a, b, g = _mrsimulator_angles(*sites.euler_angles[i])
            site["shielding_symmetric"] = {"zeta": f"{-float(sites.csa_zeta_ppm[i])!r} ppm", "eta": float(sites.csa_eta[i]),
                                           "alpha": f"{a!r} rad", "beta": f"{b!r} rad", "gamma": f"{g!r} rad"}
        systems.append({"name": f"site {i}", "sites": [site],
                        "abundance": f"{float(sites.weight[i]) / top * 100.0!r} %"})
    return systems


def write_mrsimulator_json(sites: SiteLike, path: str | Path) -> Path:
    """Write ``{"spin_systems": [...]}`` (mrsimulator Simulator JSON, no methods)."""
    path = Path(path)
    path.write_text(json.dumps({"spin_systems": to_mrsimulator_spin_systems(sites)}, indent=1))
    return path
