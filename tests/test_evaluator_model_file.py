"""Model files for the evaluator: shared Nyström arrays stored once, packed Cholesky factor,
files in the layout of commit 245de03 still load (and share again); the OOD reference,
rank and threshold round-trip; a σ(2)-only model predicts its anisotropy (issue 8 item 13);
the OOD score is a percentile of held-out training residuals (items 7 and 12)."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from ase import Atoms

from ase_mlnmr.calculator import NMRCalculator
from ase_mlnmr.core.spherical_tensors import l2_to_symmetric_traceless
from ase_mlnmr.nmr.shielding import haeberlen
from ase_mlnmr.nmr_model import DEFAULT_OOD_THRESHOLD, NMRModel

from conftest import random_structure
from synthetic_data import synthetic_dataset
from legacy_model_files import save_in_245de03_layout
from test_evaluator import build_model


def _fields(prediction):
    return {k: v for k, v in vars(prediction).items() if isinstance(v, np.ndarray)}


def _array_names(path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return [name[:-4] for name in archive.namelist() if name.endswith(".npy")]


@pytest.fixture(scope="module")
def model():
    return build_model()


def test_shared_nystrom_arrays_are_stored_once_and_packed(model, tmp_path):
    path = model.save(tmp_path / "new.npz")
    names = _array_names(path)
    assert not any(name.endswith("chol_zz") for name in names)
    assert sum(name.endswith("inducing_points") for name in names) == 3  # Si σiso (shared), O σiso, O OOD
    loaded = NMRModel.load(path)
    assert loaded.ood_models["Si"][1] is loaded.models[("Si", "ms_iso")].regressor
    assert loaded.ood_rank == model.ood_rank and loaded.ood_threshold == DEFAULT_OOD_THRESHOLD
    np.testing.assert_array_equal(loaded.ood_reference["O"], model.ood_reference["O"])
    atoms = random_structure(30, symbols=("Si", "O", "O", "Na"), seed=50, min_distance=1.5)
    for name, values in _fields(model.predict(atoms)).items():
        np.testing.assert_array_equal(_fields(loaded.predict(atoms))[name], values, err_msg=name)


def test_files_in_the_old_layout_still_load(model, tmp_path):
    old = tmp_path / "old.npz"
    save_in_245de03_layout(model, old)
    assert "ood1__chol_zz" in _array_names(old)   # Si's OOD arrays duplicated, dense factor
    loaded = NMRModel.load(old)
    assert loaded.ood_models["Si"][1] is loaded.models[("Si", "ms_iso")].regressor   # shared again
    assert loaded.ood_reference == {} and loaded.ood_rank == {}
    atoms = random_structure(30, symbols=("Si", "O", "O", "Na"), seed=51, min_distance=1.5)
    # without a stored reference the score is the residual over all pivots (the old meaning)
    prediction = loaded.predict(atoms)
    np.testing.assert_array_equal(prediction.ood[prediction.ood_mask], prediction.ood_residual[prediction.ood_mask])
    si = atoms.numbers == 14
    descriptor, nystrom = loaded.ood_models["Si"]
    np.testing.assert_allclose(prediction.ood[si], nystrom.out_of_domain(descriptor.create(atoms, centres="Si")),
                               atol=1e-12)
    np.testing.assert_array_equal(prediction.ms, model.predict(atoms).ms)


CONFIG = {
    "descriptor": {"r_cut": 5.0, "n_max": 4, "l_max": 3, "sigma": 0.4},
    "ms_iso": {"n_inducing": 150, "ridge": 1e-6, "length_scale_factor": 2.0},
    "ms_aniso": {"alpha": 1e-6},
    "efg": {"alpha": 1e-6},
    "ood": {"n_inducing": 100},
}


def test_anisotropy_only_model_predicts_haeberlen_parameters():
    data = synthetic_dataset(n_structures=5, n_atoms=24, seed=7)
    config = {**CONFIG, "species": {"Si": {"properties": ["ms_aniso"]}, "O": {"properties": ["ms_aniso"]}}}
    model = NMRModel.train(data, config, progress=False, structure_indices=range(4))
    atoms = data.structures[4]
    prediction = model.predict(atoms)
    assert not prediction.ms_mask.any() and np.isnan(prediction.ms).all()   # no σiso: no full tensor
    assert prediction.aniso_mask.all()
    spherical = np.empty((len(atoms), 5))
    for element in ("Si", "O"):
        centres = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == element)
        spherical[centres] = model.models[(element, "ms_aniso")].predict(atoms, centres)
    expected = haeberlen(l2_to_symmetric_traceless(spherical))
    np.testing.assert_allclose(prediction.ms_zeta, expected.zeta, atol=1e-9 * np.abs(expected.zeta).max())
    np.testing.assert_allclose(prediction.ms_eta, expected.eta, atol=1e-9)
    # learnt, not just evaluated: ζ close to the generating tensors' own
    true = haeberlen(data.tensors["ms"][4])
    assert np.corrcoef(prediction.ms_zeta, true.zeta)[0, 1] > 0.9
    atoms.calc = NMRCalculator(model)
    np.testing.assert_array_equal(atoms.calc.get_property("ms_zeta", atoms), prediction.ms_zeta)


def test_ood_score_is_a_held_out_percentile_and_a_bare_atom_scores_one(tmp_path):
    data = synthetic_dataset(n_structures=14, n_atoms=30, seed=0)
    model = NMRModel.train(data, CONFIG, progress=False, structure_indices=range(10))
    assert set(model.ood_reference) == {"Si", "O"}
    held_out = np.concatenate([model.predict(data.structures[i]).ood for i in range(10, 14)])
    # new structures of the same kind: scores spread over [0, 1], few above the threshold
    assert 0.2 < np.median(held_out) < 0.8
    assert np.mean(held_out > model.ood_threshold) < 0.1
    seen = model.predict(data.structures[0]).ood
    assert np.median(seen) < np.median(held_out)
    # a bare atom (no neighbour inside r_cut) and a compressed structure read as out of domain
    bare = Atoms("SiO2", positions=[[0, 0, 0], [20, 0, 0], [21.6, 0, 0]], cell=[60, 60, 60], pbc=False)
    assert model.predict(bare).ood[0] == 1.0
    dense = random_structure(60, symbols=("Si", "O", "O"), seed=5, min_distance=1.0, cell=np.diag([6.5] * 3))
    assert np.median(model.predict(dense).ood) > model.ood_threshold
    path = model.save(tmp_path / "m.npz")
    with zipfile.ZipFile(path) as archive:
        metadata = json.loads(np.lib.format.read_array(archive.open("__metadata__.npy")).item())
    assert metadata["ood_threshold"] == DEFAULT_OOD_THRESHOLD
