"""Neighbour lists for periodic (any cell shape), partly periodic and open structures.

The search itself is the Cython cell list in ``_neighbours``; this module validates the
input and lays out the points it searches: the atoms, wrapped into the cell along
periodic directions, followed by every periodic image that lies within r_cut of the
cell (so cells smaller than 2 r_cut, where one atom meets several images of the same
neighbour, are handled). Cost and memory are linear in the number of atoms.

Input no condensed phase produces is refused up front with
:class:`ImplausibleStructureError`, before the cost it would cause (both limits are
keywords of :func:`neighbour_list`, so a user who really means it can raise them):

* ``max_density`` (default :data:`MAX_DENSITY` = 0.5 atoms/Å³; the densest solids at
  ambient pressure, diamond and c-BN, have 0.18): a fully periodic cell holding more
  atoms per Å³, or more than ``max_density · 4/3 π r_cut³`` neighbours per centre on
  average (at least :data:`MIN_NEIGHBOUR_ALLOWANCE`), the search stops there. The usual
  cause is fractional coordinates given as Cartesian, or positions in Bohr or nm;
* ``max_images`` (default :data:`MAX_IMAGES` = 1e5): more periodic images of the cell
  within r_cut than this (a cell whose planes are ≲ 0.5 Å apart at r_cut = 12 Å); the
  usual cause is a cell given in the wrong units, or a cell left at zero size.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ._neighbours import PairLimitError, find_neighbours

__all__ = ["MAX_CUTOFF", "MAX_IMAGE_POINTS", "MAX_DENSITY", "MAX_IMAGES", "MIN_NEIGHBOUR_ALLOWANCE",
           "ImplausibleStructureError", "NeighbourList", "neighbour_list", "neighbour_list_from_atoms"]

#: Largest cut-off radius accepted (Å). The radial tables and the neighbour counts
#: (≈ 0.1 atoms/Å³ × 4/3 π r_cut³ ≈ 700 neighbours at 12 Å) are sized for it.
MAX_CUTOFF = 12.0
#: Largest number of points (atoms + periodic images) a search may lay out.
MAX_IMAGE_POINTS = 20_000_000
#: Default largest number density (atoms/Å³) accepted, in the cell or within r_cut.
MAX_DENSITY = 0.5
#: Default largest number of periodic images of the cell the search may lay out.
MAX_IMAGES = 100_000
#: Neighbours per centre always allowed, whatever r_cut (small cut-offs round to few atoms).
MIN_NEIGHBOUR_ALLOWANCE = 64


class ImplausibleStructureError(ValueError):
    """A structure no condensed phase produces (far too dense, or a cell far too small):
    refused before the search would take minutes and gigabytes."""


@dataclass(frozen=True)
class NeighbourList:
    """Neighbours of each centre in CSR form.

    ``offsets[i]:offsets[i+1]`` index the neighbours of ``centres[i]``;
    ``neighbours`` holds their atom indices (periodic images map to the atom they copy)
    and ``vectors`` the displacements r_j − r_i (Å), shape (n_pairs, 3).
    """

    centres: np.ndarray
    offsets: np.ndarray
    neighbours: np.ndarray
    vectors: np.ndarray

    @property
    def n_pairs(self) -> int:
        return int(self.offsets[-1])

    def counts(self) -> np.ndarray:
        """Number of neighbours of each centre."""
        return np.diff(self.offsets)

    def distances(self) -> np.ndarray:
        """|r_j − r_i| (Å) for every pair."""
        return np.linalg.norm(self.vectors, axis=1)


def _complete_basis(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Cell rows along periodic directions, unit vectors orthogonal to them elsewhere."""
    basis = np.zeros((3, 3))
    periodic = np.flatnonzero(pbc)
    basis[periodic] = cell[periodic]
    if len(periodic):
        singular = np.linalg.svd(cell[periodic], compute_uv=False)
        lengths = np.linalg.norm(cell[periodic], axis=1)
        if lengths.min() < 1e-6 or singular.min() < 1e-6 * max(1.0, singular.max()):
            raise ValueError(
                "degenerate cell: the periodic cell vectors "
                f"{cell[periodic].tolist()} are zero or linearly dependent"
            )
    open_dirs = np.flatnonzero(~pbc)
    if len(open_dirs):
        if len(periodic):
            _, _, vt = np.linalg.svd(cell[periodic])
            complement = vt[len(periodic):]
        else:
            complement = np.eye(3)
        basis[open_dirs] = complement[: len(open_dirs)]
    return basis


