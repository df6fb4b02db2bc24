"""Neighbour search against ASE's independent neighbour list, in awkward cells."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list

from ase_mlnmr.core.neighbours import MAX_CUTOFF, neighbour_list, neighbour_list_from_atoms

from conftest import random_structure


def _pairs_sorted(i, j, vectors):
    """Canonical sortable rows (i, j, rounded vector) to compare two neighbour lists."""
    rows = np.column_stack([i, j, np.round(vectors, 8)])
    return rows[np.lexsort(rows.T[::-1])]


def _compare_with_ase(atoms: Atoms, r_cut: float) -> int:
    nl = neighbour_list_from_atoms(atoms, r_cut)
    centre_of_pair = np.repeat(nl.centres, nl.counts())
    i, j, d_vec = neighbor_list("ijD", atoms, r_cut, self_interaction=False)
    assert nl.n_pairs == len(i)
    np.testing.assert_array_equal(
        _pairs_sorted(centre_of_pair, nl.neighbours, nl.vectors), _pairs_sorted(i, j, d_vec)
    )
    return nl.n_pairs


@pytest.mark.parametrize("pbc", [True, (True, False, True), (False, False, True), False])
def test_triclinic_and_partial_periodicity_match_ase(pbc):
    atoms = random_structure(40, pbc=pbc, seed=3)
    assert _compare_with_ase(atoms, 4.5) > 0


def test_cell_smaller_than_twice_the_cutoff_sees_many_images():
    # 2-atom diamond primitive cell (~3.8 Å vectors) with r_cut 6 Å: every atom meets
    # dozens of images of the same neighbours, including images of itself.
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.05, seed=2)
    n_pairs = _compare_with_ase(atoms, 6.0)
    nl = neighbour_list_from_atoms(atoms, 6.0)
    assert n_pairs > 80
    assert np.any(nl.neighbours[: nl.offsets[1]] == 0)  # self images of atom 0


def test_strongly_skewed_cell():
    cell = np.array([[4.0, 0.0, 0.0], [3.7, 1.2, 0.0], [0.5, 0.3, 5.0]])
    atoms = random_structure(6, symbols=("O",), cell=cell, min_distance=1.0, seed=5)
    _compare_with_ase(atoms, 5.5)


def test_positions_outside_the_cell_give_the_same_vectors():
    atoms = random_structure(30, seed=7)
    shifted = atoms.copy()
    shifted.positions += np.array([3, -2, 5]) @ atoms.cell.array + 0.0
    a = neighbour_list_from_atoms(atoms, 4.0)
    b = neighbour_list_from_atoms(shifted, 4.0)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_allclose(
        _pairs_sorted(np.repeat(a.centres, a.counts()), a.neighbours, a.vectors),
        _pairs_sorted(np.repeat(b.centres, b.counts()), b.neighbours, b.vectors),
        atol=1e-7,
    )


def test_centre_subset_and_isolated_atom():
    atoms = Atoms("SiO", positions=[[0, 0, 0], [10, 0, 0]], pbc=False)
    nl = neighbour_list_from_atoms(atoms, 5.0, centres=[1])
    assert nl.n_pairs == 0 and list(nl.offsets) == [0, 0]


def test_bad_input_is_named():
    positions = np.zeros((2, 3))
    cell = np.eye(3) * 5
    with pytest.raises(ValueError, match="empty structure"):
        neighbour_list(np.zeros((0, 3)), cell, True, 3.0)
    with pytest.raises(ValueError, match="NaN or inf positions at atoms \\[1\\]"):
        neighbour_list(np.array([[0, 0, 0], [np.nan, 0, 0]]), cell, True, 3.0)
    with pytest.raises(ValueError, match="degenerate cell"):
        neighbour_list(positions, np.array([[5, 0, 0], [10, 0, 0], [0, 0, 5]]), True, 3.0)
    with pytest.raises(ValueError, match="degenerate cell"):
        neighbour_list(positions, np.zeros((3, 3)), (True, False, False), 3.0)
    with pytest.raises(ValueError, match="larger than the supported maximum"):
        neighbour_list(positions, cell, True, MAX_CUTOFF + 1)
    with pytest.raises(ValueError, match="positive"):
        neighbour_list(positions, cell, True, -1.0)
    with pytest.raises(ValueError, match="too large for this cell"):
        neighbour_list(np.zeros((1, 3)), np.eye(3) * 0.05, True, 11.0)
