"""SOAP power spectrum and λ-SOAP descriptors (Charpentier 2025, eq. 1–3 and 5).

``SOAP`` gives invariant features (σiso models); ``LambdaSOAP`` gives λ-equivariant
features (λ = 2: EFG and σ(2); λ = 1: pseudovector σ(1)) and evaluates linear models on
them without building the features (``contract``). Both run the Cython core on a
neighbour list from :mod:`ase_mlnmr.core.neighbours`.

Hyper-parameters (one set per descriptor; build one descriptor per centre species to
use per-species settings as in the paper's Table 1):

* ``species``: neighbour elements, one density channel each;
* ``r_cut`` (Å), ``n_max`` (radial functions per l), ``l_max``, ``sigma`` (Gaussian
  standard deviation, Å);
* ``species_mixing``: optional (n_species, n_channels) matrix mapping each element
  onto density channels (``c^k = Σ_s M_sk c^s``), to keep the feature size in check;
* ``radial_scaling``: optional ``{"r0": Å, "exponent": m}``: each neighbour's density
  weighted by ``1 / (1 + (d/r0)^m)`` (Willatt et al. 2018,
  https://doi.org/10.1039/C8CP05921G), near neighbours dominate.

Guards, not hyper-parameters (not stored in model files): ``max_density`` (atoms/Å³) and
``max_images`` refuse implausibly dense input or tiny cells before the work (see
:mod:`ase_mlnmr.core.neighbours`; raise them to accept such input anyway).

Feature sizes, with M = n_channels · n_max:

* power spectrum: (l_max + 1) · M(M + 1)/2 — grows as n_species² n_max²; with the
  11 elements of the Venetos set, n_max = 6, l_max = 4 that is 10 890 features, with a
  4-channel mixing 1 500;
* λ-SOAP: M (two-body c_{nλμ}) + Σ_pairs M² (l1 < l2) or M(M ± 1)/2 (l1 = l2), with
  the (l1, l2) pairs of :func:`ase_mlnmr.core.clebsch_gordan.coupling_pairs`.

Centres without neighbours inside r_cut have all-zero features (well defined: the
density is empty). The centre atom itself is not part of its density.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from .core import _soap_core
from .core.clebsch_gordan import coupling_pairs, real_clebsch_gordan
from .core.neighbours import MAX_CUTOFF, MAX_DENSITY, MAX_IMAGES, NeighbourList, neighbour_list_from_atoms
from .core.radial_basis import build_radial_table
from .core.spherical_tensors import l2_to_symmetric_traceless

__all__ = ["SOAP", "LambdaSOAP", "random_species_mixing", "atomic_number_of"]


def atomic_number_of(species: str | int) -> int:
    """Atomic number of an element symbol or number; ValueError names an unknown one."""
    if isinstance(species, (int, np.integer)):
        if 0 < int(species) < len(chemical_symbols):
            return int(species)
    elif isinstance(species, str) and species in atomic_numbers and species != "X":
        return atomic_numbers[species]
    raise ValueError(f"unknown species {species!r}: expected an element symbol or atomic number")


def random_species_mixing(n_species: int, n_channels: int, seed: int = 0) -> np.ndarray:
    """A fixed random (n_species, n_channels) mixing with orthonormal columns (if n_channels <= n_species).

    Random projections of the species channels (alchemical compression) keep the
    descriptor size at n_channels² instead of n_species²; the seed makes it reproducible.
    """
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(n_species, n_channels))
    if n_channels <= n_species:
        matrix, _ = np.linalg.qr(matrix)
    return np.ascontiguousarray(matrix)


@lru_cache(maxsize=16)
def _cached_table(r_cut: float, sigma: float, n_max: int, l_max: int, radial_scaling: tuple[float, float] | None):
    return build_radial_table(r_cut, sigma, n_max, l_max, radial_scaling=radial_scaling)


def _radial_scaling_tuple(radial_scaling) -> tuple[float, float] | None:
    """Validated ``(r0, m)`` of a ``{"r0", "exponent"}`` mapping (or None)."""
    if radial_scaling is None:
        return None
    if not isinstance(radial_scaling, dict) or set(radial_scaling) != {"r0", "exponent"}:
        raise ValueError(f"radial_scaling must be None or {{'r0': Å, 'exponent': m}}, got {radial_scaling!r}")
    r0, exponent = float(radial_scaling["r0"]), float(radial_scaling["exponent"])
    if not (np.isfinite(r0) and r0 > 0 and np.isfinite(exponent) and exponent >= 0):
        raise ValueError(f"radial_scaling needs r0 > 0 Å and exponent >= 0, got {radial_scaling!r}")
    return (r0, exponent)


class _SphericalExpansion:
    """Shared set-up: validated hyper-parameters, radial table, species map, neighbour search."""

    def __init__(
        self,
        species: Sequence[str | int],
        r_cut: float = 5.0,
        n_max: int = 6,
        l_max: int = 4,
        sigma: float = 0.4,
        species_mixing: np.ndarray | None = None,
        radial_scaling: dict | None = None,
        *,
        max_density: float = MAX_DENSITY,
        max_images: int = MAX_IMAGES,
    ) -> None:
        if isinstance(species, (str, int)) or len(species) == 0:
            raise ValueError(f"species must be a non-empty list of elements, got {species!r}")
        numbers = [atomic_number_of(s) for s in species]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"species must not repeat, got {list(species)}")
        if not (np.isfinite(r_cut) and 0 < r_cut <= MAX_CUTOFF):
            raise ValueError(f"r_cut must lie in (0, {MAX_CUTOFF}] Å, got {r_cut}")
        if not (isinstance(n_max, (int, np.integer)) and 1 <= n_max <= _soap_core.MAX_N):
            raise ValueError(f"n_max must be an integer in 1..{_soap_core.MAX_N}, got {n_max}")
        if not (isinstance(l_max, (int, np.integer)) and 0 <= l_max <= _soap_core.MAX_L):
            raise ValueError(f"l_max must be an integer in 0..{_soap_core.MAX_L}, got {l_max}")
        if not (np.isfinite(sigma) and 0.05 <= sigma <= r_cut):
            raise ValueError(f"sigma must lie in [0.05, r_cut] Å, got {sigma}")
        self.species = [chemical_symbols[z] for z in numbers]
        self.r_cut = float(r_cut)
        self.n_max = int(n_max)
        self.l_max = int(l_max)
        self.sigma = float(sigma)
        if not (np.isfinite(max_density) and max_density > 0 and max_images >= 1):
            raise ValueError(f"max_density must be > 0 atoms/Å³ and max_images >= 1, got {max_density}, {max_images}")
        self.max_density = float(max_density)
        self.max_images = int(max_images)
        self._radial_scaling = _radial_scaling_tuple(radial_scaling)
        self._species_index = np.full(len(chemical_symbols), -1, dtype=np.int32)
        self._species_index[numbers] = np.arange(len(numbers), dtype=np.int32)
        table = _cached_table(self.r_cut, self.sigma, self.n_max, self.l_max, self._radial_scaling)
        self._core = _soap_core.SoapCore(
            table.coefficients, table.step, table.r_cut, self.n_max, self.l_max, len(numbers), species_mixing
        )
        self.species_mixing = None if species_mixing is None else np.array(self._core.mixing)

    @property
    def n_channels(self) -> int:
        """Number of density channels (n_species, or the mixing's column count)."""
        return self._core.n_channels

    def get_parameters(self) -> dict:
        """Hyper-parameters as a JSON-able dict (for model files)."""
        return {
            "species": list(self.species),
            "r_cut": self.r_cut,
            "n_max": self.n_max,
            "l_max": self.l_max,
            "sigma": self.sigma,
            "species_mixing": None if self.species_mixing is None else self.species_mixing.tolist(),
            "radial_scaling": None if self._radial_scaling is None else {"r0": self._radial_scaling[0],
                                                                         "exponent": self._radial_scaling[1]},
        }

    def species_indices(self, numbers: np.ndarray) -> np.ndarray:
        """Channel index of each atomic number; ValueError names elements not in ``species``."""
        numbers = np.asarray(numbers)
        if numbers.size and (numbers.min() < 1 or numbers.max() >= len(chemical_symbols)):
            raise ValueError(f"invalid atomic numbers in structure: {sorted(set(numbers.tolist()))}")
        index = self._species_index[numbers]
        if np.any(index < 0):
            unknown = sorted({chemical_symbols[z] for z in numbers[index < 0]})
            raise ValueError(f"unknown species {unknown}: this descriptor was built for {self.species}")
        return index

    def select_centres(self, atoms: Atoms, centres: Iterable[int] | Iterable[str] | str | None) -> np.ndarray:
        """Centre indices from None (all atoms), element symbol(s) or explicit indices."""
        n_atoms = len(atoms)
        if centres is None:
            return np.arange(n_atoms, dtype=np.int64)
        if isinstance(centres, str):
            centres = [centres]
        centres = list(centres)
        if centres and all(isinstance(c, str) for c in centres):
            numbers = [atomic_number_of(c) for c in centres]
            return np.flatnonzero(np.isin(atoms.numbers, numbers)).astype(np.int64)
        index = np.asarray(centres, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= n_atoms):
            raise ValueError(f"centre indices must lie in [0, {n_atoms}), got {index.min()}..{index.max()}")
        return index

    def neighbour_list(self, atoms: Atoms, centres=None) -> tuple[NeighbourList, np.ndarray]:
        """Neighbour list of the centres and the channel index of every neighbour."""
        if len(atoms) == 0:
            raise ValueError("empty structure: no atoms")
        species = self.species_indices(atoms.numbers)
        nl = neighbour_list_from_atoms(atoms, self.r_cut, self.select_centres(atoms, centres),
                                       max_density=self.max_density, max_images=self.max_images)
        return nl, species[nl.neighbours]

    def spherical_expansion(self, atoms: Atoms, centres=None) -> list[np.ndarray]:
        """c_{a l m} per centre as a list over l of arrays (n_centres, n_channels, n_max, 2l+1)."""
        nl, species = self.neighbour_list(atoms, centres)
        flat = self._core.spherical_expansion(nl.offsets, nl.vectors, species)
        rows = self.n_channels * self.n_max
        out = []
        for l in range(self.l_max + 1):
            block = flat[:, rows * l * l: rows * (l + 1) ** 2]
            out.append(block.reshape(len(flat), self.n_channels, self.n_max, 2 * l + 1))
        return out


class SOAP(_SphericalExpansion):
    """Invariant SOAP power spectrum with a spherical Bessel radial basis.

    ``p^{ab}_l = Σ_m c_{a l m} c_{b l m}`` for a = (channel, n) <= b in row-major order,
    l outermost, with a factor √2 on a != b entries (so that ‖p‖ equals the norm of the
    full symmetric set). Output of :meth:`create`: (n_centres, n_features).
    """

    @property
    def n_features(self) -> int:
        return self._core.n_power_spectrum

    def create(self, atoms: Atoms | Sequence[Atoms], centres=None) -> np.ndarray:
        """Power spectrum of the centres (default all atoms) of one structure or a list.

        For a list, ``centres`` applies to each structure and the rows are stacked.
        """
        if isinstance(atoms, Atoms):
            return self.create_single(atoms, centres)
        parts = [self.create_single(a, centres) for a in atoms]
        return np.concatenate(parts) if parts else np.empty((0, self.n_features))

    def create_single(self, atoms: Atoms, centres=None) -> np.ndarray:
        nl, species = self.neighbour_list(atoms, centres)
        return self._core.power_spectrum(nl.offsets, nl.vectors, species)


class LambdaSOAP(_SphericalExpansion):
    """λ-SOAP equivariant features and contracted linear λ-models.

    ``q^{λμ}_{ab,l1l2} = Σ_{m1m2} C^R(l1 m1, l2 m2 | λ μ) c_{a l1 m1} c_{b l2 m2}`` for the
    (l1, l2) pairs of :func:`coupling_pairs` (l1 + l2 even: unchanged by inversion), plus
    the two-body features ``c_{a λ μ}`` first (``two_body=True``). Output of
    :meth:`create`: (n_centres, 2λ+1, n_features), components in the order μ = −λ..λ of
    the real harmonics (for λ = 2 the basis of :mod:`ase_mlnmr.core.spherical_tensors`).
    """

    def __init__(
        self,
        species: Sequence[str | int],
        r_cut: float = 5.0,
        n_max: int = 6,
        l_max: int = 4,
        sigma: float = 0.4,
        lam: int = 2,
        two_body: bool = True,
        species_mixing: np.ndarray | None = None,
        radial_scaling: dict | None = None,
        *,
        max_density: float = MAX_DENSITY,
        max_images: int = MAX_IMAGES,
    ) -> None:
        super().__init__(species, r_cut, n_max, l_max, sigma, species_mixing, radial_scaling,
                         max_density=max_density, max_images=max_images)
        if not (isinstance(lam, (int, np.integer)) and 0 <= lam <= 2 * self.l_max):
            raise ValueError(f"lam must be an integer in 0..2*l_max={2 * self.l_max}, got {lam}")
        if two_body and lam > self.l_max:
            raise ValueError(f"two-body λ={lam} features need l_max >= λ, got l_max={self.l_max}")
        self.lam = int(lam)
        self.two_body = bool(two_body)
        self.pairs = coupling_pairs(self.l_max, self.lam)
        offsets, m1, m2, mu, value = [0], [], [], [], []
        for l1, l2 in self.pairs:
            cg = real_clebsch_gordan(l1, l2, self.lam)
            a, b, c = np.nonzero(cg)
            m1.append(a)
            m2.append(b)
            mu.append(c)
            value.append(cg[a, b, c])
            offsets.append(offsets[-1] + len(a))
        self._lambda_core = _soap_core.LambdaCore(
            self._core, self.lam, np.array(self.pairs, dtype=np.int32).reshape(-1, 2), np.array(offsets),
            np.concatenate(m1), np.concatenate(m2), np.concatenate(mu), np.concatenate(value), self.two_body,
        )
        self._pair_sizes = self._lambda_core.pair_sizes()

    @property
    def n_features(self) -> int:
        return self._lambda_core.n_features

    @property
    def n_components(self) -> int:
        return 2 * self.lam + 1

    def get_parameters(self) -> dict:
        parameters = super().get_parameters()
        parameters.update(lam=self.lam, two_body=self.two_body)
        return parameters

    def create(self, atoms: Atoms | Sequence[Atoms], centres=None) -> np.ndarray:
        """Features of one structure or a stacked list, shape (n_centres, 2λ+1, n_features)."""
        if isinstance(atoms, Atoms):
            return self.create_single(atoms, centres)
        parts = [self.create_single(a, centres) for a in atoms]
        return np.concatenate(parts) if parts else np.empty((0, self.n_components, self.n_features))

    def create_single(self, atoms: Atoms, centres=None) -> np.ndarray:
        nl, species = self.neighbour_list(atoms, centres)
        return self._lambda_core.features(nl.offsets, nl.vectors, species)

    def fold_weights(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Turn one weight per feature into the per-(l1, l2) matrices the contracted path uses.

        Returns ``pair_weights`` (n_pairs, M, M) with W[a, b] = w_f · s_f (s_f the √2
        factor of feature f, upper triangle for l1 = l2) and the two-body weights (M,).
        """
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (self.n_features,):
            raise ValueError(f"weights must have shape ({self.n_features},), got {weights.shape}")
        if not np.all(np.isfinite(weights)):
            raise ValueError("weights contain NaN or inf")
        rows = self.n_channels * self.n_max
        start = 0
        two_body = None
        if self.two_body:
            two_body = weights[:rows].copy()
            start = rows
        pair_weights = np.zeros((len(self.pairs), rows, rows))
        for p, ((l1, l2), size) in enumerate(zip(self.pairs, self._pair_sizes)):
            w = weights[start: start + size]
            start += size
            if l1 != l2:
                pair_weights[p] = np.sqrt(2.0) * w.reshape(rows, rows)
            else:
                upper = np.triu_indices(rows, 0 if self.lam % 2 == 0 else 1)
                scale = np.where(upper[0] == upper[1], 1.0, np.sqrt(2.0))
                pair_weights[p][upper] = scale * w
        return pair_weights, two_body

    def contract(self, atoms: Atoms, weights: np.ndarray, centres=None) -> np.ndarray:
        """Linear model ``Σ_f w_f q^{λμ}_f`` per centre without building q, shape (n_centres, 2λ+1)."""
        pair_weights, two_body = self.fold_weights(weights)
        nl, species = self.neighbour_list(atoms, centres)
        return self._lambda_core.contract(nl.offsets, nl.vectors, species, pair_weights, two_body)

    def contract_folded(self, offsets, vectors, species_index, pair_weights, two_body_weights=None) -> np.ndarray:
        """Contracted path straight from CSR neighbour data and folded weights."""
        return self._lambda_core.contract(offsets, vectors, species_index, pair_weights, two_body_weights)

    def contract_tensors(self, atoms: Atoms, weights: np.ndarray, centres=None) -> np.ndarray:
        """λ = 2 model output as symmetric traceless Cartesian tensors, shape (n_centres, 3, 3)."""
        if self.lam != 2:
            raise ValueError(f"contract_tensors needs λ = 2, this descriptor has λ = {self.lam}")
        return l2_to_symmetric_traceless(self.contract(atoms, weights, centres))
