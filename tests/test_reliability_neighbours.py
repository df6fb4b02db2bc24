"""Neighbour search on hostile input (issue 8, items 1, 8, 10): far-flung atoms never
crash it and give the brute-force neighbours; absurdly dense input and tiny cells are
refused before the work, with limits the user can raise."""
from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import ase_mlnmr
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from ase_mlnmr.core.neighbours import (
    MAX_DENSITY,
    ImplausibleStructureError,
    neighbour_list,
    neighbour_list_from_atoms,
)
from ase_mlnmr.descriptors import SOAP

from conftest import random_structure



def _run_python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a segfault shows as a failed test, not a dead run)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=Path(ase_mlnmr.__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=600)


def brute_force_pairs(positions, cell, pbc, r_cut):
    """Every (i, j, r_j + S − r_i) with |·| < r_cut by explicit loops over the lattice
    shifts S that can matter; independent of the cell list (pure NumPy)."""
    positions = np.asarray(positions, float)
    cell = np.asarray(cell, float)
    reach = []
    for k in range(3):
        if pbc[k]:
            others = [i for i in range(3) if i != k]
            spacing = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[others[0]], cell[others[1]]))
            # positions are wrapped below, so one extra image covers every pair
            reach.append(range(-int(np.ceil(r_cut / spacing)) - 1, int(np.ceil(r_cut / spacing)) + 2))
        else:
            reach.append(range(1))
    wrapped = positions.copy()
    periodic = np.flatnonzero(pbc)
    if len(periodic):
        fractional = np.linalg.solve(cell.T, positions.T).T
        shift = np.zeros_like(fractional)
        shift[:, periodic] = np.floor(fractional[:, periodic])
        wrapped = positions - shift @ cell
    rows = []
    for s in itertools.product(*reach):
        offset = np.asarray(s, float) @ cell
        d = wrapped[None, :, :] + offset - wrapped[:, None, :]
        close = np.linalg.norm(d, axis=2) < r_cut
        if s == (0, 0, 0):
            np.fill_diagonal(close, False)
        i, j = np.nonzero(close)
        rows.append(np.column_stack([i, j, d[i, j]]))
    rows = np.concatenate(rows)
    return rows[np.lexsort(np.round(rows, 6).T[::-1])]


def cell_list_pairs(positions, cell, pbc, r_cut):
    nl = neighbour_list(positions, cell, pbc, r_cut)
    rows = np.column_stack([np.repeat(nl.centres, nl.counts()), nl.neighbours, nl.vectors])
    return rows[np.lexsort(np.round(rows, 6).T[::-1])]