def neighbour_list(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray | bool,
    r_cut: float,
    centres: np.ndarray | None = None,
    *,
    max_density: float = MAX_DENSITY,
    max_images: int = MAX_IMAGES,
) -> NeighbourList:
    """All neighbours within ``r_cut`` (Å) of the centres (default: every atom).

    Raises ``ValueError`` naming the problem for an empty structure, NaN/inf positions,
    a degenerate periodic cell, a bad or too large r_cut, or centres out of range, and
    :class:`ImplausibleStructureError` for input denser than ``max_density`` (atoms/Å³)
    or needing more than ``max_images`` periodic images (see the module docstring).
    """
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape (n_atoms, 3), got {positions.shape}")
    n_atoms = len(positions)
    if n_atoms == 0:
        raise ValueError("empty structure: no atoms")
    bad = np.flatnonzero(~np.all(np.isfinite(positions), axis=1))
    if len(bad):
        raise ValueError(f"NaN or inf positions at atoms {bad[:10].tolist()}")
    if not np.isfinite(r_cut) or r_cut <= 0:
        raise ValueError(f"r_cut must be a positive number of Å, got {r_cut}")
    if r_cut > MAX_CUTOFF:
        raise ValueError(f"r_cut={r_cut} Å is larger than the supported maximum {MAX_CUTOFF} Å")
    cell = np.asarray(cell, dtype=float).reshape(3, 3)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    if not np.all(np.isfinite(cell)):
        raise ValueError("NaN or inf in the cell")
    if centres is None:
        centre_index = np.arange(n_atoms, dtype=np.int64)
    else:
        centre_index = np.ascontiguousarray(centres, dtype=np.int64).ravel()
        if len(centre_index) and (centre_index.min() < 0 or centre_index.max() >= n_atoms):
            raise ValueError(f"centre indices must lie in [0, {n_atoms}), got {centre_index.min()}..{centre_index.max()}")

    if not (max_density > 0 and max_images >= 1):
        raise ValueError(f"max_density and max_images must be positive, got {max_density}, {max_images}")

    basis = _complete_basis(cell, pbc)
    points, point_atom = positions, np.arange(n_atoms, dtype=np.int64)
    periodic = np.flatnonzero(pbc)
    if len(periodic):
        fractional = positions @ np.linalg.inv(basis)
        shifts = np.zeros_like(fractional)
        shifts[:, periodic] = np.floor(fractional[:, periodic])
        fractional -= shifts
        wrapped = positions - shifts @ basis
        volume = abs(np.linalg.det(basis))
        padding = np.zeros(3)
        for k in periodic:
            other = [i for i in range(3) if i != k]
            plane_spacing = volume / np.linalg.norm(np.cross(basis[other[0]], basis[other[1]]))
            padding[k] = r_cut / plane_spacing
        expected = n_atoms * np.prod(1.0 + 2.0 * padding[periodic])
        if expected > MAX_IMAGE_POINTS:
            raise ValueError(
                f"r_cut={r_cut} Å is too large for this cell: the search would need about "
                f"{expected:.3g} periodic images (limit {MAX_IMAGE_POINTS}); is the cell in Å?"
            )
        if len(periodic) == 3 and n_atoms / volume > max_density:
            raise ImplausibleStructureError(
                f"{n_atoms} atom(s) in a periodic cell of {volume:.4g} Å³ ({n_atoms / volume:.3g} atoms/Å³; "
                f"no condensed phase exceeds ~0.2, the limit is max_density={max_density}): is the cell "
                "in Å, and are the positions Cartesian in Å (not fractional, Bohr or nm)?"
            )
        ranges = [range(-int(np.ceil(padding[k])), int(np.ceil(padding[k])) + 1) if pbc[k] else range(1)
                  for k in range(3)]
        n_images = int(np.prod([len(r) for r in ranges]))
        if n_images > max_images:
            spacing = r_cut / padding[periodic].max()
            raise ImplausibleStructureError(
                f"the periodic cell is tiny for r_cut={r_cut} Å: lattice planes {spacing:.3g} Å apart need "
                f"{n_images:.3g} periodic images (limit max_images={max_images}): is the cell in Å "
                "(not fractional units, Bohr or nm)?"
            )
        image_points, image_atoms = [wrapped], [point_atom]
        for shift in itertools.product(*ranges):
            if shift == (0, 0, 0):
                continue
            shifted = fractional[:, periodic] + np.asarray(shift, dtype=float)[periodic]
            inside = np.all((shifted >= -padding[periodic]) & (shifted <= 1.0 + padding[periodic]), axis=1)
            if inside.any():
                image_points.append(wrapped[inside] + np.asarray(shift, dtype=float) @ basis)
                image_atoms.append(point_atom[inside])
        points = np.concatenate(image_points)
        point_atom = np.concatenate(image_atoms)
    allowed_per_centre = max(max_density * 4.0 / 3.0 * np.pi * r_cut**3, MIN_NEIGHBOUR_ALLOWANCE)
    max_pairs = int(min(allowed_per_centre * len(centre_index), np.iinfo(np.int64).max // 2))
    try:
        offsets, neighbours, vectors = find_neighbours(
            np.ascontiguousarray(points), np.ascontiguousarray(point_atom), centre_index, float(r_cut),
            max_pairs=max_pairs,
        )
    except PairLimitError as error:
        mean = error.n_pairs / error.n_centres_done
        raise ImplausibleStructureError(
            f"far too dense: the first {error.n_centres_done} centres have at least {mean:.4g} neighbours each within "
            f"r_cut={r_cut} Å, a density of at least {mean / (4.0 / 3.0 * np.pi * r_cut**3):.3g} atoms/Å³ (no condensed "
            f"phase exceeds ~0.2; the limit is max_density={max_density}): are the positions Cartesian in Å "
            "(not fractional coordinates, Bohr or nm)?"
        ) from None
    return NeighbourList(centres=centre_index, offsets=offsets, neighbours=neighbours, vectors=vectors)


def neighbour_list_from_atoms(
    atoms, r_cut: float, centres: np.ndarray | None = None, *, max_density: float = MAX_DENSITY,
    max_images: int = MAX_IMAGES,
) -> NeighbourList:
    """:func:`neighbour_list` for an ``ase.Atoms``."""
    return neighbour_list(atoms.get_positions(), atoms.get_cell().array, atoms.get_pbc(), r_cut, centres,
                          max_density=max_density, max_images=max_images)
