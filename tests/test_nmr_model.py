"""NMR models: learning known generating functions, exact equivariance, save/load,
corrupt files, unknown species, out-of-domain signal."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from ase_mlnmr.models.model_file import ModelFileError
from ase_mlnmr.nmr_model import NMRModel, UnknownSpeciesError

from conftest import random_rotation, random_structure
from synthetic_data import generating_tensors, synthetic_dataset

CONFIG = {
    "descriptor": {"r_cut": 5.0, "n_max": 5, "l_max": 4, "sigma": 0.4},
    "ms_iso": {"n_inducing": 300, "ridge": 1e-8, "length_scale_factor": 2.0},
    "efg": {"alpha": 1e-8},
    "ms_aniso": {"alpha": 1e-8},
    "ood": {"n_inducing": 200},
}


@pytest.fixture(scope="module")
def trained():
    data = synthetic_dataset(n_structures=14, n_atoms=30, seed=0)
    model = NMRModel.train(data, CONFIG, progress=False, structure_indices=range(12))
    return data, model


def _r2(reference, prediction):
    reference, prediction = np.ravel(reference), np.ravel(prediction)
    return 1 - np.sum((reference - prediction) ** 2) / np.sum((reference - reference.mean()) ** 2)


def test_models_learn_the_generating_functions(trained):
    data, model = trained
    assert set(model.elements) == {"Si", "O"}
    for index in (12, 13):  # held-out structures
        atoms = data.structures[index]
        prediction = model.predict(atoms)
        ms_ref, efg_ref = data.tensors["ms"][index], data.tensors["efg"][index]
        assert _r2(np.trace(ms_ref, axis1=1, axis2=2), np.trace(prediction.ms, axis1=1, axis2=2)) > 0.97
        assert _r2(efg_ref, prediction.efg) > 0.97
        assert _r2(ms_ref - np.trace(ms_ref, axis1=1, axis2=2)[:, None, None] * np.eye(3) / 3,
                   prediction.ms - prediction.ms_iso[:, None, None] * np.eye(3)) > 0.95


def test_rotated_structure_gives_rotated_tensors_and_same_sigma_iso(trained):
    data, model = trained
    atoms = data.structures[12]
    base = model.predict(atoms)
    rotation = random_rotation(4)
    rotated_atoms = atoms.copy()
    rotated_atoms.positions = atoms.positions @ rotation.T
    rotated_atoms.cell = atoms.cell.array @ rotation.T
    rotated = model.predict(rotated_atoms)
    scale = np.abs(base.efg).max()
    np.testing.assert_allclose(rotated.efg, rotation @ base.efg @ rotation.T, atol=1e-10 * scale)
    np.testing.assert_allclose(rotated.ms, rotation @ base.ms @ rotation.T, atol=1e-9 * np.abs(base.ms).max())
    np.testing.assert_allclose(rotated.ms_iso, base.ms_iso, atol=1e-9)
    np.testing.assert_allclose(rotated.efg, np.swapaxes(rotated.efg, 1, 2), atol=1e-14 * scale)


def test_save_load_gives_identical_predictions(trained, tmp_path):
    data, model = trained
    path = model.save(tmp_path / "model.npz")
    loaded = NMRModel.load(path)
    atoms = data.structures[13]
    a, b = model.predict(atoms), loaded.predict(atoms)
    for name in ("ms", "efg", "ms_iso", "ood"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert loaded.metadata["provenance"]["n_structures"] == 12


def test_corrupt_truncated_and_wrong_files_raise(trained, tmp_path):
    _, model = trained
    path = model.save(tmp_path / "model.npz")
    raw = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError):
        NMRModel.load(truncated)
    flipped = bytearray(raw)
    flipped[len(raw) // 3] ^= 0xFF
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(ModelFileError):
        NMRModel.load(corrupt)
    with pytest.raises(ModelFileError, match="not found|No such file"):
        NMRModel.load(tmp_path / "missing.npz")


def test_unknown_species_raise_or_skip(trained):
    _, model = trained
    atoms = random_structure(20, symbols=("Si", "O", "Na"), seed=99, min_distance=1.5)
    with pytest.raises(UnknownSpeciesError, match=r"no model for species \['Na'\]"):
        model.predict(atoms)
    # the descriptor itself does not know Na as a neighbour: that is named too
    with pytest.raises(ValueError, match="unknown species"):
        model.predict(atoms, unknown_species="skip")
    only_known = random_structure(20, symbols=("Si", "O"), seed=98, min_distance=1.5)
    prediction = model.predict(only_known, unknown_species="skip")
    assert prediction.ms_mask.all() and prediction.efg_mask.all()


def test_out_of_domain_score_grows_far_from_the_data(trained):
    data, model = trained
    seen = model.predict(data.structures[0]).ood
    assert np.all((seen >= 0) & (seen <= 1))
    assert np.median(seen) < 0.2
    # compressed silica: environments with many more, much closer neighbours
    dense = random_structure(60, symbols=("Si", "O", "O"), seed=5, min_distance=1.0,
                             cell=np.diag([6.5, 6.5, 6.5]))
    far = model.predict(dense).ood
    assert np.median(far) > np.median(seen) + 0.3


def test_species_without_tensors_are_not_trained():
    data = synthetic_dataset(n_structures=4, n_atoms=24, seed=3, symbols=("Si", "O", "Na"), mask_species="Na")
    model = NMRModel.train(data, {**CONFIG, "ms_iso": {"regressor": "linear", "alpha": 1e-3}}, progress=False)
    assert model.elements == ["O", "Si"]
    prediction = model.predict(data.structures[0], unknown_species="skip")
    na = np.array(data.structures[0].get_chemical_symbols()) == "Na"
    assert not prediction.ms_mask[na].any() and np.isnan(prediction.ms[na]).all()
    assert prediction.ms_mask[~na].all()


def test_antisymmetric_shielding_model_is_a_pseudovector_model():
    from synthetic_data import with_antisymmetric_shielding

    from ase_mlnmr.core.spherical_tensors import antisymmetric_to_vector

    data = with_antisymmetric_shielding(synthetic_dataset(n_structures=10, n_atoms=30, seed=60))
    config = {**CONFIG, "species": {"Si": {"properties": ["ms_iso", "ms_antisym"]}}}
    model = NMRModel.train(data, config, progress=False, structure_indices=range(8))
    atoms = data.structures[9]
    prediction = model.predict(atoms, unknown_species="skip")
    si = prediction.ms_mask
    reference = antisymmetric_to_vector(data.tensors["ms"][9][si])
    predicted = antisymmetric_to_vector(prediction.ms[si])
    assert _r2(reference, predicted) > 0.8
    inverted = atoms.copy()
    inverted.positions = -atoms.positions
    inverted.cell = -atoms.cell.array
    again = model.predict(inverted, unknown_species="skip").ms[si]
    np.testing.assert_allclose(again, prediction.ms[si], atol=1e-9 * np.abs(prediction.ms[si]).max())


def test_auto_alpha_picks_the_cross_validated_minimum():
    from ase_mlnmr.training.ridge_selection import select_equivariant_alpha

    rng = np.random.default_rng(3)
    n, p = 60, 40
    features = rng.normal(size=(n, 5, p))
    true_weights = rng.normal(size=p) * (rng.random(p) < 0.3)
    targets = features @ true_weights + 0.5 * rng.normal(size=(n, 5))
    groups = np.repeat(np.arange(12), 5)
    grid = (1e-6, 1e-2, 1.0, 1e2, 1e6)
    best, errors = select_equivariant_alpha(features, targets, groups, grid)
    # independent check: plain NumPy ridge refits per fold give the same ranking
    from ase_mlnmr.training.model_selection import fold_assignment

    folds = fold_assignment(n, 5, groups=groups, seed=0)
    reference = []
    for alpha in grid:
        total = 0.0
        for fold in range(5):
            train, test = folds != fold, folds == fold
            x = features[train].reshape(-1, p)
            scale = np.sqrt(np.mean(x**2, axis=0))
            w = np.linalg.solve((x / scale).T @ (x / scale) + alpha * np.eye(p), (x / scale).T @ targets[train].ravel())
            total += np.abs(features[test].reshape(-1, p) / scale @ w - targets[test].ravel()).sum()
        reference.append(total / targets.size)
    np.testing.assert_allclose(errors, reference, rtol=1e-8)
    assert best == grid[int(np.argmin(reference))] and best not in (1e6,)


def test_auto_feature_scaling_is_chosen_with_alpha_by_cross_validation():
    from ase_mlnmr.training.ridge_selection import select_equivariant_alpha, select_equivariant_ridge

    rng = np.random.default_rng(4)
    n, p = 80, 30
    # informative features are small, noise features large: per-feature scaling inflates
    # the noise columns, one global scale keeps the descriptor's own weighting
    signal = rng.normal(size=(n, 5, 6)) * 0.05
    noise = rng.normal(size=(n, 5, p - 6)) * 3.0
    features = np.concatenate([signal, noise], axis=2)
    targets = signal @ rng.normal(size=6) * 20 + 0.05 * rng.normal(size=(n, 5))
    groups = np.repeat(np.arange(16), 5)
    grid = tuple(10.0 ** k for k in range(-4, 4))
    scaling, alpha, curves = select_equivariant_ridge(features, targets, groups, ("per_feature", "global"), grid)
    for name in ("per_feature", "global"):
        a, errors = select_equivariant_alpha(features, targets, groups, grid, feature_scaling=name)
        np.testing.assert_array_equal(curves[name], errors)
    best = min(curves, key=lambda name: curves[name].min())
    assert scaling == best and alpha == grid[int(np.argmin(curves[best]))]
    assert set(curves) == {"per_feature", "global"}


def test_radial_scaling_and_global_feature_scaling_survive_save_load(tmp_path):
    data = synthetic_dataset(n_structures=5, n_atoms=24, seed=5)
    config = {**CONFIG, "descriptor": {**CONFIG["descriptor"], "radial_scaling": {"r0": 2.0, "exponent": 4}},
              "ms_iso": {"regressor": "linear", "alpha": 1e-3},
              "efg": {"alpha": 1e-3, "feature_scaling": "global"}}
    model = NMRModel.train(data, config, progress=False, structure_indices=range(4))
    loaded = NMRModel.load(model.save(tmp_path / "scaled.npz"))
    efg_model = loaded.models[(loaded.elements[0], "efg")]
    assert efg_model.descriptor.get_parameters()["radial_scaling"] == {"r0": 2.0, "exponent": 4.0}
    assert efg_model.regressor.feature_scaling == "global"
    atoms = data.structures[4]
    a, b = model.predict(atoms), loaded.predict(atoms)
    np.testing.assert_array_equal(a.efg, b.efg)
    np.testing.assert_array_equal(a.ms, b.ms)
