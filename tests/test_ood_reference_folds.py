"""The OOD reference (held-out Nyström residuals) uses the training config's
``selection.n_splits`` folds: the one default, and a user's value, per element."""
from __future__ import annotations

import numpy as np
import pytest

from ase_mlnmr.models.nystrom import held_out_residuals
from ase_mlnmr.nmr_model import NMRModel
from ase_mlnmr.training.config import DEFAULT_CONFIG

from synthetic_data import synthetic_dataset

SMALL = {"descriptor": {"r_cut": 4.5, "n_max": 3, "l_max": 2, "sigma": 0.4},
         "ms_iso": {"n_inducing": 40}, "ood": {"n_inducing": 40},
         "species": {"Si": {"properties": ["ms_iso"]}}}


@pytest.fixture(scope="module")
def data():
    return synthetic_dataset(n_structures=6, n_atoms=18, seed=11)


def _residuals_by_hand(model: NMRModel, data, element: str, n_splits: int) -> np.ndarray:
    """Held-out residuals of the element's training atoms with ``n_splits`` structure folds."""
    descriptor, nystrom = model.ood_models[element]
    selection = data.select("ms", element)
    features, groups = [], []
    for structure in np.unique(selection.structure_index):
        centres = selection.atom_index[selection.structure_index == structure]
        features.append(descriptor.create(data.structures[structure], centres=centres))
        groups.append(np.full(len(centres), structure))
    return np.sort(held_out_residuals(nystrom, np.concatenate(features), np.concatenate(groups),
                                      model.ood_rank[element], n_splits))


def test_ood_reference_folds_follow_selection_n_splits(data):
    default = NMRModel.train(data, SMALL, progress=False)
    assert DEFAULT_CONFIG["selection"]["n_splits"] != 2
    np.testing.assert_array_equal(default.ood_reference["Si"],
                                  _residuals_by_hand(default, data, "Si", DEFAULT_CONFIG["selection"]["n_splits"]))
    two = NMRModel.train(data, {**SMALL, "species": {"Si": {"properties": ["ms_iso"], "selection": {"n_splits": 2}}}},
                         progress=False)
    np.testing.assert_array_equal(two.ood_reference["Si"], _residuals_by_hand(two, data, "Si", 2))
    assert not np.array_equal(two.ood_reference["Si"], _residuals_by_hand(two, data, "Si", 5))  # the folds matter
    two.fit_ood_reference(data)  # without n_splits: the config's default again
    np.testing.assert_array_equal(two.ood_reference["Si"], _residuals_by_hand(two, data, "Si", 5))