def test_issue_reproducer_far_flung_atom_does_not_crash():
    # the exact input of issue 8, item 1: np.prod(bins) wrapped in int64 and segfaulted
    result = _run_python("""
        import numpy as np
        from ase import Atoms
        from ase_mlnmr import SOAP
        far = [5 * 2**21 + 2, 5 * 2**21 + 2, 5 * 2**22 + 2]
        p = SOAP(["Al", "O"], r_cut=5.0).create(Atoms("AlOO", positions=[[0, 0, 0], [1.9, 0, 0], far]))
        print(p.shape, int(np.count_nonzero(np.abs(p).sum(axis=1))))
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    # Al and its O neighbour have features, the stray O has none
    assert result.stdout.split() == ["(3,", "390)", "2"]


@pytest.mark.parametrize("far", [1e3, 7.3e5, 5 * 2**21 + 2, 3.1e12, 1e120])
def test_exploded_open_frame_matches_brute_force(far):
    atoms = random_structure(60, pbc=False, seed=11)
    positions = atoms.get_positions()
    rng = np.random.default_rng(5)
    flung = [3, 17, 41]
    # two flung atoms end up close to each other far away: they must find each other
    positions[flung[0]] = [far, 0.5 * far, -far]
    positions[flung[1]] = positions[flung[0]] + [1.0, 0.7, 0.0]
    positions[flung[2]] = -far * rng.random(3)
    expected = brute_force_pairs(positions, np.eye(3), [False] * 3, 4.5)
    got = cell_list_pairs(positions, np.zeros((3, 3)), False, 4.5)
    assert len(got) == len(expected) > 0
    np.testing.assert_allclose(got, expected, atol=1e-9 * max(far, 1.0))
    assert np.isin([flung[0], flung[1]], got[:, 0]).all()


@pytest.mark.parametrize("pbc", [(True, True, False), (True, False, False)])
def test_exploded_slab_frame_matches_brute_force(pbc):
    # atoms flung out of a slab along its open direction(s)
    atoms = random_structure(40, pbc=pbc, seed=4)
    positions = atoms.get_positions()
    positions[5] += [0.0, 0.0, 4e6]
    positions[6] = positions[5] + [0.0, 1.2, 0.3]
    positions[9] += [0.0, 0.0, -2e9]
    expected = brute_force_pairs(positions, atoms.cell.array, pbc, 4.0)
    got = cell_list_pairs(positions, atoms.cell.array, pbc, 4.0)
    assert len(got) == len(expected) > 0
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_fractional_coordinates_given_as_cartesian_are_refused_before_the_work():
    rng = np.random.default_rng(0)
    for atoms in (Atoms("Si" * 10_000, positions=rng.random((10_000, 3))),  # open, 1 Å³
                  Atoms("Si" * 10_000, positions=rng.random((10_000, 3)), cell=[200.0] * 3, pbc=True)):
        with pytest.raises(ImplausibleStructureError, match="fractional"):
            SOAP(["Si"], r_cut=5.0).create(atoms)


def test_tiny_periodic_cell_is_refused_naming_the_cause():
    atoms = Atoms("Al", cell=[0.05] * 3, pbc=True)  # ~8 million image shifts at r_cut 5 Å
    with pytest.raises(ImplausibleStructureError, match="atoms/Å³"):
        SOAP(["Al"], r_cut=5.0).create(atoms)
    with pytest.raises(ImplausibleStructureError, match="periodic images"):
        neighbour_list_from_atoms(atoms, 5.0, max_density=1e9)
    slab = Atoms("Al", cell=[0.01, 0.01, 10.0], pbc=(True, True, False))
    with pytest.raises(ImplausibleStructureError, match="periodic images"):
        SOAP(["Al"], r_cut=5.0).create(slab)


def test_dense_but_real_solids_pass_and_limits_can_be_raised():
    diamond = bulk("C", "diamond", a=3.567).repeat(2)   # 0.176 atoms/Å³, densest common solid
    for r_cut in (1.6, 5.0, 12.0):
        nl = neighbour_list_from_atoms(diamond, r_cut)
        assert nl.n_pairs > 0
    squeezed = bulk("C", "diamond", a=3.567 * 0.75).repeat(2)  # 0.42 atoms/Å³ passes
    neighbour_list_from_atoms(squeezed, 5.0)
    crushed = bulk("C", "diamond", a=3.567 * 0.5).repeat(2)  # 1.41 atoms/Å³ refused ...
    with pytest.raises(ImplausibleStructureError):
        neighbour_list_from_atoms(crushed, 5.0)
    # ... unless the user raises the limit (keyword on the neighbour list and descriptors)
    nl = neighbour_list_from_atoms(crushed, 5.0, max_density=2.0)
    expected = brute_force_pairs(crushed.positions, crushed.cell.array, [True] * 3, 5.0)
    assert nl.n_pairs == len(expected)
    assert SOAP(["C"], r_cut=3.0, max_density=2.0).create(crushed).shape[0] == len(crushed)
    assert MAX_DENSITY == 0.5


def test_neighbour_guards_validate_their_own_values():
    with pytest.raises(ValueError, match="max_density"):
        SOAP(["C"], max_density=0.0)
    with pytest.raises(ValueError, match="max_density"):
        neighbour_list(np.zeros((1, 3)), np.eye(3), False, 3.0, max_density=-1.0)
