"""Committee outputs of the compiled evaluator (members as stacked folded-weight GEMMs,
σiso members as one GEMM per kernel block): bitwise the same under shuffled centres and
neighbours, other block sizes and thread counts, and equal to the members' predictions on
the Python λ-SOAP features (an independent path) for every (l1, l2) pair up to l_max = 4;
σ(2), σ(1) and EFG committees."""
from __future__ import annotations

import numpy as np
import pytest

from ase_mlnmr.core import evaluator as ev
from ase_mlnmr.core.neighbours import neighbour_list_from_atoms
from ase_mlnmr.nmr_model import NMRModel

from conftest import random_structure
from synthetic_data import synthetic_dataset, with_antisymmetric_shielding

CONFIG = {"descriptor": {"r_cut": 4.5, "n_max": 2, "l_max": 4, "sigma": 0.4},
          "ms_iso": {"n_inducing": 30}, "ood": {"n_inducing": 30}, "efg": {"alpha": 1e-3},
          "ms_aniso": {"alpha": 1e-3}, "ms_antisym": {"alpha": 1e-3},
          "committee": {"size": 8, "fraction": 0.5, "seed": 5},
          "species": {"Si": {"properties": ["ms_iso", "ms_aniso", "ms_antisym", "efg"]},
                      "O": {"properties": ["ms_iso", "efg"]}}}


@pytest.fixture(scope="module")
def model():
    data = with_antisymmetric_shielding(synthetic_dataset(n_structures=10, n_atoms=24, seed=31))
    return NMRModel.train(data, CONFIG, progress=False)


def _csr(atoms, cutoff):
    nl = neighbour_list_from_atoms(atoms, cutoff)
    return nl.offsets, nl.vectors, atoms.numbers[nl.neighbours]


def test_committee_outputs_are_bitwise_deterministic(model):
    atoms = random_structure(90, symbols=("Si", "O", "O"), seed=77, min_distance=1.5,
                             cell=np.diag([12.0, 11.0, 12.5]))
    evaluator = model.evaluator()
    offsets, vectors, numbers = _csr(atoms, evaluator.cutoff)
    base = evaluator.predict(atoms.numbers, offsets, vectors, numbers)
    for name in ("ms_iso_std", "ms_l2_std", "efg_l2_std", "vzz_std", "cq_std", "pq_std", "vzz_axis_flag",
                 "ms_l1_std"):
        values = ev.output_field(base, name)
        assert np.isfinite(values[atoms.numbers == 14]).all() == (name not in ("cq_std", "pq_std")), name  # 29Si: no CQ
        # O: no σ(2), no σ(1)
        assert np.isfinite(values[atoms.numbers == 8]).all() == (name not in ("ms_l2_std", "ms_l1_std")), name
    rng = np.random.default_rng(1)
    order = rng.permutation(len(atoms))
    counts = np.diff(offsets)
    new_offsets = np.concatenate([[0], np.cumsum(counts[order])])
    entries = np.concatenate([rng.permutation(np.arange(offsets[i], offsets[i + 1])) for i in order])
    np.testing.assert_array_equal(evaluator.predict(atoms.numbers[order], new_offsets, vectors[entries],
                                                    numbers[entries]), base[order])
    for block_size in (1, 2, 7, 300):
        other = ev.Evaluator(model, block_size=block_size)
        np.testing.assert_array_equal(other.predict(atoms.numbers, offsets, vectors, numbers), base)
    for threads in (2, 3):
        np.testing.assert_array_equal(evaluator.predict(atoms.numbers, offsets, vectors, numbers, n_threads=threads),
                                      base)


@pytest.mark.parametrize("element, prop, field", [("Si", "ms_aniso", "ms_aniso_std"),
                                                  ("Si", "ms_antisym", "ms_antisym_std"), ("Si", "efg", "efg_std"),
                                                  ("O", "efg", "efg_std"), ("O", "ms_iso", "ms_iso_std")])
def test_member_spread_matches_the_members_on_python_features(model, element, prop, field):
    atoms = random_structure(40, symbols=("Si", "O", "O"), seed=78, min_distance=1.5)
    centres = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == element)
    component = model.models[(element, prop)]
    members = component.regressor.predict_members(component.features(atoms, centres))
    expected = component.regressor.calibration_ * np.std(members, axis=0, ddof=1)
    predicted = getattr(model.predict(atoms), field)[centres]
    assert np.max(np.abs(predicted - expected)) <= 1e-12 * np.abs(members).max()
