"""Electric field gradient (EFG) tensors: principal components, asymmetry, unit
conversion, quadrupolar coupling CQ, PQ, nuQ, quadrupolar-induced shift and the
orientation-dependent first-order quadrupolar frequency.

Conventions (``docs/conventions.md``):

* ``|Vzz| >= |Vyy| >= |Vxx|``, ``eta = (Vxx - Vyy)/Vzz in [0, 1]`` (``eta := 0`` when
  Vzz = 0); the tensor's symmetric, traceless part is used (the trace is removed).
* Units: atomic units ``E_h/(e a0^2)`` (magres files), V/Angstrom^2, V/m^2; the
  conversion factors are derived from CODATA constants in :mod:`scipy.constants`
  (1 a.u. = 9.71736e21 V/m^2 = 97.1736 V/Angstrom^2).
* ``CQ = e Q Vzz / h`` in MHz with its sign (the signs of Q and Vzz), Q in millibarn
  (1 mb = 1e-31 m^2): CQ[MHz] = 0.234965 Q[mb] Vzz[a.u.] = 2.41799e-3 Q[mb] Vzz[V/A^2].
* ``PQ = CQ sqrt(1 + eta^2/3)`` (carries the sign of CQ), ``nuQ = 3 CQ / (2I(2I-1))``.
* Larmor frequency ``nu0 = |gamma/2pi| B0`` with the bare-nucleus gamma (``use_xi=False``,
  default) or ``nu0 = (Xi/100) (gamma_1H/2pi) B0`` (``use_xi=True``).
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence, Union

import numpy as np
from scipy import constants as _c

from ..core.spherical_tensors import as_tensors, l2_to_symmetric_traceless, symmetric_traceless_to_l2
from .isotopes import Isotope, IsotopeLike, get_isotope, quadrupolar_isotope
from .orientation import is_isotropic, principal_frame, scalar_if_0d

__all__ = [
    "EFG_AU_IN_V_PER_M2",
    "EFG_AU_IN_V_PER_A2",
    "CQ_MHZ_PER_MB_AU",
    "CQ_MHZ_PER_MB_V_PER_A2",
    "EFGPrincipal",
    "QuadrupolarParameters",
    "convert_efg",
    "normalise_efg_units",
    "efg_principal_components",
    "efg_asymmetry",
    "cq_from_vzz",
    "quadrupolar_coupling",
    "quadrupolar_product",
    "quadrupolar_frequency",
    "larmor_frequency",
    "H1_TMS_MHZ_PER_T",
    "reference_frequency",
    "field_from_proton_frequency",
    "quadrupolar_induced_shift",
    "omega_q",
    "quadrupolar_parameters",
]

_HARTREE_J = _c.physical_constants["Hartree energy"][0]
_BOHR_M = _c.physical_constants["Bohr radius"][0]
#: One atomic unit of EFG, ``E_h/(e a0^2)``, in V/m^2 (~9.71736e21).
EFG_AU_IN_V_PER_M2: float = _HARTREE_J / (_c.e * _BOHR_M**2)
#: One atomic unit of EFG in V/Angstrom^2 (~97.1736).
EFG_AU_IN_V_PER_A2: float = EFG_AU_IN_V_PER_M2 * 1e-20
_MB_IN_M2 = 1e-31
#: CQ in MHz for Q = 1 mb and Vzz = 1 a.u.: ``e * 1e-31 m^2 * E_h/(e a0^2) / h / 1e6`` (~0.234965).
CQ_MHZ_PER_MB_AU: float = _MB_IN_M2 * _HARTREE_J / (_BOHR_M**2 * _c.h) * 1e-6
#: CQ in MHz for Q = 1 mb and Vzz = 1 V/Angstrom^2: ``e * 1e-31 * 1e20 / h / 1e6`` (~2.41799e-3).
CQ_MHZ_PER_MB_V_PER_A2: float = _c.e * _MB_IN_M2 * 1e20 / _c.h * 1e-6

_UNIT_ALIASES = {
    "au": "au", "a.u.": "au", "a.u": "au", "atomic": "au", "hartree/bohr^2": "au",
    "v/a^2": "V/A^2", "v/a2": "V/A^2", "v/å^2": "V/A^2", "v/å2": "V/A^2", "v/å²": "V/A^2",
    "v/ang^2": "V/A^2", "v/angstrom^2": "V/A^2",
    "v/m^2": "V/m^2", "v/m2": "V/m^2", "v/m²": "V/m^2",
}
_IN_V_PER_M2 = {"au": EFG_AU_IN_V_PER_M2, "V/A^2": 1e20, "V/m^2": 1.0}

SpeciesLike = Union[IsotopeLike, Sequence[IsotopeLike]]


def normalise_efg_units(name: str) -> str:
    """Canonical EFG unit name, ``'au'``, ``'V/A^2'`` or ``'V/m^2'``, of any usual spelling
    ('a.u.', 'V/Å^2', ...); ValueError lists the accepted ones."""
    key = str(name).strip().lower().replace(" ", "")
    if key not in _UNIT_ALIASES:
        raise ValueError(
            f"unknown EFG units {name!r}: use 'au' (atomic units, as in magres files), "
            "'V/A^2' (as printed by VASP) or 'V/m^2'"
        )
    return _UNIT_ALIASES[key]


def convert_efg(values, from_unit: str, to_unit: str) -> np.ndarray:
    """Convert EFG values (any shape) between ``'au'`` (E_h/(e a0^2)), ``'V/A^2'`` and
    ``'V/m^2'``."""
    factor = _IN_V_PER_M2[normalise_efg_units(from_unit)] / _IN_V_PER_M2[normalise_efg_units(to_unit)]
    return scalar_if_0d(np.asarray(values, dtype=float) * factor)


class EFGPrincipal(NamedTuple):
    """Principal EFG components (input units), ``|Vzz| >= |Vyy| >= |Vxx|``, asymmetry
    ``eta`` and the proper principal frame ``vectors`` (..., 3, 3), columns x, y, z."""

    vxx: np.ndarray
    vyy: np.ndarray
    vzz: np.ndarray
    eta: np.ndarray
    vectors: np.ndarray


def _traceless_symmetric(efg: np.ndarray) -> np.ndarray:
    t = as_tensors(efg, "efg", finite=True)
    return l2_to_symmetric_traceless(symmetric_traceless_to_l2(t))


def efg_principal_components(efg: np.ndarray) -> EFGPrincipal:
    """Principal components of the symmetric traceless part of (..., 3, 3) EFG tensors.

    ``|Vzz| >= |Vyy| >= |Vxx|``; ``eta = (Vxx - Vyy)/Vzz`` clipped to [0, 1], and
    ``eta = 0`` where ``|Vzz| <= 1e-12 ||V||_F`` (zero tensor).
    """
    values, vectors = principal_frame(_traceless_symmetric(efg), "efg")
    vxx, vyy, vzz = values[..., 0], values[..., 1], values[..., 2]
    zero = is_isotropic(values)
    eta = np.where(zero, 0.0, np.clip((vxx - vyy) / np.where(zero, 1.0, vzz), 0.0, 1.0))
    return EFGPrincipal(scalar_if_0d(vxx), scalar_if_0d(vyy), scalar_if_0d(vzz), scalar_if_0d(eta), vectors)


def efg_asymmetry(efg: np.ndarray) -> np.ndarray:
    """Asymmetry ``eta = (Vxx - Vyy)/Vzz in [0, 1]`` (0 for a zero tensor)."""
    return efg_principal_components(efg).eta


def _isotope_arrays(
    species: SpeciesLike, shape: tuple, isotopes: Mapping[str, IsotopeLike] | None, missing: str
) -> tuple[np.ndarray, np.ndarray]:
    """Q (mb) and spin I arrays of the given shape for one species or one per tensor."""
    if missing not in ("raise", "nan"):
        raise ValueError("missing must be 'raise' or 'nan'")

    def resolve(sp) -> tuple[float, float]:
        try:
            iso = quadrupolar_isotope(sp, isotopes)
        except (KeyError, ValueError):
            if missing == "raise":
                raise
            return np.nan, np.nan
        return iso.quadrupole_moment_mb, iso.spin

    if isinstance(species, (str, Isotope)):
        q, spin = resolve(species)
        return np.full(shape, q), np.full(shape, spin)
    items = np.empty(np.shape(species) if not isinstance(species, np.ndarray) else species.shape, dtype=object)
    items[...] = species if isinstance(species, np.ndarray) else list(species)
    if items.shape != tuple(shape):
        raise ValueError(f"got species of shape {items.shape} for EFG tensors of leading shape {tuple(shape)}")
    cache: dict = {}
    q = np.empty(items.size)
    spin = np.empty(items.size)
    for i, sp in enumerate(items.ravel()):
        if sp not in cache:
            cache[sp] = resolve(sp)
        q[i], spin[i] = cache[sp]
    return q.reshape(shape), spin.reshape(shape)


def cq_from_vzz(
    vzz,
    species: SpeciesLike,
    units: str = "au",
    isotopes: Mapping[str, IsotopeLike] | None = None,
    missing: str = "raise",
) -> np.ndarray:
    """``CQ = e Q Vzz / h`` in MHz, signed, for Vzz in ``units`` ('au' or 'V/A^2' ...).

    ``species``: an element symbol (its default quadrupolar isotope, overridable through
    ``isotopes={"Li": "6Li"}``), an isotope name ("27Al"), an :class:`Isotope`, or one of
    these per value. ``missing='nan'`` gives NaN instead of an error for species without
    a quadrupolar isotope (e.g. Si).
    """
    v = np.asarray(vzz, dtype=float)
    if not np.isfinite(v).all():
        raise ValueError("vzz contains NaN or inf")
    q, _ = _isotope_arrays(species, v.shape, isotopes, missing)
    v_au = np.asarray(convert_efg(v, units, "au"))
    return scalar_if_0d(CQ_MHZ_PER_MB_AU * q * v_au)


def quadrupolar_coupling(
    efg: np.ndarray,
    species: SpeciesLike,
    units: str = "au",
    isotopes: Mapping[str, IsotopeLike] | None = None,
    missing: str = "raise",
) -> np.ndarray:
    """Signed quadrupolar coupling constant ``CQ = e Q Vzz / h`` (MHz) of (..., 3, 3) EFG
    tensors in ``units``; see :func:`cq_from_vzz` for ``species``/``isotopes``."""
    vzz = np.asarray(efg_principal_components(efg).vzz)
    return cq_from_vzz(vzz, species, units=units, isotopes=isotopes, missing=missing)


def quadrupolar_product(cq, eta) -> np.ndarray:
    """``PQ = CQ sqrt(1 + eta^2/3)`` (MHz; same sign as CQ)."""
    cq = np.asarray(cq, dtype=float)
    eta = np.asarray(eta, dtype=float)
    if np.any((eta < 0) | (eta > 1)):
        raise ValueError("eta must lie in [0, 1]")
    return scalar_if_0d(cq * np.sqrt(1.0 + eta**2 / 3.0))


def _spin_of(spin_or_isotope) -> np.ndarray:
    if isinstance(spin_or_isotope, (str, Isotope)):
        spin = np.asarray(quadrupolar_isotope(spin_or_isotope).spin)
    else:
        spin = np.asarray(spin_or_isotope, dtype=float)
    if np.any(~(spin > 0.5)) or np.any(np.abs(2 * spin - np.round(2 * spin)) > 1e-9):
        raise ValueError(f"quadrupolar spin must be a half-integer or integer > 1/2, got {spin}")
    return spin


def quadrupolar_frequency(cq, spin_or_isotope) -> np.ndarray:
    """``nuQ = 3 CQ / (2I (2I - 1))`` (MHz, signed); the second argument is I or an
    isotope/element (its default quadrupolar isotope)."""
    spin = _spin_of(spin_or_isotope)
    return scalar_if_0d(3.0 * np.asarray(cq, dtype=float) / (2.0 * spin * (2.0 * spin - 1.0)))


def larmor_frequency(isotope: IsotopeLike, b0_tesla: float, use_xi: bool = False) -> np.ndarray:
    """Larmor frequency nu0 in MHz for a field B0 (T) of an isotope ("27Al", an
    :class:`Isotope`, or an element symbol meaning its default quadrupolar isotope).

    ``use_xi=False``: ``nu0 = |gamma/2pi| B0`` (bare-nucleus gamma, the default).
    ``use_xi=True``: ``nu0 = (Xi/100) |gamma_1H/2pi| B0`` (IUPAC frequency ratio; differs
    from the bare value by ~0.06 % through the shielding of the reference compounds).
    """
    if isinstance(isotope, str) and not any(ch.isdigit() for ch in isotope):
        iso = quadrupolar_isotope(isotope)  # element symbol: its default quadrupolar isotope
    else:
        iso = get_isotope(isotope)
    b0 = np.asarray(b0_tesla, dtype=float)
    if np.any(~(b0 > 0)):
        raise ValueError("B0 must be positive (tesla)")
    if use_xi:
        return scalar_if_0d(iso.xi_percent / 100.0 * abs(get_isotope("1H").gamma_MHz_per_T) * b0)
    return scalar_if_0d(abs(iso.gamma_MHz_per_T) * b0)


#: Frequency of 1H in TMS per tesla (MHz/T): the IUPAC Xi scale's 100 % reference, with the
#: value the project's reference lineshapes use (1 / 0.02348731439404777 T per MHz).
H1_TMS_MHZ_PER_T: float = 1.0 / 0.02348731439404777


def reference_frequency(isotope: IsotopeLike, b0_tesla: float) -> np.ndarray:
    """Frequency of the isotope's shift reference (0 ppm) in MHz on the IUPAC Xi scale:
    ``nu_ref = (Xi/100) * nu(1H, TMS)``, ``nu(1H, TMS) = 42.5761747 MHz/T * B0``.

    This is the frequency that defines the ppm axis of a spectrum
    (``ppm = (nu - nu_ref)/nu_ref * 1e6``); the second-order quadrupolar terms use the
    bare-gamma Larmor frequency :func:`larmor_frequency` instead (~0.06 % apart).
    """
    iso = get_isotope(isotope)
    b0 = np.asarray(b0_tesla, dtype=float)
    if np.any(~(b0 > 0)):
        raise ValueError("B0 must be positive (tesla)")
    return scalar_if_0d(iso.xi_percent / 100.0 * H1_TMS_MHZ_PER_T * b0)


def field_from_proton_frequency(nu_1h_MHz: float) -> float:
    """B0 (T) of a spectrometer named by its 1H Larmor frequency (MHz):
    ``B0 = nu(1H) / |gamma(1H)/2pi|`` with the bare-proton gamma of the isotope table
    (a "600 MHz" magnet: 14.092 T)."""
    nu = float(nu_1h_MHz)
    if not nu > 0 or not np.isfinite(nu):
        raise ValueError(f"the 1H Larmor frequency must be a positive number of MHz, got {nu_1h_MHz!r}")
    return nu / abs(get_isotope("1H").gamma_MHz_per_T)


def quadrupolar_induced_shift(
    pq,
    species: IsotopeLike,
    b0_tesla: float,
    isotopes: Mapping[str, IsotopeLike] | None = None,
    use_xi: bool = False,
) -> np.ndarray:
    """Second-order quadrupolar-induced shift of the central-transition centre of gravity
    (ppm): ``dQIS = -(3/40) (PQ/nu0)^2 [I(I+1) - 3/4] / [I^2 (2I-1)^2] * 1e6``
    (-25000 (PQ/nu0)^2 for I = 3/2, -6000 (PQ/nu0)^2 for I = 5/2); PQ in MHz, nu0 from
    :func:`larmor_frequency` (bare gamma unless ``use_xi``)."""
    iso = quadrupolar_isotope(species, isotopes)
    nu0 = larmor_frequency(iso, b0_tesla, use_xi=use_xi)
    spin = iso.spin
    factor = (spin * (spin + 1.0) - 0.75) / (spin**2 * (2.0 * spin - 1.0) ** 2)
    return scalar_if_0d(-(3.0 / 40.0) * (np.asarray(pq, dtype=float) / nu0) ** 2 * factor * 1e6)


def omega_q(cq, eta, spin_or_isotope, theta, phi) -> np.ndarray:
    """First-order quadrupolar frequency for a field along (theta, phi) of the EFG
    principal frame (theta from z, phi from x, radians), in MHz (multiply by 2pi for rad/s):

    ``wQ = 3 CQ / (2I(2I-1)) * 1/2 (3 cos^2 theta - 1 + eta sin^2 theta cos 2phi)``,
    ``eta = (Vxx - Vyy)/Vzz``; equal to ``nuQ * V_bb / Vzz`` with V_bb the EFG component
    along the field (theta = 90 deg, phi = 0 gives ``nuQ Vxx/Vzz``; theta = 0 gives nuQ).
    """
    nu_q = np.asarray(quadrupolar_frequency(cq, spin_or_isotope))
    eta = np.asarray(eta, dtype=float)
    theta = np.asarray(theta, dtype=float)
    phi = np.asarray(phi, dtype=float)
    angular = 0.5 * (3.0 * np.cos(theta) ** 2 - 1.0 + eta * np.sin(theta) ** 2 * np.cos(2.0 * phi))
    return scalar_if_0d(nu_q * angular)


class QuadrupolarParameters(NamedTuple):
    """``cq`` (MHz, signed), ``eta``, ``pq`` (MHz), ``nu_q`` (MHz), ``vzz`` (input units)."""

    cq: np.ndarray
    eta: np.ndarray
    pq: np.ndarray
    nu_q: np.ndarray
    vzz: np.ndarray


def quadrupolar_parameters(
    efg: np.ndarray,
    species: SpeciesLike,
    units: str = "au",
    isotopes: Mapping[str, IsotopeLike] | None = None,
    missing: str = "raise",
) -> QuadrupolarParameters:
    """CQ, eta, PQ and nuQ of (..., 3, 3) EFG tensors for one species or one per tensor."""
    principal = efg_principal_components(efg)
    vzz = np.asarray(principal.vzz)
    q, spin = _isotope_arrays(species, vzz.shape, isotopes, missing)
    cq = CQ_MHZ_PER_MB_AU * q * np.asarray(convert_efg(vzz, units, "au"))
    eta = np.asarray(principal.eta)
    pq = cq * np.sqrt(1.0 + eta**2 / 3.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        nu_q = 3.0 * cq / (2.0 * spin * (2.0 * spin - 1.0))
    return QuadrupolarParameters(scalar_if_0d(cq), principal.eta, scalar_if_0d(pq), scalar_if_0d(nu_q), principal.vzz)
