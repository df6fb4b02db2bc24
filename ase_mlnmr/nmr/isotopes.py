"""Nuclear isotope data (spin, gyromagnetic ratio, quadrupole moment) for NMR.

The table ships as ``ase_mlnmr/data/isotopes.csv``:

* spin ``I``;
* ``gamma_MHz_per_T`` = gamma/2pi of the bare nucleus in MHz/T (IUPAC 2001,
  Harris et al., Pure Appl. Chem. 73, 1795, https://doi.org/10.1351/pac200173111795),
  so the Larmor frequency is ``nu0 = |gamma/2pi| * B0`` (MHz, B0 in T);
* ``Q_mb``: nuclear quadrupole moment in millibarn (1 mb = 1e-31 m^2), Pyykko,
  Mol. Phys. 116, 1328 (2018), https://doi.org/10.1080/00268976.2018.1426131;
* ``Xi_percent``: IUPAC frequency ratio Xi (%).

Which isotope an element's quadrupolar coupling refers to is a choice; the defaults
(:data:`DEFAULT_QUADRUPOLAR_ISOTOPES`) are the quadrupolar isotopes usually measured and
can be overridden per call with a mapping ``{"Li": "6Li"}``.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Union

__all__ = [
    "Isotope",
    "DEFAULT_QUADRUPOLAR_ISOTOPES",
    "get_isotope",
    "list_isotopes",
    "default_quadrupolar_isotope",
    "quadrupolar_isotope",
]

_TABLE_PATH = Path(__file__).resolve().parent.parent / "data" / "isotopes.csv"

#: Element -> default quadrupolar isotope (the NMR-active quadrupolar isotope usually measured).
DEFAULT_QUADRUPOLAR_ISOTOPES: Mapping[str, str] = MappingProxyType({
    "H": "2H",
    "Li": "7Li",
    "Be": "9Be",
    "B": "11B",
    "O": "17O",
    "Na": "23Na",
    "Mg": "25Mg",
    "Al": "27Al",
    "K": "39K",
    "Ca": "43Ca",
    "Ti": "47Ti",
    "Rb": "87Rb",
    "Sr": "87Sr",
    "Cs": "133Cs",
})

# Elements whose stable NMR-active isotopes all have spin 1/2 (or 0): no quadrupolar coupling.
_NO_QUADRUPOLAR_ISOTOPE = frozenset(
    ["He", "C", "F", "Si", "P", "Fe", "Se", "Y", "Rh", "Ag", "Cd", "Sn", "Te", "Tm", "W",
     "Pt", "Tl", "Pb"]
)


@dataclass(frozen=True)
class Isotope:
    """One nuclide.

    Attributes: ``name`` ("27Al"), ``element`` ("Al"), ``mass_number`` (27), ``spin`` (I),
    ``gamma_MHz_per_T`` (gamma/2pi, MHz/T, signed), ``quadrupole_moment_mb`` (Q, mb,
    signed), ``xi_percent`` (IUPAC frequency ratio, %).
    """

    name: str
    element: str
    mass_number: int
    spin: float
    gamma_MHz_per_T: float
    quadrupole_moment_mb: float
    xi_percent: float

    @property
    def is_quadrupolar(self) -> bool:
        """True when I > 1/2 and Q != 0."""
        return self.spin > 0.5 and self.quadrupole_moment_mb != 0.0


IsotopeLike = Union[str, Isotope]

_NAME_RE_A = re.compile(r"^\s*(\d+)\s*-?\s*([A-Za-z]{1,2})\s*$")  # "27Al", "27-Al"
_NAME_RE_B = re.compile(r"^\s*([A-Za-z]{1,2})\s*-?\s*(\d+)\s*$")  # "Al27", "Al-27"


def _parse_name(name: str) -> tuple[str, int]:
    match = _NAME_RE_A.match(name)
    if match:
        mass, element = match.group(1), match.group(2)
    else:
        match = _NAME_RE_B.match(name)
        if not match:
            raise KeyError(
                f"cannot parse isotope name {name!r}: expected e.g. '27Al' (mass number then "
                "element symbol)"
            )
        element, mass = match.group(1), match.group(2)
    return element.capitalize(), int(mass)


@lru_cache(maxsize=1)
def _table() -> dict[str, Isotope]:
    rows: dict[str, Isotope] = {}
    with open(_TABLE_PATH, newline="", encoding="utf-8") as handle:
        lines = [line for line in handle if not line.lstrip().startswith("#")]
    for row in csv.DictReader(lines):
        element, mass = _parse_name(row["isotope"])
        rows[row["isotope"]] = Isotope(
            name=row["isotope"],
            element=element,
            mass_number=mass,
            spin=float(Fraction(row["spin"])),
            gamma_MHz_per_T=float(row["gamma_MHz_per_T"]),
            quadrupole_moment_mb=float(row["Q_mb"]),
            xi_percent=float(row["Xi_percent"]),
        )
    return rows


def list_isotopes() -> list[Isotope]:
    """All isotopes of the shipped table."""
    return list(_table().values())


def get_isotope(name: IsotopeLike) -> Isotope:
    """Look up an isotope by name ("27Al"; "Al27" and "Al-27" are accepted too).

    Raises ``KeyError`` naming the isotope when it is not in the table.
    """
    if isinstance(name, Isotope):
        return name
    if not isinstance(name, str):
        raise TypeError(f"isotope must be a name such as '27Al', got {type(name).__name__}")
    element, mass = _parse_name(name)
    key = f"{mass}{element}"
    table = _table()
    if key not in table:
        known = ", ".join(sorted(iso.name for iso in table.values() if iso.element == element))
        hint = f" (known isotopes of {element}: {known})" if known else ""
        raise KeyError(f"isotope {key!r} is not in the ase_mlnmr isotope table{hint}")
    return table[key]


def default_quadrupolar_isotope(
    element: str, overrides: Mapping[str, IsotopeLike] | None = None
) -> Isotope:
    """Quadrupolar isotope used for an element's CQ.

    ``overrides`` maps element symbols to isotopes (names or :class:`Isotope`) and takes
    precedence over :data:`DEFAULT_QUADRUPOLAR_ISOTOPES`. Raises ``KeyError`` naming the
    element when it has no default (e.g. Si, whose only NMR isotope 29Si has spin 1/2) and
    ``ValueError`` when the chosen isotope is not quadrupolar (spin 1/2 or Q = 0).
    """
    if not isinstance(element, str):
        raise TypeError(f"element must be a symbol such as 'Al', got {type(element).__name__}")
    symbol = element.strip().capitalize()
    if overrides and (element in overrides or symbol in overrides):
        chosen = overrides.get(element, overrides.get(symbol))
    elif symbol in DEFAULT_QUADRUPOLAR_ISOTOPES:
        chosen = DEFAULT_QUADRUPOLAR_ISOTOPES[symbol]
    elif symbol in _NO_QUADRUPOLAR_ISOTOPE:
        raise KeyError(
            f"element {symbol!r} has no stable quadrupolar isotope (its NMR-active isotopes "
            "have spin 1/2), so it has no quadrupolar coupling constant CQ"
        )
    else:
        raise KeyError(
            f"no default quadrupolar isotope for element {symbol!r}; pass one explicitly, "
            f"e.g. isotopes={{'{symbol}': '<mass>{symbol}'}} (defaults exist for "
            f"{', '.join(sorted(DEFAULT_QUADRUPOLAR_ISOTOPES))})"
        )
    isotope = get_isotope(chosen)
    if isotope.element != symbol:
        raise ValueError(f"isotope {isotope.name} chosen for element {symbol!r} is of {isotope.element}")
    _require_quadrupolar(isotope)
    return isotope


def _require_quadrupolar(isotope: Isotope) -> Isotope:
    if isotope.spin <= 0.5:
        raise ValueError(
            f"{isotope.name} has spin {Fraction(isotope.spin)}: a spin-1/2 nucleus has no "
            "quadrupole moment, so CQ is undefined"
        )
    if isotope.quadrupole_moment_mb == 0.0:
        raise ValueError(f"{isotope.name} has Q = 0 in the table: CQ is undefined")
    return isotope


def quadrupolar_isotope(
    species: IsotopeLike, overrides: Mapping[str, IsotopeLike] | None = None
) -> Isotope:
    """Resolve an element symbol ("Al"), isotope name ("27Al") or :class:`Isotope` to a
    quadrupolar isotope (element symbols go through :func:`default_quadrupolar_isotope`)."""
    if isinstance(species, Isotope):
        return _require_quadrupolar(species)
    if not isinstance(species, str):
        raise TypeError(f"expected an element, isotope name or Isotope, got {species!r}")
    if any(ch.isdigit() for ch in species):
        return _require_quadrupolar(get_isotope(species))
    return default_quadrupolar_isotope(species, overrides)
