"""Sites: the validated NMR parameters every lineshape function takes.

A :class:`Site` is one nucleus: isotope, isotropic shift δiso (ppm), quadrupolar coupling
CQ (MHz, signed) and asymmetry η, chemical-shift anisotropy in the Haeberlen convention
on the SHIFT scale (ζδ = δzz − δiso in ppm, ηδ) and the ZYZ Euler angles (rad) of the CSA
principal frame in the EFG principal frame. :class:`Sites` holds many sites of one
isotope as arrays (the form the simulators use); ``Sites[i]`` gives a :class:`Site`.

Central-transition lineshapes depend on CQ² only, so they use |CQ|; the sign is kept for
export and reporting.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Sequence, Union

import numpy as np

from ..nmr.isotopes import Isotope, IsotopeLike, get_isotope

__all__ = ["Site", "Sites", "SiteError", "as_sites"]


class SiteError(ValueError):
    """Invalid site parameters (NaN, η outside [0, 1], a quadrupolar coupling on a spin-½
    nucleus, an empty ensemble ...)."""


def _isotope(value: IsotopeLike) -> Isotope:
    try:
        return get_isotope(value)
    except (KeyError, TypeError) as error:
        raise SiteError(str(error)) from error


@dataclass(frozen=True)
class Site:
    """One nucleus.

    isotope: name ("23Na") or :class:`~ase_mlnmr.nmr.Isotope`; delta_iso_ppm: δiso (ppm);
    cq_MHz: CQ = eQVzz/h (MHz, signed); eta_q: η = (Vxx − Vyy)/Vzz in [0, 1];
    csa_zeta_ppm: ζδ = δzz − δiso (ppm, shift scale, Haeberlen); csa_eta: ηδ in [0, 1];
    euler_angles: (α, β, γ) ZYZ (rad) of the CSA frame in the EFG frame; weight: relative
    abundance (> 0).
    """

    isotope: Isotope
    delta_iso_ppm: float
    cq_MHz: float = 0.0
    eta_q: float = 0.0
    csa_zeta_ppm: float = 0.0
    csa_eta: float = 0.0
    euler_angles: tuple[float, float, float] = (0.0, 0.0, 0.0)
    weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "isotope", _isotope(self.isotope))
        for name in ("delta_iso_ppm", "cq_MHz", "eta_q", "csa_zeta_ppm", "csa_eta", "weight"):
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError) as error:
                raise SiteError(f"{name} must be a number, got {value!r}") from error
            object.__setattr__(self, name, value)
        angles = tuple(float(a) for a in self.euler_angles)
        if len(angles) != 3:
            raise SiteError(f"euler_angles must be (alpha, beta, gamma) in radians, got {self.euler_angles!r}")
        object.__setattr__(self, "euler_angles", angles)
        _validate(self.isotope, np.array([self.delta_iso_ppm]), np.array([self.cq_MHz]), np.array([self.eta_q]),
                  np.array([self.csa_zeta_ppm]), np.array([self.csa_eta]), np.array([angles]),
                  np.array([self.weight]))

    def to_dict(self) -> dict:
        """Plain dict (isotope by name) of the parameters, with units in the keys."""
        return {"isotope": self.isotope.name, "delta_iso_ppm": self.delta_iso_ppm, "cq_MHz": self.cq_MHz,
                "eta_q": self.eta_q, "csa_zeta_ppm": self.csa_zeta_ppm, "csa_eta": self.csa_eta,
                "euler_angles": list(self.euler_angles), "weight": self.weight}


def _validate(isotope: Isotope, delta, cq, eta, zeta, csa_eta, euler, weight) -> None:
    named = {"delta_iso_ppm": delta, "cq_MHz": cq, "eta_q": eta, "csa_zeta_ppm": zeta, "csa_eta": csa_eta,
             "euler_angles": euler, "weight": weight}
    for name, values in named.items():
        bad = ~np.isfinite(values)
        if bad.any():
            where = np.argwhere(bad)[0][0]
            raise SiteError(f"{name} of site {where} is {values.reshape(len(values), -1)[where].tolist()}: "
                            "NaN or inf parameters cannot be simulated")
    for name, values in (("eta_q", eta), ("csa_eta", csa_eta)):
        outside = (values < 0.0) | (values > 1.0)
        if outside.any():
            where = int(np.flatnonzero(outside)[0])
            raise SiteError(f"{name} of site {where} is {values[where]:g}: an asymmetry parameter must lie in [0, 1]")
    if (weight <= 0).any():
        where = int(np.flatnonzero(weight <= 0)[0])
        raise SiteError(f"weight of site {where} is {weight[where]:g}: weights must be positive")
    if np.any(cq != 0.0) and not (isotope.spin > 0.5):
        raise SiteError(f"{isotope.name} has spin {Fraction(isotope.spin)}: a spin-1/2 nucleus cannot carry a "
                        "quadrupolar coupling (CQ must be 0)")


SiteLike = Union[Site, "Sites", Sequence[Site]]


class Sites:
    """Many sites of one isotope, as validated float arrays of length n.

    Attributes: ``isotope``, ``delta_iso_ppm``, ``cq_MHz`` (signed), ``eta_q``,
    ``csa_zeta_ppm`` (ζδ, shift scale), ``csa_eta``, ``euler_angles`` (n, 3) rad,
    ``weight``. Arrays are read-only copies.
    """

    def __init__(self, isotope: IsotopeLike, delta_iso_ppm, cq_MHz=None, eta_q=None, csa_zeta_ppm=None,
                 csa_eta=None, euler_angles=None, weight=None, allow_empty: bool = False) -> None:
        self.isotope = _isotope(isotope)
        delta = np.atleast_1d(np.asarray(delta_iso_ppm, dtype=float)).copy()
        if delta.ndim != 1:
            raise SiteError(f"delta_iso_ppm must be one number per site, got shape {delta.shape}")
        n = len(delta)
        if n == 0 and not allow_empty:
            raise SiteError("empty ensemble: no sites to simulate")

        def column(values, name: str, default: float) -> np.ndarray:
            if values is None:
                return np.full(n, default)
            arr = np.asarray(values, dtype=float)
            arr = np.full(n, float(arr)) if arr.ndim == 0 else arr.copy()
            if arr.shape != (n,):
                raise SiteError(f"{name} has shape {arr.shape}; expected ({n},), one value per site")
            return arr

        self.delta_iso_ppm = delta
        self.cq_MHz = column(cq_MHz, "cq_MHz", 0.0)
        self.eta_q = column(eta_q, "eta_q", 0.0)
        self.csa_zeta_ppm = column(csa_zeta_ppm, "csa_zeta_ppm", 0.0)
        self.csa_eta = column(csa_eta, "csa_eta", 0.0)
        self.weight = column(weight, "weight", 1.0)
        euler = np.zeros((n, 3)) if euler_angles is None else np.asarray(euler_angles, dtype=float).reshape(n, 3).copy()
        self.euler_angles = euler
        _validate(self.isotope, self.delta_iso_ppm, self.cq_MHz, self.eta_q, self.csa_zeta_ppm, self.csa_eta,
                  self.euler_angles, self.weight)
        for arr in (self.delta_iso_ppm, self.cq_MHz, self.eta_q, self.csa_zeta_ppm, self.csa_eta, self.weight,
                    self.euler_angles):
            arr.setflags(write=False)

    @classmethod
    def from_sites(cls, sites: Iterable[Site]) -> "Sites":
        """Collect :class:`Site` objects (all of one isotope)."""
        items = list(sites)
        if not items:
            raise SiteError("empty ensemble: no sites to simulate")
        isotopes = {s.isotope.name for s in items}
        if len(isotopes) > 1:
            raise SiteError(f"sites of several isotopes {sorted(isotopes)}: simulate one isotope at a time")
        return cls(items[0].isotope, [s.delta_iso_ppm for s in items], [s.cq_MHz for s in items],
                   [s.eta_q for s in items], [s.csa_zeta_ppm for s in items], [s.csa_eta for s in items],
                   [s.euler_angles for s in items], [s.weight for s in items])

    def __len__(self) -> int:
        return len(self.delta_iso_ppm)

    def __getitem__(self, index: int) -> Site:
        return Site(self.isotope, self.delta_iso_ppm[index], self.cq_MHz[index], self.eta_q[index],
                    self.csa_zeta_ppm[index], self.csa_eta[index], tuple(self.euler_angles[index]),
                    self.weight[index])

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"Sites({self.isotope.name}, n={len(self)})"

    @property
    def abs_cq_MHz(self) -> np.ndarray:
        """|CQ| (MHz): all a central-transition lineshape depends on (through CQ²)."""
        return np.abs(self.cq_MHz)

    def subset(self, index) -> "Sites":
        """Sites selected by an index array or boolean mask."""
        return Sites(self.isotope, self.delta_iso_ppm[index], self.cq_MHz[index], self.eta_q[index],
                     self.csa_zeta_ppm[index], self.csa_eta[index], self.euler_angles[index], self.weight[index])

    def with_cq_scale(self, factor: float) -> "Sites":
        """Copy with CQ multiplied by a vibrational scaling factor (η unchanged), as in
        Charpentier 2025: |CQ| → factor·|CQ| (the sign is kept)."""
        factor = float(factor)
        if not (np.isfinite(factor) and factor > 0):
            raise SiteError(f"cq_scale must be a positive number, got {factor!r}")
        return Sites(self.isotope, self.delta_iso_ppm, self.cq_MHz * factor, self.eta_q, self.csa_zeta_ppm,
                     self.csa_eta, self.euler_angles, self.weight)

    def require_quadrupolar(self) -> None:
        """Raise :class:`SiteError` unless the isotope has a central transition (half-integer
        I ≥ 3/2 with a quadrupole moment)."""
        iso = self.isotope
        if iso.spin <= 0.5:
            raise SiteError(f"{iso.name} has spin {Fraction(iso.spin)}: it has no quadrupolar central-transition "
                            "lineshape (use the spin-1/2 MAS or static CSA simulators)")
        if abs(2 * iso.spin - round(2 * iso.spin)) > 1e-9 or round(2 * iso.spin) % 2 == 0:
            raise SiteError(f"{iso.name} has integer spin {Fraction(iso.spin)}: there is no central transition")
        if iso.quadrupole_moment_mb == 0.0:
            raise SiteError(f"{iso.name} has no quadrupole moment Q in the isotope table: its quadrupolar "
                            "lineshape is undefined")


def as_sites(sites: SiteLike) -> Sites:
    """A :class:`Sites` from a :class:`Site`, a sequence of them or a :class:`Sites`."""
    if isinstance(sites, Sites):
        if len(sites) == 0:
            raise SiteError("empty ensemble: no sites to simulate")
        return sites
    if isinstance(sites, Site):
        return Sites.from_sites([sites])
    if isinstance(sites, (list, tuple)):
        if sites and not all(isinstance(s, Site) for s in sites):
            raise TypeError("expected Site objects (build them with Site(...) or Sites.from_arrays)")
        return Sites.from_sites(sites)
    raise TypeError(f"expected a Site, a list of Site or a Sites ensemble, got {type(sites).__name__}")
